"""The leak guard: proves that no raw personal data reaches analytics, and that analysts cannot
read it.

Each scan is a plain function over the database returning a `lifecycle.checks.CheckResult`:
findings name table, column, kind, how many rows and masked samples (length and keyed-hash
prefix), never a value; a database error makes a failed result. The zone is discovered at run
time: every table, view and materialized view in `analytics`, whoever made it.

- `zone`: what is in the analytics zone; `patterns`: what personal data looks like;
  `counts`: rule breaks counted in one statement per relation; `gx`: the same rules as Great
  Expectations suites; `key`: the HMAC key and masked forms;
  `tokens`: the tokenizer, in SQL and Python; `fingerprints`: candidates, raw digests, hits,
  matches.
- The scans, one kind of proof each: `names`, `values`, `raw_values`, `cells`, `minimisation`,
  `privilege`, `run_log`; `scan` is what they share (timing, database errors).
- `terminal`: status lines and a findings table for a command line.

The checks' names, and which scans make up a night, are Dagster's business (assets/guard.py);
docs/guard.md says what each scan looks for and how to fix what it finds.
"""
