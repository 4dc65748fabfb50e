"""Minimal sharing with carriers: the hand-off table, who may read it, and the files they receive.

One module per job: `handoff` (the selection and the refresh that makes logistics.handoff equal
to it), `access` (a role, its columns and a row policy per carrier), `checks` (the three proofs,
run by connecting as every role) and `files` (CSV exports with a manifest). docs/logistics.md.
"""
