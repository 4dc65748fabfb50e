"""docs/retention.md shows the purge's due condition for the reference policy, exactly as the code
builds it: a change to the SQL fails here until the document says the same.

To refresh the document after a deliberate change: LIFECYCLE_UPDATE_DOCS=1 pytest tests/unit/test_retention_doc.py
"""

import os
import re

from lifecycle.retention.rules import due_condition
from lifecycle.settings import PROJECT_DIR

DOC = PROJECT_DIR / "docs" / "retention.md"
BLOCK = re.compile(
    r"(<!-- due-condition:begin -->\n```sql\n)(.*?)(```\n<!-- due-condition:end -->)", re.S
)


def test_the_documented_due_condition_is_the_one_the_purge_runs(policy):
    text = DOC.read_text(encoding="utf-8")
    match = BLOCK.search(text)
    assert match, "docs/retention.md lacks the due-condition block"
    rendered = due_condition(policy) + "\n"
    if os.environ.get("LIFECYCLE_UPDATE_DOCS") == "1":
        DOC.write_text(text[: match.start(2)] + rendered + text[match.end(2) :], encoding="utf-8")
        return
    assert match.group(2) == rendered, (
        "docs/retention.md shows another due condition than lifecycle/retention/rules.py builds; "
        "review the change, then run LIFECYCLE_UPDATE_DOCS=1 pytest tests/unit/test_retention_doc.py"
    )
