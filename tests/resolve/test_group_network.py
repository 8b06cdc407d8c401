"""A working group's commands on CMSSW_14_0_0, as the README prints them, against the real
PyPI, with this machine's real Pythons (pyenv): constraints, pip-compile and uv pip compile of
a group.in, a group metapackage with moves, an overlay environment. Run with -m network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.cells import Cell
from stackmeta.resolve.matrix import load_cells
from stackmeta.resolve.venv import list_installed
from tests.clirunner import run_cli
from tests.pypiserver_fixture import env_without_index

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "locks"
BIN = Path(sys.executable).parent
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
GROUP = ["uproot", "hist", "mplhep", "vector", "coffea", "awkward", "dask-awkward", "correctionlib"]
pytestmark = pytest.mark.network


def _python(minor: str) -> Path:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"no Python {minor} under {PYENV}")
    return found[-1]


def _venv(python: Path, where: Path) -> Path:
    subprocess.run([python, "-m", "venv", where], check=True)
    return where / "bin" / "python"


def _pins(path: Path, minor: str = "3.9") -> dict[str, Version]:
    """The pins of a requirements file that hold on this machine (linux x86_64) for Python
    *minor*: a line's marker (the cells of a .nearest.txt) is evaluated."""
    env = {"python_version": minor, "python_full_version": f"{minor}.0", "sys_platform": "linux",
           "platform_machine": "x86_64", "platform_system": "Linux", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "==" in line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                [spec] = req.specifier
                out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def _within(installed: dict[str, str], constraints: dict[str, Version]) -> list[str]:
    """Installed versions other than the constraints (the venv's own seeded pip and setuptools
    were not installed under them)."""
    return [f"{n} {v} (constraint {constraints[n]})" for n, v in installed.items()
            if n in constraints and Version(v) != constraints[n] and n not in ("pip", "setuptools")]


@pytest.mark.parametrize("minor", ["3.9", "3.12"])
def test_pip_install_with_the_readmes_constraints(tmp_path: Path, minor: str) -> None:
    """README: pip install -c locks/CMSSW_14_0_0.nearest.txt coffea, on the release's Python
    (3.9) and a newer one (the file's markers give each its cell's pins)."""
    python = _venv(_python(minor), tmp_path / "venv")
    started = time.monotonic()
    proc = subprocess.run([python, "-m", "pip", "install", "--index-url", "https://pypi.org/simple",
                           "-c", LOCKS / "CMSSW_14_0_0.nearest.txt", "coffea"],
                          capture_output=True, text=True, env=env_without_index(), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    have = list_installed(str(python)).dists
    assert "coffea" in have
    assert _within(have, _pins(LOCKS / "CMSSW_14_0_0.nearest.txt", minor)) == []
    print(f"pip install -c nearest coffea on {minor}: coffea {have['coffea']}, "
          f"{time.monotonic() - started:.0f} s")


@pytest.mark.parametrize("minor", ["3.9", "3.12"])
@pytest.mark.parametrize("tool", ["pip-compile", "uv"])
def test_a_group_in_compiles_against_the_readmes_constraints(tmp_path: Path, tool: str, minor: str) -> None:
    """README: pip-compile / uv pip compile -c locks/CMSSW_14_0_0.nearest.txt group.in, on the
    release's Python and a newer one."""
    group = tmp_path / "group.in"
    group.write_text("\n".join(GROUP) + "\n")
    out = tmp_path / "group.txt"
    constraints = LOCKS / "CMSSW_14_0_0.nearest.txt"
    if tool == "uv":
        cmd: list[str | Path] = [BIN / "uv", "pip", "compile", "--python", _python(minor), "--index-url",
                                 "https://pypi.org/simple", "-c", constraints, group, "-o", out]
    else:
        venv = _venv(_python(minor), tmp_path / "tools")
        subprocess.run([venv, "-m", "pip", "install", "-q", "pip-tools", "--index-url",
                        "https://pypi.org/simple"], check=True, env=env_without_index(), timeout=600)
        cmd = [venv.parent / "pip-compile", "--index-url", "https://pypi.org/simple", "-c", constraints,
               group, "-o", out]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_without_index(), timeout=1800,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    compiled = _pins(out, minor)  # pip-compile copies the constraints' markers into its output
    assert set(map(canonicalize_name, GROUP)) <= set(compiled)
    wanted = _pins(constraints, minor)
    assert [f"{n} {v}" for n, v in compiled.items() if n in wanted and v != wanted[n]] == []
    print(f"{tool} group.in on {minor}: coffea {compiled['coffea']}, {time.monotonic() - started:.0f} s")


def _cell_pins(locks: Path, minor: str) -> dict[str, Version]:
    """The nearest set of the cell <minor>-linux-x86_64 in the record's cells section."""
    matrix = load_cells(locks, "CMSSW_14_0_0")
    assert matrix is not None, "CMSSW_14_0_0's record has no cells section"
    found = matrix.result(Cell.parse(f"{minor}-linux-x86_64")).nearest
    assert found is not None
    return dict(found.pin_map)


@pytest.fixture(scope="module")
def group_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path, float]:
    """README: stackmeta build --base CMSSW_14_0_0 --add coffea==2024.4.0 [--allow-moves], once
    for the module: refused without --allow-moves, built with it (locks, JSON, wheel, seconds)."""
    tmp_path = tmp_path_factory.mktemp("group")
    locks = tmp_path / "locks"
    shutil.copytree(LOCKS, locks)
    started = time.monotonic()
    code, out, err = run_cli("build", "--base", "CMSSW_14_0_0", "--add", "coffea==2024.4.0", "--name",
                             "hgg-analysis-stack", "--version", "1.0", "--out", str(tmp_path / "dist"),
                             "--build-dir", str(tmp_path / "build"), "--locks-dir", str(locks))
    assert code == 1 and "needs: " in err and "pass --allow-moves" in err, err
    code, out, err = run_cli("build", "--base", "CMSSW_14_0_0", "--add", "coffea==2024.4.0", "--allow-moves",
                             "--name", "hgg-analysis-stack", "--version", "1.0", "--out",
                             str(tmp_path / "dist"), "--build-dir", str(tmp_path / "build"),
                             "--locks-dir", str(locks), "--json")
    assert code == 0, err
    built = json.loads(out)
    wheel = next(Path(f["file"]) for f in built["files"] if f["file"].endswith(".whl"))
    assert wheel.name == "hgg_analysis_stack-1.0-py3-none-any.whl"
    return locks, built, wheel, time.monotonic() - started


@pytest.mark.parametrize("minor", ["3.9", "3.12"])
def test_group_metapackage_with_moves_installs_its_pins(
        tmp_path: Path, minor: str, group_build: tuple[Path, dict[str, Any], Path, float]) -> None:
    """README: stackmeta build --base CMSSW_14_0_0 --add coffea==2024.4.0 --allow-moves; refused
    without --allow-moves, built with it in every cell of the record; in the cell of *minor* on
    linux-x86_64 every deviation from that cell's set is a move the plan announced, and real pip
    installs the one wheel from PyPI into a fresh venv of that Python: exactly that cell's pins."""
    locks, built, wheel, took = group_build
    cell = next(c for c in built["cells"] if c["cell"] == f"{minor}-linux-x86_64")
    assert "failure" not in cell, cell.get("failure")
    nearest = _cell_pins(locks, minor)
    moved = {m["name"]: m["to"] for m in cell["moves"]}
    pins = {canonicalize_name(n): Version(v) for n, v in cell["pins"].items()}
    # each deviation from the cell's set is one the plan announced
    assert {n for n, v in pins.items() if n in nearest and nearest[n] != v} == set(moved)
    python = _venv(_python(minor), tmp_path / "venv")
    started = time.monotonic()
    proc = subprocess.run([python, "-m", "pip", "install", "--index-url", "https://pypi.org/simple", wheel],
                          capture_output=True, text=True, env=env_without_index(), timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    have = {canonicalize_name(n): Version(v) for n, v in list_installed(str(python)).dists.items()}
    assert {n: v for n, v in pins.items() if have.get(n) != v} == {}
    print(f"group on {minor}: {len(moved)} moves, {len(pins)} pins; build {took:.0f} s, "
          f"install {time.monotonic() - started:.0f} s")


@pytest.mark.parametrize("minor", ["3.9", "3.12"])
def test_overlay_env_with_awkward_2_6_3_imports_coffea(tmp_path: Path, minor: str) -> None:
    """README: stackmeta env CMSSW_14_0_0 DIR --override awkward==2.6.3 --allow-moves --add coffea,
    on Python *minor* (the record's set of that cell); packages pip cannot build on a plain
    machine are left out with --exclude."""
    locks = tmp_path / "locks"
    shutil.copytree(LOCKS, locks)
    dest = tmp_path / "deep" / "er" / "env"  # parents that do not exist yet
    excluded = os.environ.get("STACKMETA_TEST_EXCLUDE", "").split()
    started = time.monotonic()
    code, out, err = run_cli("env", "CMSSW_14_0_0", str(dest), "--override", "awkward==2.6.3", "--add",
                             "coffea==2024.4.0", "--allow-moves", "--python", str(_python(minor)),
                             "--locks-dir", str(locks), "--json",
                             *[a for name in excluded for a in ("--exclude", name)])
    assert code == 0, err[-3000:]
    result = json.loads(out)
    assert result["created"] is True
    assert result["cell"] == f"{minor}-linux-x86_64"
    plan = result["plan"]
    made = json.loads((dest / "stackmeta-env.json").read_text())
    have = list_installed(str(dest / "bin" / "python")).dists
    nearest = _cell_pins(locks, minor)  # the cell's set, not the release's own (3.9) one
    # what the environment's cell could not install of the set is left out up front, announced
    announced = ({m["name"] for m in plan["moves"]} | {"awkward"} | set(plan["excluded"])
                 | {lo["name"] for lo in plan["left_out"] if lo["by"] == "env"})
    differs = {n for n, v in nearest.items() if n not in have or Version(have[n]) != v}
    assert differs == announced
    assert made["pins"] == plan["pins"]
    proc = subprocess.run([dest / "bin" / "python", "-c", "import coffea, awkward, uproot; "
                           "print(awkward.__version__)"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "2.6.3", proc.stderr[-2000:]
    print(f"overlay env on {minor}: {len(plan['pins'])} packages, {time.monotonic() - started:.0f} s")
