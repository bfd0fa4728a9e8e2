"""The folders are the architecture, so imports must only run downwards through it.

    ground contracts (webid, pitime, value_columns, errors, settings)
      -> client / simulator / storage -> batch / streaming -> defs -> launcher, cli, bench

`bench/` measures the batch and streaming layers themselves, so it may not import `defs/`; and `defs/` holds only
Dagster wiring: a module there that does not import Dagster belongs in a lower layer. Imports are read from the
source (every `import` statement, including those inside functions), not from what happens to be loaded.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pi_platform"
LAYERS = {
    "webid": 0, "pitime": 0, "value_columns": 0, "errors": 0, "settings": 0, "plantday": 0, "sharding": 0, "gss": 0,
    "client": 1, "simulator": 1, "storage": 1,
    "batch": 2, "streaming": 2, "feed": 2,
    "defs": 3,
    "launcher": 4, "cli": 4, "bench": 4, "viewer": 4,
}


def _unit(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith("pi_platform.")]


def _modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts), p) for p in PACKAGE.rglob("*.py")]


def test_every_top_level_unit_has_a_layer():
    units = {_unit(name) for name, _ in _modules() if name.count(".") >= 1} - {"__init__"}
    assert units <= set(LAYERS), f"give these a layer: {sorted(units - set(LAYERS))}"


def test_imports_only_run_down_the_layers():
    upward = []
    for name, path in _modules():
        if name.count(".") < 1 or _unit(name) == "__init__":
            continue
        here = _unit(name)
        for target in _imports(path):
            there = _unit(target)
            if LAYERS[there] > LAYERS[here] or (here == "bench" and there == "defs"):
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_defs_holds_only_dagster_wiring():
    plain = []
    for name, path in _modules():
        if _unit(name) == "defs" and path.name != "__init__.py":
            tree = ast.parse(path.read_text())
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            if not any(n == "dagster" or n.startswith("dagster.") for n in names):
                plain.append(name)
    assert plain == [], "modules without Dagster belong in batch/, streaming/ or storage/"
