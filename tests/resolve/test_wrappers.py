"""A wrapper package in some cells (tensorflow 2.12 on Windows is ``tensorflow-intel==2.12.x``,
whose requirements are tensorflow's own on Linux): the search judges the wrapper by the
requirements it installs, and a cell where that alone does not settle the conflict takes the
moves another cell found. Real wheels on a real pypiserver, the real resolver.

The release (CMSSW_14_0_0's shape, reduced): tensorflow 2.12.0, keras 2.11.0, gast 0.5.3,
beniget 0.4.1, pythran 0.12.1. tensorflow 2.12.x needs gast<=0.4.0 and keras 2.12 (on Linux
directly, on Windows through tensorflow-intel of the same version); tensorflow 2.8.0 accepts gast
0.5.3 and keras 2.8; beniget 0.4.1 and pythran 0.12.1 need gast 0.5. By the rule tensorflow (on
which nothing depends) moves, to 2.8.0 with keras, and gast, beniget and pythran stay: on Linux,
and on Windows too. (Before, the Windows cell saw only tensorflow-intel's conflict with gast and
moved gast, beniget, pythran and keras instead; on CMSSW_14_0_0 it ended with no set at all.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta.cells import Cell
from stackmeta.index import IndexClient
from stackmeta.resolve.cells import resolve_cells
from tests.pypiserver_fixture import make_wheel, package, pypiserver, synthetic_release

RELEASE = synthetic_release([package("tensorflow", "2.12.0"), package("gast", "0.5.3"),
                             package("beniget", "0.4.1"), package("pythran", "0.12.1"),
                             package("keras", "2.11.0")])
LINUX, WINDOWS = Cell.parse("3.9-linux-x86_64"), Cell.parse("3.9-windows-amd64")


def _fill(packages: Path) -> None:
    tf = {"2.8.0": ["gast>=0.2.1", "keras<2.9,>=2.8.0"],
          "2.12.0": ["gast<=0.4.0,>=0.2.1", "keras<2.13,>=2.12.0"],
          "2.12.1": ["gast<=0.4.0,>=0.2.1", "keras<2.13,>=2.12.0"]}
    for version, requires in tf.items():
        make_wheel(packages, "tensorflow", version, requires=requires, tag="cp39-cp39-manylinux2014_x86_64")
        make_wheel(packages, "tensorflow", version, requires=[f"tensorflow-intel=={version}"],
                   tag="cp39-cp39-win_amd64")
        make_wheel(packages, "tensorflow-intel", version, requires=requires, tag="cp39-cp39-win_amd64")
    for version in ("2.8.0", "2.11.0", "2.12.0"):
        make_wheel(packages, "keras", version)
    make_wheel(packages, "gast", "0.4.0")
    make_wheel(packages, "gast", "0.5.3")
    make_wheel(packages, "beniget", "0.3.0", requires=["gast<0.5,>=0.4"])
    make_wheel(packages, "beniget", "0.4.1", requires=["gast~=0.5.0"])
    make_wheel(packages, "pythran", "0.9.11", requires=["gast", "beniget~=0.3.0"])
    make_wheel(packages, "pythran", "0.12.1", requires=["gast~=0.5.0", "beniget~=0.4.0"])


@pytest.mark.slow
def test_a_wrapper_cell_finds_the_set_of_the_unwrapped_one(tmp_path: Path) -> None:
    with pypiserver(tmp_path / "server") as server:
        _fill(server.packages)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            matrix = resolve_cells(RELEASE, client, [LINUX, WINDOWS])
    assert matrix.failed == ()
    linux, windows = matrix.result(LINUX).nearest, matrix.result(WINDOWS).nearest
    assert linux is not None and windows is not None
    shipped = {"tensorflow", "gast", "beniget", "pythran", "keras"}
    assert {n: str(v) for n, v in linux.pins} == {"tensorflow": "2.8.0", "keras": "2.8.0", "gast": "0.5.3",
                                                   "beniget": "0.4.1", "pythran": "0.12.1"}
    assert {n: v for n, v in windows.pins if n in shipped} == {n: v for n, v in linux.pins}
    assert {n: v for n, v in windows.pins if n not in shipped} == {"tensorflow-intel": Version("2.8.0")}
    assert windows.omissions == ()


@pytest.mark.slow
def test_a_pin_whose_requirement_the_cell_cannot_install_moves_when_another_version_can(
        tmp_path: Path) -> None:
    """awkward 2.1.1 requires awkward-cpp==12, which has wheels for Python 3.9 only; on 3.12
    awkward moves to a version whose awkward-cpp has 3.12 wheels, it is not left out (before:
    "OMITTED awkward 2.1.1 ... it requires awkward-cpp==12, which this cell cannot install")."""
    release = synthetic_release([package("awkward", "2.1.1"), package("awkward-cpp", "12")])
    with pypiserver(tmp_path / "server") as server:
        make_wheel(server.packages, "awkward", "2.1.1", requires=["awkward-cpp==12"])
        make_wheel(server.packages, "awkward", "2.6.0", requires=["awkward-cpp==30"])
        make_wheel(server.packages, "awkward-cpp", "12", tag="cp39-cp39-manylinux2014_x86_64")
        for py in ("cp39", "cp312"):
            make_wheel(server.packages, "awkward-cpp", "30", tag=f"{py}-{py}-manylinux2014_x86_64")
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            matrix = resolve_cells(release, client, [Cell.parse("3.9-linux-x86_64"),
                                                     Cell.parse("3.12-linux-x86_64")])
    old, new = matrix.result(Cell.parse("3.9-linux-x86_64")).nearest, \
        matrix.result(Cell.parse("3.12-linux-x86_64")).nearest
    assert old is not None and new is not None
    assert {n: str(v) for n, v in old.pins} == {"awkward": "2.1.1", "awkward-cpp": "12"}
    assert {n: str(v) for n, v in new.pins} == {"awkward": "2.6.0", "awkward-cpp": "30"}
    assert new.omissions == ()
