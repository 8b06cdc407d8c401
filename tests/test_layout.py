"""The package's layout: stages in the order data flows through them, and no module imports
from a later stage (the shared modules at the top import no stage at all)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stackmeta"
# data flows: read a manifest -> judge an index -> check -> resolve -> write locks -> package
STAGES = ("manifest", "index", "check", "resolve", "locks", "package")
SHARED = ("errors", "atomic", "console", "credentials", "progress", "target", "cells", "release", "record",
          "childenv", "pythons", "once")
TOP = ("commands", "cli", "__main__")


def _rank(module: str) -> int:
    """0 for the package itself and the shared modules, 1.. for the stages, then the CLI."""
    parts = module.split(".")
    if parts[0] != "stackmeta":
        raise ValueError(module)
    if len(parts) == 1 or parts[1] in SHARED or parts[1] == "__version__":
        return 0
    if parts[1] in STAGES:
        return 1 + STAGES.index(parts[1])
    if parts[1] in TOP:
        return 1 + len(STAGES)
    raise AssertionError(f"{module}: not in a stage, the shared modules or the CLI: place it")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "stackmeta":
                found += [(node.lineno, f"stackmeta.{a.name}") for a in node.names]
            elif node.module.startswith("stackmeta."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("stackmeta.")]
    return found


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_module(p) for p in MODULES])
def test_no_import_from_a_later_stage(path: Path) -> None:
    me = _module(path)
    backwards = [f"{path.relative_to(PACKAGE.parent)}:{line}: {me} imports {target}"
                 for line, target in _imports(path) if _rank(target) > _rank(me)]
    assert backwards == []


def test_every_folder_is_a_stage() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {*STAGES, "commands"}
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", *SHARED, *TOP}
    assert loose == set()


def test_the_main_job_loads_no_resolver() -> None:
    """Building the metapackages from committed records reads the cells; it resolves nothing,
    so neither resolvelib nor the search is imported."""
    code = ("import sys, stackmeta.package.pipeline, stackmeta.commands.build; print(sorted(m for m in "
            "sys.modules if m.startswith(('resolvelib', 'stackmeta.resolve.search'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]"
