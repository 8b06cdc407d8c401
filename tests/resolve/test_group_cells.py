"""A working group's metapackage over the cells of its release: `stackmeta build --base` on a
record resolved in cells plans the group in each cell and writes one wheel whose requirements
carry the cells' markers. Real parts: a pypiserver on loopback, the real resolver, and (slow)
real pip in fresh venvs of two Pythons installing the wheel.

The synthetic release (Python 3.9; cells 3.9 and 3.10 x the five laptop platforms) ships
numlib 1.24.3 and basepkg 1.0 (pure wheels). The group adds addlib:
- addlib 1.0 has wheels for CPython 3.9 only (cp39) and requires numlib>=1.20 and helper;
  addlib 2.0 has a wheel for Python 3.10 only (py310) and requires numlib>=1.26 and helper:
  the 3.9 cells take addlib 1.0, the 3.10 cells addlib 2.0 and move numlib to 1.26.0;
- helper has wheels for Linux and Windows only: on macOS the group has no set.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.resolve.matrix import CELLS_SECTION
from tests.clirunner import run_cli
from tests.pypiserver_fixture import (
    Server,
    env_without_index,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

PYTHONS = {v: Path.home() / f".pyenv/versions/{full}/bin/python" for v, full in
           (("3.9", "3.9.18"), ("3.10", "3.10.13"))}
PLATFORM_TAGS = ("manylinux2014_x86_64", "manylinux2014_aarch64", "macosx_10_9_x86_64", "macosx_11_0_arm64",
                 "win_amd64")
RELEASE = synthetic_release([package("numlib", "1.24.3"), package("basepkg", "1.0")])
OUTSIDE = ('(sys_platform != "linux" and sys_platform != "darwin" and sys_platform != "win32") or '
           '(sys_platform == "linux" and platform_machine != "x86_64" and platform_machine != "aarch64") or '
           '(sys_platform == "darwin" and platform_machine != "x86_64" and platform_machine != "arm64") or '
           '(sys_platform == "win32" and platform_machine != "AMD64")')
EXPECTED = [
    'addlib==1.0; python_version < "3.10" and (sys_platform == "linux" or sys_platform == "win32")',
    'addlib==2.0; python_version >= "3.10" and (sys_platform == "linux" or sys_platform == "win32")',
    'basepkg==1.0; sys_platform == "linux" or sys_platform == "win32"',
    'helper==1.0; sys_platform == "linux" or sys_platform == "win32"',
    'numlib==1.24.3; python_version < "3.10" and (sys_platform == "linux" or sys_platform == "win32")',
    'numlib==1.26.0; python_version >= "3.10" and (sys_platform == "linux" or sys_platform == "win32")',
    f'hgg-analysis-stack-has-no-cell-for-this-platform<0; ({OUTSIDE}) or sys_platform == "darwin"',
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pypiserver(tmp_path_factory.mktemp("server")) as srv:
        make_wheel(srv.packages, "numlib", "1.24.3")
        make_wheel(srv.packages, "numlib", "1.26.0")
        make_wheel(srv.packages, "basepkg", "1.0")
        for plat in PLATFORM_TAGS:
            make_wheel(srv.packages, "addlib", "1.0", ["numlib>=1.20", "helper"], tag=f"cp39-cp39-{plat}")
        make_wheel(srv.packages, "addlib", "2.0", ["numlib>=1.26", "helper"], tag="py310-none-any")
        for plat in ("manylinux2014_x86_64", "manylinux2014_aarch64", "win_amd64"):
            make_wheel(srv.packages, "helper", "1.0", tag=f"py3-none-{plat}")
        yield srv


@pytest.fixture
def locks(server: Server, tmp_path: Path) -> Path:
    locks = tmp_path / "locks"
    write_record(locks, RELEASE)
    code, _, err = run_cli("resolve", "CMSSW_14_0_0", "--index-url", server.simple, "--newest-python", "3.10",
                           "--cache-dir", str(tmp_path / "cache"), "--locks-dir", str(locks), "--quiet")
    assert code == 0, err
    return locks


def _build(locks: Path, tmp_path: Path, *more: str) -> tuple[int, str, str]:
    return run_cli("build", "--base", "CMSSW_14_0_0", "--add", "addlib", "--name", "hgg-analysis-stack",
                   "--version", "1.0", "--out", str(tmp_path / "dist"),
                   "--build-dir", str(tmp_path / "build"),
                   "--cache-dir", str(tmp_path / "cache"), "--locks-dir", str(locks), *more)


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name).decode().splitlines()


def _group(locks: Path, tmp_path: Path) -> tuple[dict[str, object], Path]:
    code, out, err = _build(locks, tmp_path, "--allow-moves", "--json")
    assert code == 0, err
    result = json.loads(out)
    wheel = tmp_path / "dist" / "hgg_analysis_stack-1.0-py3-none-any.whl"
    assert wheel.exists()
    return result, wheel


def test_the_group_wheel_carries_each_cells_pins_as_markers(locks: Path, tmp_path: Path) -> None:
    result, wheel = _group(locks, tmp_path)
    meta = _metadata(wheel)
    assert [line.split(": ", 1)[1] for line in meta if line.startswith("Requires-Dist: ")] == EXPECTED
    assert "Requires-Python: <3.11,>=3.9" in meta
    # the home cell's plan at the top (as without cells), every cell's in "cells"
    assert result["cell"] == "3.9-linux-x86_64"
    assert result["pins"] == {"addlib": "1.0", "basepkg": "1.0", "helper": "1.0", "numlib": "1.24.3"}
    assert result["moves"] == []
    cells = {c["cell"]: c for c in result["cells"]}  # type: ignore[attr-defined]
    assert len(cells) == 10
    newer = cells["3.10-windows-amd64"]
    assert newer["pins"] == {"addlib": "2.0", "basepkg": "1.0", "helper": "1.0", "numlib": "1.26.0"}
    assert newer["moves"] == [{"name": "numlib", "from": "1.24.3", "to": "1.26.0",
                               "reason": "addlib 2.0 requires numlib>=1.26"}]
    assert newer["python"] == "3.10" and newer["platform"] == "windows-amd64"
    mac = cells["3.10-macos-arm64"]
    assert set(mac) == {"cell", "failure"}
    assert mac["failure"].startswith(
        "CMSSW_14_0_0: no set holds --add addlib for Python 3.10 on macos-arm64: helper: ")
    # the work is reused: cells that answer alike get the plan without planning
    planned = [c for c in cells.values() if "failure" not in c]
    assert len(planned) == 6
    assert sum(c["same_as"] is not None for c in planned) == 4


def test_moves_in_a_cell_are_refused_without_allow_moves_and_failed_cells_are_named(
        locks: Path, tmp_path: Path) -> None:
    code, _, err = _build(locks, tmp_path)
    assert code == 1
    lines = err.strip().splitlines()
    # the home cell first, then its Python's; the first cell that moves pins settles it
    assert lines[-1] == (
        "error: in 3.10-linux-aarch64: --add addlib needs: numlib 1.24.3 -> 1.26.0 (addlib 2.0 requires "
        "numlib>=1.26): nothing was built; pass --allow-moves to build with these moves, or choose other "
        "versions")
    assert "4 more cells not planned: the first cell that moves pins settles it" in err
    failed = [line for line in lines if "no set for the group here" in line]
    assert [line.split(":", 2)[1].strip() for line in failed] == ["3.9-macos-arm64", "3.9-macos-x86_64"]
    assert not (tmp_path / "dist").exists()


def test_without_a_cells_section_the_group_is_planned_for_the_records_cell(
        locks: Path, tmp_path: Path) -> None:
    path = record.record_path(locks, "CMSSW_14_0_0")
    doc = record.read_document(path)
    del doc[CELLS_SECTION]
    record.write_document(path, doc)
    result, wheel = _group(locks, tmp_path)
    assert "cells" not in result
    meta = _metadata(wheel)
    assert [line.split(": ", 1)[1] for line in meta if line.startswith("Requires-Dist: ")] == [
        "addlib==1.0", "basepkg==1.0", "helper==1.0", "numlib==1.24.3"]
    assert "Requires-Python: ==3.9.*" in meta


@pytest.mark.slow
def test_real_pip_installs_each_cells_group_pins(locks: Path, server: Server, tmp_path: Path) -> None:
    missing = [str(p) for p in PYTHONS.values() if not p.exists()]
    if missing:
        pytest.skip(f"no {', '.join(missing)} here")
    result, wheel = _group(locks, tmp_path)
    cells = {c["cell"]: c for c in result["cells"]}  # type: ignore[attr-defined]
    env = env_without_index()
    for minor, python in PYTHONS.items():
        venv = tmp_path / f"venv{minor}"
        subprocess.run([python, "-m", "venv", venv], check=True)
        pip = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", str(wheel),
                              "--index-url", server.simple], env=env, capture_output=True, text=True)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        listed = subprocess.run([venv / "bin/python", "-m", "pip", "list", "--format=json"], env=env,
                                capture_output=True, text=True, check=True)
        got = {p["name"]: p["version"] for p in json.loads(listed.stdout)
               if p["name"] not in ("pip", "setuptools", "hgg-analysis-stack")}
        assert got == cells[f"{minor}-linux-x86_64"]["pins"]
