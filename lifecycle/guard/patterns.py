"""What personal data looks like: column-name families and value patterns for the leak guard.

Each value pattern is written once and read by PostgreSQL (through Great Expectations and the
guard's own SQL) and, for fingerprints, by Python's `re` as well. So they use only syntax both
engines read alike: explicit classes ([0-9], never \\d), non-capturing groups, no \\b, and a
case-insensitive flag only as the pattern's first token.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# ---------------------------------------------------------------- column names

# A column whose name falls in one of these families is personal wherever it appears in analytics.
COLUMN_FAMILIES: dict[str, str] = {
    "name": r"^(?:name|surname|fullname|firstname|lastname|forename)$"
    r"|(?:^|_)(?:first|last|full|given|family|middle|maiden|nick|user|customer|receiver|recipient"
    r"|sender|buyer|contact|person|holder|cardholder|card_holder)_?name(?:$|_)"
    r"|(?:^|_)(?:surname|fullname|firstname|lastname|forename)(?:$|_)",
    "phone": r"phone|mobile|(?:^|_)(?:tel|telephone|cell|fax|msisdn)(?:$|_)",
    "email": r"e_?mail",
    "address": r"address|(?:^|_)(?:addr|street|house_number|house_no)(?:$|_)",
    "postcode": r"post_?code|postal|(?:^|_)zip(?:_?code)?(?:$|_)",
    "payment": r"payment_?(?:ref|reference|id|token|card|account|details?)(?:$|_)"
    r"|(?:^|_)(?:card_?(?:no|num|number)|credit_?card|iban|bic|swift|bank_?account"
    r"|account_?(?:no|number)|pan|cvv|cvc)(?:$|_)",
    "customer_id": r"(?:^|_)(?:customer|cust|client|buyer|user|member|shopper|account|person"
    r"|receiver)_?(?:id|uuid|key|no|number|ref)s?(?:$|_)",
    "identity": r"(?:^|_)(?:ssn|passport|national_id|id_card|id_number|birth_?date|date_of_birth"
    r"|dob)(?:$|_)",
}
_FAMILIES = {family: re.compile(pattern) for family, pattern in COLUMN_FAMILIES.items()}


def column_family(name: str) -> str | None:
    """The personal family a column name belongs to, or None."""
    lowered = name.lower()
    return next((family for family, pattern in _FAMILIES.items() if pattern.search(lowered)), None)


# ---------------------------------------------------------------- values

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"

# Phone numbers as people write them: shapes generated from the numbering plans `phonenumbers`
# knows (scripts/phone_shapes.py writes phone_shapes.json; a test holds the file to what the
# generator writes now). Four families: international (`+`/`00` and any country code), trunk
# (`030 1234567`, `(020)74960083`), grouped national numbers with a separator between every group
# (`792 601 815`, `11 7280-3852`), and bare mobiles of 10+ digits where mobiles are written without
# a trunk prefix (`2125550123`, `13800138000`). Other bare digit runs are not phones: quantities,
# ids, dates; a bare 9-digit number is an order id as often as a phone.
PHONE_SHAPES_FILE = Path(__file__).with_name("phone_shapes.json")
PHONE_SHAPES: dict[str, str] = json.loads(PHONE_SHAPES_FILE.read_text())["shapes"]
_ANY_PHONE = "(?:" + "|".join(PHONE_SHAPES.values()) + ")"
# An extension (x528, ext. 12, #7) belongs to the number; a colon or a decimal point before or
# after a digit run makes it part of a time or a decimal (13:15:06.516906), and a hyphen joining
# it to more letters or digits part of an id (a UUID), not a phone.
PHONE_EXTENSION = r"(?:[ ]?(?:[xX#]|[eE]xt[.]?)[ ]?[0-9]{1,6})?"
# A day, month and year (01.02.2026, 01-02-26) is a date, however a trunk form would read it.
NOT_A_DATE = r"(?![0-3]?[0-9][./-][01]?[0-9][./-](?:[0-9]{4}|[0-9]{2})(?![.]?[0-9]))"
PHONE = (
    r"(?:^|[^0-9A-Za-z+:.,-])"
    + NOT_A_DATE
    + _ANY_PHONE
    + PHONE_EXTENSION
    + r"(?:$|[^0-9A-Za-z:.,-]|[.,-](?![0-9A-Za-z]))"
)

# Every phone shape holds six digits at most three separators apart: a cheap test PostgreSQL runs
# first, so text without such a run (most free text) never meets the generated shapes, which cost
# some 50 microseconds a value.
PHONE_PREFILTER = "[0-9]" + "[ .()/+-]{0,3}[0-9]" * 5

# Card numbers: a run of 12-19 digits, bare or in groups of four (Amex and Diners 4-6-4/5),
# bounded by characters that are neither digits nor letters (a digit run inside a hex id is not a
# card); the digits must then start with a known issuer's prefix at that issuer's lengths
# (CARD_ISSUERS) and pass the Luhn check (luhn_sql).
CARD = (
    r"(?:^|[^0-9A-Za-z])((?:[0-9]{12,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,7}"
    r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}))(?:$|[^0-9A-Za-z])"
)
CARD_PREFILTER = r"[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}"
# Issuer prefixes and lengths (ISO/IEC 7812 as the schemes publish them), over the bare digits.
CARD_ISSUERS = {
    "visa": r"4([0-9]{12}|[0-9]{15}|[0-9]{18})",
    "mastercard": r"(5[1-5][0-9]{2}|222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)"
    r"[0-9]{12}",
    "amex": r"3[47][0-9]{13}",
    "jcb": r"35[0-9]{14,17}|(2131|1800)[0-9]{11}",
    "diners": r"3(0[0-5]|[68][0-9]|9[0-9])[0-9]{11,16}",
    "discover": r"(6011|64[4-9][0-9]|65[0-9]{2})[0-9]{12,15}",
    "unionpay": r"62[0-9]{14,17}",
    "maestro": r"(5018|5020|5038|5893|6304|6759|676[1-3]|0604|6390)[0-9]{8,15}"
    r"|5[6-8][0-9]{2}[0-9]{8,15}",
}
# Plain groups: "(?:" before a digit would read as a bind parameter to SQLAlchemy.
CARD_DIGITS = "^(" + "|".join(CARD_ISSUERS.values()) + ")$"

# A street address: a house number, then two to five words of which one (after the first) is a
# street suffix ("12751 Anna Viaduct", "17 Garden Road, Apt 3"); or a Chinese street and number
# ("南京东路123号", "北京街d座"). The suffix is looked up in a set, not an alternation in the
# regex: PostgreSQL runs a 200-way case-insensitive alternation some 30 times slower.
STREET_SUFFIXES = frozenset(
    (
        "alley aly avenue ave boulevard blvd branch bridge brook burg bypass camp canyon cape causeway "
        "center circle cir cliff club common corner course court ct cove creek crescent cres crest "
        "crossing crossroad curve dale dam divide drive dr estate expressway extension fall ferry "
        "field flat ford forest forge fork fort freeway garden gateway glen green grove harbor haven "
        "heights highway hwy hill hollow inlet island isle junction key knoll lake land landing lane "
        "ln light loaf lock lodge loop mall manor meadow mews mill mission motorway mount mountain "
        "neck orchard oval overpass park parkway pkwy pass passage path pike pine place pl plain "
        "plaza point port prairie radial ramp ranch rapid rest ridge river road rd route row rue run "
        "shoal shore skyway spring spur square sq station stravenue stream street st summit terrace "
        "throughway trace track trafficway trail trl tunnel turnpike underpass union valley via "
        "viaduct view village ville vista walk wall way well"
    ).split()
)
STREET_WORDS = (
    r"(?:^|[^0-9A-Za-z])[0-9]{1,6}[A-Za-z]?"
    "((?:[ \n]+(?:[A-Za-z][A-Za-z.'-]*|[\u3005\u3040-\u30ff\u4e00-\u9fff]+)){2,5})"
)
# Where the street's type comes first (Rua, Calle, Via, ul., rue after a number), or is the end
# of a compound (Hauptstraße, Lindenweg, Kerkstraat) followed by the house number. The official
# street types of each language (for Brazil the Correios list of logradouro types). Alternations
# in plain groups: "(?:" before a letter would read as a bind parameter to SQLAlchemy.
STREET_TYPES = {
    "fr": "rue avenue av. boulevard bd place chemin allée impasse quai route cours passage square",
    "es": "calle c. c/ avenida avda. plaza paseo camino callejón carrera ronda rambla cuesta "
    "urbanización travesía glorieta vía via pasaje carretera cañada alameda acceso vial "
    "pasadizo",
    "it": "via viale piazza piazzale corso largo vicolo contrada strada rotonda stretto borgo "
    "lungomare canale incrocio",
    # Brazil's street types and the abbreviations addresses are written with (R. Oscar Freire).
    "pt": "rua r. avenida av. travessa tv. alameda al. praça pç. estrada est. rodovia rod. "
    "largo viela beco",
    "pl": "ul. ulica al. aleja pl. plac os. osiedle rondo skwer",
}
# The other logradouro types of the Correios list name neighbourhoods, places and everyday things
# as often as streets: jardim (garden), parque, vila, conjunto (set), colônia (cologne), lago,
# campo, praia, galeria, ponte, estação... A Brazilian catalogue's titles are full of them
# ("Kit Jardim Vertical Com 6 Vasos", "Colônia Paris Eau de Toilette"), so one of them makes an
# address only as a street's type: names after it, then a comma or `nº` and the house number
# (or `s/n`) that ends the text, a punctuation mark or is followed by a word in small letters
# ("Vila Madalena, 45", "Praia de Botafogo, nº 300 - apto 5", "Vila Madalena, 45 amanhã"); a
# title's count is written without the comma or before a capital ("Kit Jardim Vertical Com 6
# Vasos"). A title "Jardim Inglês, 6 peças" (comma, count, small letters) would be flagged.
# Measured in tests/db/test_guard_detection.py: ~50 Brazilian product titles, none flagged; ~20
# Brazilian addresses, all flagged. What it gives up: such a street written without its number.
STREET_PLACE_TYPES = (
    "vila jardim parque conjunto colônia lago lagoa campo praia galeria ponte estação setor "
    "quadra fazenda recanto residencial favela pátio condomínio chácara loteamento núcleo sítio "
    "morro vereda trecho trevo ladeira distrito aeroporto esplanada feira passarela vale "
    "viaduto área caminho servidão subida marginal"
)
STREET_COMPOUNDS = (
    "straße strasse str. weg platz allee ring gasse damm ufer chaussee pfad steig markt hof "
    "graben kamp laan straat plein gracht kade singel dijk dreef pad steeg baan boulevard "
    "plantsoen wal haven"
)
_UPPER = "A-Z\u00c0-\u00de\u0100-\u017f"
_LETTER = "A-Za-z\u00c0-\u024f"


def _either_case(word: str) -> str:
    """`word` with its first letter in either case, regex-escaped ("[Rr]ua")."""
    head, tail = word[0], re.escape(word[1:]).replace("/", "/")
    return f"[{head.upper()}{head.lower()}]{tail}" if head.isalpha() else re.escape(word)


_TYPES = "|".join(
    _either_case(w) for w in sorted({w for ws in STREET_TYPES.values() for w in ws.split()})
)
_PLACE_TYPES = "|".join(_either_case(w) for w in sorted(STREET_PLACE_TYPES.split()))
_NAME = f"[{_UPPER}][{_LETTER}'.-]*"
_PARTICLE = "(de|da|do|dos|das|del|della|di|la|le|du|des|van|der|den)"
STREET_TYPE_FIRST = (
    f"(^|[^{_LETTER}])({_TYPES}) +(({_PARTICLE}|{_NAME}) +){{0,4}}{_NAME}"
    f"(,? +(n[º°.]? *)?[0-9]{{1,5}})?($|[^0-9{_LETTER}])"
    f"|(^|[^0-9])[0-9]{{1,5}}( ?(bis|ter|[A-Za-z]))?,? +({_TYPES}) +({_PARTICLE} +)?{_NAME}"
    f"|(^|[^{_LETTER}])({_PLACE_TYPES}) +(({_PARTICLE}|{_NAME}) +){{0,4}}{_NAME}"
    f"(, *(n[º°.]? *)?|,? +n[º°.] *)([0-9]{{1,5}}|[Ss]/[Nn])( *($|[,;/.)-])| +[a-zß-ÿ])"
)
# The type words as they may be written, for an array lookup PostgreSQL does first: a 120-way
# alternation costs its regex engine some 70 microseconds a value of free text, the lookup almost
# nothing, so the regex only reads text holding a street type.
STREET_TYPE_WORDS = sorted(
    {
        f(w[0]) + w[1:]
        for ws in [*STREET_TYPES.values(), STREET_PLACE_TYPES]
        for w in ws.split()
        for f in (str.upper, str.lower)
    }
)
STREET_TYPE_SPLIT = f"[^{_LETTER}./]+"
STREET_COMPOUND = (
    f"[{_LETTER}-]({'|'.join(re.escape(w) for w in STREET_COMPOUNDS.split())})"
    f" +[0-9]{{1,5}}[a-z]?($|[^0-9])"
)
# Japanese blocks and lots: 3丁目, 12番地, 5番7号.
STREET_JAPANESE = (
    "[0-9\uff10-\uff19一二三四五六七八九十]+丁目|[0-9\uff10-\uff19]+番(地|[0-9\uff10-\uff19]+号)"
)
# Plain groups here: "(?:" before a CJK character would read as a bind parameter to SQLAlchemy.
STREET_CHINESE = (
    r"[\u4E00-\u9FFF]{1,12}(路|街|大道|大街|巷|弄|胡同)"
    r"[0-9A-Za-z]{0,6}(号|座|栋|幢|室|单元|楼)"
)

# A national identity number with a check digit, written in its one official shape: Brazil's
# CPF, `123.456.789-09` (its two mod-11 check digits must hold, and eleven equal digits, which
# pass them, are no CPF). Bare eleven digits are not taken: they are as often a phone or an id.
NATIONAL_ID = r"(^|[^0-9A-Za-z.])([0-9]{3}[.][0-9]{3}[.][0-9]{3}-[0-9]{2})($|[^0-9A-Za-z-])"

# Kinds GX checks with a plain regex; the others need SQL around a regex (matches_sql). The
# guard's own counts test phones through matches_sql, after the prefilter.
VALUE_PATTERNS: dict[str, str] = {"email": EMAIL, "phone": PHONE}
PLAIN_REGEX_KINDS = ("email",)
KINDS = ("email", "phone", "street_address", "card_number", "national_id")


def sql_literal(text: str) -> str:
    """A single-quoted SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def matches_sql(kind: str, text: str) -> str:
    """A boolean SQL expression: the text expression `text` holds a value of `kind`. Literals only,
    so the same SQL serves Great Expectations' query templates and the guard's own samples."""
    if kind == "phone":
        return f"({text} ~ {sql_literal(PHONE_PREFILTER)} AND {text} ~ {sql_literal(PHONE)})"
    if kind in VALUE_PATTERNS:
        return f"{text} ~ {sql_literal(VALUE_PATTERNS[kind])}"
    if kind == "card_number":
        digits = "regexp_replace(m[1], '[^0-9]', '', 'g')"
        return (
            f"({text} ~ {sql_literal(CARD_PREFILTER)} AND EXISTS (SELECT 1 FROM regexp_matches("
            f"{text}, {sql_literal(CARD)}, 'g') AS m WHERE {digits} ~ {sql_literal(CARD_DIGITS)} "
            f"AND {luhn_sql(digits)}))"
        )
    if kind == "national_id":
        digits = "regexp_replace(m[2], '[^0-9]', '', 'g')"
        return (
            f"({text} ~ {sql_literal(NATIONAL_ID)} AND EXISTS (SELECT 1 FROM regexp_matches("
            f"{text}, {sql_literal(NATIONAL_ID)}, 'g') AS m WHERE {cpf_sql(digits)}))"
        )
    if kind == "street_address":
        suffixes = "ARRAY[" + ", ".join(sql_literal(w) for w in sorted(STREET_SUFFIXES)) + "]"
        types = "ARRAY[" + ", ".join(sql_literal(w) for w in STREET_TYPE_WORDS) + "]::text[]"
        word = "rtrim(w, '.')"
        return (
            f"({text} ~ {sql_literal(STREET_CHINESE)} OR {text} ~ {sql_literal(STREET_JAPANESE)} "
            f"OR (regexp_split_to_array({text}, {sql_literal(STREET_TYPE_SPLIT)}) && {types} "
            f"AND {text} ~ {sql_literal(STREET_TYPE_FIRST)}) "
            f"OR {text} ~* {sql_literal(STREET_COMPOUND)} OR ("
            f"{text} ~ '[0-9] ?[A-Za-z]*\\s\\S' AND EXISTS ("
            f"SELECT 1 FROM regexp_matches({text}, {sql_literal(STREET_WORDS)}, 'g') AS m, "
            f"unnest((regexp_split_to_array(lower(btrim(m[1], ' ' || chr(10))), '\\s+'))[2:]) AS w "
            f"WHERE {word} = ANY({suffixes}) "
            f"OR regexp_replace({word}, 's$', '') = ANY({suffixes}))))"
        )
    raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")


def luhn_sql(digits: str) -> str:
    """A boolean SQL expression: the digit string `digits` passes the Luhn check."""
    doubled = f"(substr({digits}, p, 1)::int * 2)"
    return f"""(SELECT sum(CASE WHEN (length({digits}) - p) % 2 = 1
                               THEN {doubled} % 10 + {doubled} / 10
                               ELSE substr({digits}, p, 1)::int END) % 10 = 0
                 FROM generate_series(1, length({digits})) AS p)"""


def cpf_sql(digits: str) -> str:
    """A boolean SQL expression: the 11-digit string `digits` holds a CPF's two check digits
    (each the weighted sum of the digits before it, times 10, mod 11, mod 10) and is not one
    digit repeated."""
    weighted = (
        "(SELECT sum(substr({d}, p, 1)::int * ({n} + 1 - p)) * 10 % 11 % 10 "
        "FROM generate_series(1, {n} - 1) AS p)"
    )
    checks = [f"{weighted.format(d=digits, n=n)} = substr({digits}, {n}, 1)::int" for n in (10, 11)]
    return f"({digits} !~ '^(.)\\1*$' AND {' AND '.join(checks)})"
