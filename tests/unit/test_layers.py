"""The domain core stands on its own: every module of lifecycle/ imports with Dagster (and the
Dagster-side packages) made unimportable, so arrows point inward only."""

import subprocess
import sys

from lifecycle.settings import PROJECT_DIR

BLOCKED = (
    "dagster",
    "dagster_postgres",
    "dagster_webserver",
    "orchestration",
    "assets",
    "sensors",
    "definitions",
    "cli",
)

IMPORT_ALL = f"""
import importlib, pkgutil, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"the domain core imported {{name}}")

sys.meta_path.insert(0, Refuse())
import lifecycle
names = [m.name for m in pkgutil.walk_packages(lifecycle.__path__, "lifecycle.")
         if ".migrations" not in m.name]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_domain_module_imports_without_dagster():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) > 30  # the walk found the packages, not an empty tree


# Each layer may import only the layers listed after it: cli → definitions → assets, sensors →
# orchestration → lifecycle. A static read of the imports is enough (no import-time side effects).
LAYERS = {
    "orchestration": {"assets", "sensors", "definitions", "cli"},
    "assets": {"sensors", "definitions", "cli"},
    "sensors": {"definitions", "cli"},
    "definitions.py": {"cli"},
}


def imported_top_packages(path):
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_outer_layers_only_point_inward():
    backward = []
    for layer, forbidden in LAYERS.items():
        root = PROJECT_DIR / layer
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        assert files, layer
        for path in files:
            backward += [
                f"{path.relative_to(PROJECT_DIR)} imports {name}"
                for name in imported_top_packages(path)
                if name in forbidden
            ]
    assert backward == []
