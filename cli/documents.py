"""The options of every command that writes a document (`report`, `record`): where, and as what."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("html", "md", "json")


def document_options(command):
    """`--out FILE` (required) and `--format html|md|json` (default: from the file's suffix)."""
    command = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        help="Default: from the --out suffix (.md, .json), else html.",
    )(command)
    return click.option(
        "--out",
        type=click.Path(path_type=Path, dir_okay=False),
        required=True,
        help="File to write.",
    )(command)


def chosen_format(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the file's suffix names, else html."""
    return fmt or {".md": "md", ".json": "json"}.get(out.suffix.lower(), "html")
