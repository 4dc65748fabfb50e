"""Generates the leak guard's phone shapes from the numbering plans `phonenumbers` knows.

    .venv/bin/python -m scripts.phone_shapes            # rewrites lifecycle/guard/phone_shapes.json
    .venv/bin/python -m scripts.phone_shapes --check    # exit 1 when the committed file is stale

The shapes are data, not hand-typed regexes: a region's country code, national number lengths,
trunk prefix, number formats (group lengths and leading digits) and mobile plan become four
families of regex (lifecycle/guard/patterns.py joins them into PHONE):

- `international`: `+` or `00`, any region's country code, an optional `(0)`, then as many digits
  as that region's national numbers have (grouped by spaces, dots, hyphens or parentheses);
- `trunk`: a number written nationally with its trunk prefix (`030 1234567`, `(020)74960083`,
  `06 12 34 56 78`), by the region's formats, separators optional;
- `grouped`: a national number without a prefix, by the region's formats, with a separator between
  every group (`792 601 815`, `11 7280-3852`, `(913)441-2524`): bare, such a run is an order id;
  a two-group form (`555-0123`) must also start with the format's leading digits;
- `bare_mobile`: a bare mobile number of 10 or more digits, in the regions whose mobiles are
  written without a trunk prefix (`2125550123`, `13800138000`, `3517393360`). Nine digits and
  fewer are left out: an order id is written exactly so.

`tests/unit/test_phone_shapes.py` holds the committed file to what this writes now, so nobody
edits it by hand; regenerate after upgrading `phonenumbers` or changing REGIONS.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat

OUTPUT = Path(__file__).resolve().parents[1] / "lifecycle" / "guard" / "phone_shapes.json"
# Regions whose national forms (trunk, grouped, bare mobile) the guard knows: the locales of the
# labelled corpus (tests/detection_corpus.py). Every region's country code is in `international`.
REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "JP", "CN")
MIN_DIGITS = 6  # shorter formats are service and short codes, written like counts
MIN_BARE = 10  # a bare run of nine digits or fewer is an order id as often as a phone
MAX_BARE = 11  # and one of twelve or more a tracking number
SEP = "[ .-]"
GROUP = re.compile(r"\(\\d(?:\{(\d+)(?:,(\d+))?\})?\)")


def sql_safe(pattern: str) -> str:
    """A phonenumbers regex in the syntax both PostgreSQL and Python's `re` read alike, that
    SQLAlchemy's text() does not mistake for a bind parameter (`(?:43` reads as `:43`)."""
    pattern = pattern.replace("\\d", "[0-9]")
    return re.sub(r"\(\?:(\d)", r"(?:[\1]", pattern)  # `[4]3` for `43`: the same language


def groups(pattern: str) -> list[tuple[int, int]] | None:
    """A format's digit groups as (min, max) lengths, or None when it is not plain groups."""
    found = GROUP.findall(pattern)
    if not found or GROUP.sub("", pattern):
        return None
    return [(int(a or 1), int(b or a or 1)) for a, b in found]


def repeat(low: int, high: int) -> str:
    return f"[0-9]{{{low}}}" if low == high else f"[0-9]{{{low},{high}}}"


def national_formats(meta: PhoneMetadata) -> list[tuple[str, list[tuple[int, int]], str | None]]:
    """(leading digits, groups, national prefix rule) of each format long enough for a phone."""
    out = []
    for fmt in meta.number_format:
        shape = groups(fmt.pattern)
        if shape is None or sum(low for low, _ in shape) < MIN_DIGITS:
            continue
        lead = fmt.leading_digits_pattern[0] if fmt.leading_digits_pattern else ""
        out.append((sql_safe(lead), shape, fmt.national_prefix_formatting_rule))
    return out


def _lead(lead: str) -> str:
    return f"(?={lead})" if lead else ""


def trunk_shape(meta: PhoneMetadata) -> str | None:
    """`030 1234567`, `(020)74960083`, `(065)-4444634`: the trunk prefix, then as many digits as
    the region's national numbers have, grouped any way (people do not follow the plan's
    groups)."""
    prefix = meta.national_prefix
    if not prefix or not prefix.isdigit() or prefix in ("1",):
        return None
    low, high = lengths(meta)
    return f"[(]?{prefix}[1-9](?:[ .()-]{{0,2}}[0-9]){{{low - 1},{high - 1}}}"


def lengths(meta: PhoneMetadata) -> tuple[int, int]:
    """The shortest (at least MIN_DIGITS) and longest national number of the region."""
    found = [n for n in meta.general_desc.possible_length if n > 0]
    return max(min(found), MIN_DIGITS), max(found)


