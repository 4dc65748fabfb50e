"""Raw values in a document the project writes (the compliance report): checked before it is
written, since a report has no fixed folder a nightly scan could watch (`--out` is any path).

The rendered text is split into lines, tokenized and hashed in Python with the guard's key and
compared with the raw zone's digests, exactly like the run log (lifecycle.guard.run_log): the text
never enters the database, and a finding names the line, never the value.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from lifecycle.checks import CheckResult
from lifecycle.guard.key import GuardKey
from lifecycle.guard.run_log import raw_values_in_run_log
from lifecycle.policy import Policy


def raw_values_in_document(
    engine: Engine, policy: Policy, key: GuardKey, name: str, text: str
) -> CheckResult:
    """No personal raw value appears in the document `name` about to be written as `text`.

    Each line is its own location (`line 12`), so a refusal names the lines to look at. The
    policy's time zone, which the report quotes, is cut out where written whole as a name
    (`America/Sao_Paulo`; lifecycle.guard.provenance, own names)."""
    lines = [(f"line {number}", number, line) for number, line in enumerate(text.splitlines(), 1)]
    own = [policy.analytics.timezone]
    return raw_values_in_run_log(engine, policy, key, lines, log=name, own_names=own)


def refusal(name: str, result: CheckResult) -> str:
    """One line saying why the document is not written: kinds and line numbers, no value."""
    if result.error:
        return f"not writing {name}: its raw-value check could not run ({result.error})"
    kinds: dict[str, list[int]] = {}
    for f in result.findings:
        kinds.setdefault(f.kind, []).append(int(f.column.removeprefix("line ")))
    found = "; ".join(
        f"{kind} on line{'s' if len(lines) > 1 else ''} {', '.join(map(str, sorted(lines)))}"
        for kind, lines in sorted(kinds.items())
    )
    return (
        f"not writing {name}: it holds personal values still in the raw zone ({found}); "
        "remove them from what the report quotes (--ui-url, policy texts) and run it again"
    )
