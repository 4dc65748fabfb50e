"""The record of processing as HTML, Markdown or JSON (templates beside the report's style)."""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2

from lifecycle.record.build import Record

FORMATS = ("html", "md", "json")
SECTIONS = (
    ("Purposes and legal basis", "purposes"),
    ("Categories of personal data", "categories"),
    ("Recipients", "recipients"),
    ("Retention", "retention"),
    ("Technical and organisational measures", "measures"),
)


def render(record: Record, fmt: str) -> str:
    """The record as `fmt` (html, md or json)."""
    if fmt == "json":
        return json.dumps(record.as_dict(), indent=2) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")
    template = _environment(fmt == "html").get_template(f"record.{fmt}.j2")
    sections = [(title, getattr(record, attr)) for title, attr in SECTIONS]
    return template.render(r=record, sections=sections).rstrip("\n") + "\n"


@lru_cache(maxsize=2)
def _environment(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lifecycle.record", "templates"),
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    return env
