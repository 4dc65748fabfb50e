"""A labelled corpus for the leak guard's value patterns: personal values of each kind the guard
claims, in many locales, alone and inside sentences; and a clean corpus of what analytics tables
really hold (ids, codes, dates, prices, product names, review text), on which nothing may fire.

Faker makes the values (seeded, so a run is repeatable); `phonenumbers` keeps only phone numbers
its numbering plans call valid for the locale's region, so the corpus holds real shapes. The
test suite runs a sample (tests/db/test_guard_detection.py); bench/bench_detection.py the whole.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers
from faker import Faker

# Faker locale -> the phonenumbers region its numbers belong to.
LOCALES = {
    "en_US": "US",
    "en_GB": "GB",
    "de_DE": "DE",
    "fr_FR": "FR",
    "es_ES": "ES",
    "it_IT": "IT",
    "nl_NL": "NL",
    "pl_PL": "PL",
    "pt_BR": "BR",
    "ja_JP": "JP",
    "zh_CN": "CN",
}
# Sentences a person writes around a value, in several languages; {} is the value.
SENTENCES = (
    "please call {} before delivery",
    "Bitte rufen Sie {} an, danke",
    "merci de contacter {} avant 18h",
    "contacto: {} (tarde)",
    "zadzwoń pod {} jutro",
    "配送前に{}へご連絡ください",
    "请联系{}谢谢",
    "note: {}.",
)
CLAIMED = ("email", "phone", "card_number", "street_address")  # what the pattern check claims
CLEAN_KINDS = (
    "hex_id",
    "uuid",
    "sku",
    "product_code",
    "tracking_number",
    "iso_date",
    "timestamp",
    "price",
    "count",
    "order_id",
    "product_name",
    "review",
)


@dataclass(frozen=True)
class Sample:
    """One labelled text: the kind it holds (a claimed kind, or a clean kind), its locale, and
    whether the value stands alone or inside a sentence."""

    kind: str
    locale: str
    form: str  # "alone" | "in_text" | "clean"
    text: str


def _valid_phone(fake: Faker, region: str) -> str:
    for _ in range(50):
        number = fake.phone_number()
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return number
    raise RuntimeError(f"Faker made no valid {region} phone number in 50 tries")


def personal(per_kind: int = 100, seed: int = 7) -> Iterator[Sample]:
    """`per_kind` values of each claimed kind per locale, each alone and inside a sentence."""
    for locale, region in LOCALES.items():
        fake = Faker(locale)
        fake.seed_instance(seed)
        rng = random.Random(f"{seed}-{locale}")
        makers = {
            "email": fake.email,
            "phone": lambda fake=fake, region=region: _valid_phone(fake, region),
            "card_number": fake.credit_card_number,
            "street_address": fake.street_address,
        }
        for kind, make in makers.items():
            for _ in range(per_kind):
                value = make()
                yield Sample(kind, locale, "alone", value)
                yield Sample(kind, locale, "in_text", rng.choice(SENTENCES).format(value))


def clean(per_kind: int = 300, seed: int = 7) -> Iterator[Sample]:
    """`per_kind` texts of each clean kind: what analytics tables hold that is not personal."""
    rng = random.Random(seed)
    fakes = [Faker(locale) for locale in LOCALES]
    for i, fake in enumerate(fakes):
        fake.seed_instance(seed + i)
    makers = {
        "hex_id": lambda: uuid.UUID(int=rng.getrandbits(128)).hex,
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sku": lambda: f"SKU-{rng.randrange(10**6):06d}",
        "product_code": lambda: (
            f"{rng.choice('ABCDEFGH')}{rng.randrange(10**4):04d}-{rng.randrange(100):02d}"
        ),
        "tracking_number": lambda: rng.choice(
            [
                f"1Z{rng.randrange(16**6):06X}{rng.randrange(10**10):010d}",
                f"SF{rng.randrange(10**12):012d}",
                f"{rng.randrange(10**11, 10**12)}",
                f"JD{rng.randrange(10**13):013d}",
            ]
        ),
        "iso_date": lambda: fakes[0].date_between("-3y", "today").isoformat(),
        "timestamp": lambda: rng.choice(
            [
                fakes[0]
                .date_time_between("-3y", "now")
                .isoformat(sep=" ", timespec="microseconds"),
                fakes[0].date_time_between("-3y", "now").isoformat(),
                fakes[0].time(pattern="%H:%M:%S") + f".{rng.randrange(10**6):06d}",
                fakes[0].date_time_between("-3y", "now").strftime("%Y%m%d%H%M%S"),
            ]
        ),
        "price": lambda: rng.choice(
            [f"{rng.randrange(100000) / 100:.2f}", f"{rng.randrange(10**7) / 100:,.2f} EUR"]
        ),
        "count": lambda: str(rng.randrange(10 ** rng.randrange(1, 9))),
        "order_id": lambda: str(rng.randrange(1, 10**9)),
        "product_name": lambda: rng.choice(fakes).catch_phrase(),
        "review": lambda: rng.choice(fakes).sentence(nb_words=12),
    }
    for kind, make in makers.items():
        for _ in range(per_kind):
            yield Sample(kind, "any", "clean", make())


def detected(conn, samples: list[Sample]) -> list[set[str]]:
    """For each sample, the claimed kinds the guard's SQL patterns see in it (lifecycle.guard.patterns),
    evaluated by PostgreSQL as the guard evaluates them."""
    import sqlalchemy as sa

    from lifecycle.guard import patterns

    conn.execute(sa.text("CREATE TEMP TABLE detection_corpus (id int, v text) ON COMMIT DROP"))
    with (
        conn.connection.driver_connection.cursor() as cursor,
        cursor.copy("COPY detection_corpus (id, v) FROM STDIN") as copy,
    ):
        for i, sample in enumerate(samples):
            copy.write_row((i, sample.text))
    columns = ", ".join(f"{patterns.matches_sql(kind, 'v')} AS {kind}" for kind in CLAIMED)
    found: list[set[str]] = [set() for _ in samples]
    for row in conn.execute(sa.text(f"SELECT id, {columns} FROM detection_corpus")):
        found[row.id] = {kind for kind in CLAIMED if getattr(row, kind)}
    return found


def recall(samples: list[Sample], found: list[set[str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, locale) -> (caught, total) over the personal samples."""
    table: dict[tuple[str, str], tuple[int, int]] = {}
    for sample, kinds in zip(samples, found, strict=True):
        if sample.form == "clean":
            continue
        caught, total = table.get((sample.kind, sample.locale), (0, 0))
        table[(sample.kind, sample.locale)] = (caught + (sample.kind in kinds), total + 1)
    return table


def false_positives(samples: list[Sample], found: list[set[str]]) -> dict[str, tuple[int, int]]:
    """clean kind -> (texts on which any pattern fired, total)."""
    table: dict[str, tuple[int, int]] = {}
    for sample, kinds in zip(samples, found, strict=True):
        if sample.form != "clean":
            continue
        fired, total = table.get(sample.kind, (0, 0))
        table[sample.kind] = (fired + bool(kinds), total + 1)
    return table
