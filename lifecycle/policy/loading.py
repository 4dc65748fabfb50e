"""Reading policy.yaml: parsed, validated and fingerprinted, each problem named by file, field and fix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lifecycle.policy.consistency import cross_section_problems
from lifecycle.policy.errors import PolicyError
from lifecycle.policy.model import Policy

_FIXES = {
    "greater_than_equal": "use a whole number of days, 0 or more",
    "less_than_equal": "use a smaller whole number (docs/policy.md gives each field's bounds)",
    "extra_forbidden": "remove it or check its spelling against docs/policy.md",
    "missing": "add it (see docs/policy.md)",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "literal_error": "use one of the listed values",
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last).

    A second `after_sales_window_days: 0` further down the file must not silently win.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key]}); "
                    "keep one of them",
                    key_node.start_mark,
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _describe(path: Path, err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    got = err.get("input")
    got_text = (
        f" (got {got!r})" if isinstance(got, (int, float, str)) and err["type"] != "missing" else ""
    )
    fix = _FIXES.get(err["type"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path.name}: {where}: {msg}{got_text}" + (f"; {fix}" if fix else "")


def parse_policy(text: str, path: Path) -> Policy:
    """Validates policy text; raises PolicyError naming the file, field and fix for each problem."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "somewhere"
        raise PolicyError(
            [f"{path.name}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    if not isinstance(data, dict):
        raise PolicyError(
            [f"{path.name}: (top level): expected a mapping with version, raw and retention"]
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError([_describe(path, e) for e in exc.errors()]) from None
    crossed = cross_section_problems(policy)
    if crossed:
        raise PolicyError([f"{path.name}: {field}: {problem}" for field, problem in crossed])
    policy._path = path
    policy._sha256 = hashlib.sha256(text.encode()).hexdigest()
    return policy


def load_policy(path: Path) -> Policy:
    """Reads and validates the policy file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            [f"{path}: file not found; set LIFECYCLE_POLICY or create policy.yaml"]
        ) from None
    except IsADirectoryError:
        raise PolicyError(
            [f"{path}: is a folder, not a file; set LIFECYCLE_POLICY to the policy file itself"]
        ) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise PolicyError(
            [f"{path}: line {line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
        ) from None
    except OSError as exc:
        raise PolicyError(
            [f"{path}: cannot be read ({exc.strerror}); check the path and its permissions"]
        ) from None
    return parse_policy(text, path)
