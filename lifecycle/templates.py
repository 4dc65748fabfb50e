"""The one Jinja2 environment of every document the project writes (report, record of processing).

HTML is autoescaped, so a value from the database never becomes markup; Markdown gets the `md`
filter, which keeps a value inside its table cell. Undefined names fail instead of printing empty.
"""

from __future__ import annotations

from functools import lru_cache

import jinja2


@lru_cache(maxsize=8)
def environment(package: str, html: bool) -> jinja2.Environment:
    """Templates of `package`'s templates/ folder, for HTML (autoescaped) or Markdown."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env