def grouped_shapes(meta: PhoneMetadata) -> list[tuple[str, str]]:
    """`792 601 815`, `(913)441-2524`: a national number by its groups, a separator between each."""
    shapes = []
    for lead, shape, _ in national_formats(meta):
        if len(shape) < 2:
            continue
        g1 = repeat(*shape[0])
        first = f"(?:\\({g1}\\)[ ]?|{g1}{SEP})"
        rest = SEP.join(repeat(*g) for g in shape[1:])
        # Three groups or more are a phone's shape whatever their digits; two (555-0123) are
        # also a code's, so they must start as the plan's numbers do. Each leading-digit test
        # costs PostgreSQL's regex engine, so only those.
        shapes.append((lead if len(shape) == 2 else "", first + rest))
    return shapes


def bare_mobile(meta: PhoneMetadata) -> str | None:
    """The region's mobile plan, bare, when its mobiles are written without a trunk prefix; a
    region that writes no trunk prefix in any national format writes every number so: its
    whole plan. Ten or eleven digits: nine and fewer are order ids, twelve and more tracking
    numbers."""
    bare = f"(?=[0-9]{{{MIN_BARE},{MAX_BARE}}}(?![0-9]))"
    if not any(f.national_prefix_formatting_rule for f in meta.number_format):
        return f"{bare}(?:{sql_safe(meta.general_desc.national_number_pattern)})"
    example = meta.mobile.example_number
    if not example:
        return None
    number = phonenumbers.parse(f"+{meta.country_code}{example}")
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    digits = re.sub("[^0-9]", "", national)
    if meta.national_prefix and digits.startswith(meta.national_prefix) and digits != example:
        return None
    if max(meta.mobile.possible_length) < MIN_BARE:
        return None
    return f"{bare}(?:{sql_safe(meta.mobile.national_number_pattern)})"


def international() -> str:
    """`+` or `00`, a country code of any region, an optional `(0)`, then from the shortest to the
    longest national number any region has, in digits that spaces, dots, hyphens or parentheses
    may separate. One shape for all codes: per-region lengths cost PostgreSQL's regex engine
    some thirty times the time and tell a `+`-prefixed number from no other text."""
    codes: set[int] = set()
    low, high = 99, 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        meta = PhoneMetadata.metadata_for_region(region)
        if max(meta.general_desc.possible_length) < MIN_DIGITS:
            continue
        codes.add(meta.country_code)
        shortest, longest = lengths(meta)
        low, high = min(low, shortest), max(high, longest)
    code = "|".join(str(c) for c in sorted(codes, key=lambda c: (-len(str(c)), c)))
    digits = f"[0-9](?:[ .()-]{{0,2}}[0-9]){{{low - 1},{high - 1}}}"
    return f"[(]?(?:[+]|00)(?:{code})[)]?[ .-]?(?:[(]0[)][ ]?)?{digits}"


def merged(shapes: list[tuple[str, str]]) -> str:
    """(leading digits, shape) pairs as one alternation, one branch per shape with the union of
    its leading digits: fewer branches for PostgreSQL's regex engine to carry."""
    leads: dict[str, list[str]] = {}
    for lead, shape in shapes:
        leads.setdefault(shape, [])
        if lead not in leads[shape]:
            leads[shape].append(lead)
    branches = []
    for shape, found in leads.items():
        lead = "" if "" in found else "|".join(found)
        branches.append(f"{_lead(lead)}{shape}")
    return "|".join(branches)


def generate() -> dict[str, object]:
    """The shapes as the JSON file holds them."""
    metas = [PhoneMetadata.metadata_for_region(region) for region in REGIONS]
    bare = [shape for meta in metas if (shape := bare_mobile(meta))]
    families = {
        "international": international(),
        "trunk": "|".join(dict.fromkeys(s for meta in metas if (s := trunk_shape(meta)))),
        "grouped": merged([s for meta in metas for s in grouped_shapes(meta)]),
        "bare_mobile": "|".join(dict.fromkeys(bare)),
    }
    return {
        "generated_by": "python -m scripts.phone_shapes (do not edit by hand)",
        "phonenumbers": phonenumbers.__version__,
        "regions": list(REGIONS),
        "shapes": {name: sql_safe(shape) for name, shape in families.items()},
    }


def render() -> str:
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        stale = not OUTPUT.exists() or OUTPUT.read_text() != text
        print(f"{OUTPUT.name}: {'stale, regenerate it' if stale else 'up to date'}")
        return 1 if stale else 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
