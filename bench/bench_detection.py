"""Detection quality of the leak guard's value patterns: recall per kind and locale on the labelled
corpus of personal values, and false positives per kind on the clean corpus of what analytics
tables hold (tests/detection_corpus.py). PostgreSQL evaluates the patterns exactly as the guard
does (lifecycle.guard.patterns.matches_sql). Targets (issue 15): recall >= 98% for every claimed
kind in every locale, 0 false positives.

    .venv/bin/python bench/bench_detection.py [--per-kind 300] [--clean 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Bench, fresh_database  # noqa: E402
from tests.detection_corpus import (  # noqa: E402
    CLAIMED,
    LOCALES,
    clean,
    detected,
    false_positives,
    personal,
    recall,
)

TARGET = 0.98


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=300)
    parser.add_argument("--clean", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    bench = Bench(
        "detection",
        f"python bench/bench_detection.py --per-kind {args.per_kind} --clean {args.clean} "
        f"--seed {args.seed}",
    )
    engine = fresh_database("lifecycle_bench_detection")
    with bench.measure("make the corpus (Faker, phonenumbers)") as box:
        samples = list(personal(args.per_kind, args.seed)) + list(clean(args.clean, args.seed))
        box["rows"] = len(samples)
    with bench.measure("evaluate the four patterns in SQL", rows=len(samples)):
        with engine.begin() as conn:
            found = detected(conn, samples)
    table = recall(samples, found)
    for kind in CLAIMED:
        cells = []
        for locale in LOCALES:
            caught, total = table[(kind, locale)]
            share = caught / total
            cells.append(f"{locale} {share:.1%}" + ("" if share >= TARGET else " (below)"))
        bench.notes.append(f"recall, {kind} ({args.per_kind * 2} per locale): " + ", ".join(cells))
    fp = false_positives(samples, found)
    bench.notes.append(
        f"false positives on the clean corpus ({args.clean} per kind): "
        + ", ".join(f"{kind} {fired}/{total}" for kind, (fired, total) in fp.items())
    )
    bench.notes.append(
        "Half of each locale's values stand alone, half inside a sentence in one of eight languages. "
        "Phones are Faker's numbers that `phonenumbers` calls valid for the locale's region; card "
        "numbers are Faker's across issuers (12-digit Maestro included)."
    )
    for note in bench.notes:
        print(note)
    bench.write(engine)
    engine.dispose()


if __name__ == "__main__":
    main()
