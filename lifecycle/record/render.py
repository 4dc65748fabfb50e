"""The record of processing as HTML, Markdown or JSON (templates beside the report's style)."""

from __future__ import annotations

import json

from lifecycle.record.build import Record
from lifecycle.templates import environment

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
    template = environment("lifecycle.record", fmt == "html").get_template(f"record.{fmt}.j2")
    sections = [(title, getattr(record, attr)) for title, attr in SECTIONS]
    return template.render(r=record, sections=sections).rstrip("\n") + "\n"
