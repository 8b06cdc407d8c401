"""A version whose metadata does not parse under current packaging (hepdata-lib 0.10.1's
``Requires-Dist: PyYAML (>4.*)``) is ignored by pip 24.1 and later ("has invalid metadata"), so
it is not installable in a cell whose Python runs such a pip (3.8 and later): the cell moves it,
and says why. Python 2 cells keep it (their pip reads it leniently). Real wheels on a real
pypiserver; real pip refuses the version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.cells import Cell
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.resolve.cells import resolve_cells
from stackmeta.target import Target
from tests.pypiserver_fixture import env_without_index, make_wheel, package, pypiserver, synthetic_release


def fill(packages: Path) -> None:
    for tag in ("py2.py3-none-any",):
        make_wheel(packages, "hepdlib", "0.10.1", requires=["PyYAML (>4.*)", "six"], tag=tag)
        make_wheel(packages, "hepdlib", "0.10.2", requires=["PyYAML>4", "six"], tag=tag)
        make_wheel(packages, "pyyaml", "6.0", tag=tag)
        make_wheel(packages, "six", "1.16.0", tag=tag)


def test_pip_ignores_invalid_metadata_and_so_does_a_cell(tmp_path: Path) -> None:
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        # the pip of this environment (24.1 or later) refuses the version outright
        pip = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d",
                              str(tmp_path / "dl"), "hepdlib==0.10.1", "--index-url", server.simple],
                             env=env_without_index(), capture_output=True, text=True, timeout=300)
        assert pip.returncode != 0 and "has invalid metadata" in pip.stdout + pip.stderr
        release = synthetic_release([package("hepdlib", "0.10.1"), package("pyyaml", "6.0"),
                                     package("six", "1.16.0")])
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            matrix = resolve_cells(release, client, [Cell(python=(3, 9), platform="linux-x86_64")],
                                   builds=Builds(client))
            py2 = IndexSource(client, Target(python=Version("2.7.18"), platform="linux-x86_64"))
            kept = py2.installable(canonicalize_name("hepdlib"), Version("0.10.1"))
    nearest = matrix.result(Cell(python=(3, 9), platform="linux-x86_64")).nearest
    assert nearest is not None
    assert dict(nearest.pins)[canonicalize_name("hepdlib")] == Version("0.10.2")
    [moved] = nearest.deviations
    assert moved.reason.startswith(
        "hepdlib 0.10.1 cannot be installed in this cell: pip 24.1 and later ignore this version: its "
        "metadata is invalid (Requires-Dist: 'PyYAML (>4.*)')")
    assert kept.installable  # Python 2.7's pip (20.3) reads it


def test_a_marker_pip_cannot_evaluate_makes_the_version_uninstallable_where_pip_stops_on_it(
        tmp_path: Path) -> None:
    # pyzmq 20.0.0's wheels say `Requires-Dist: cffi ; implementation_name === "pypy"`: pip 24.1
    # and later stop on it with a traceback (pip 24.0 compared it as strings and installed it)
    marker = 'cffi ; implementation_name === "pypy"'
    with pypiserver(tmp_path / "server") as server:
        make_wheel(server.packages, "zmqish", "20.0.0", requires=[marker], tag="py2.py3-none-any")
        make_wheel(server.packages, "zmqish", "22.0.0", requires=['cffi ; implementation_name == "pypy"'],
                   tag="py2.py3-none-any")
        make_wheel(server.packages, "cffi", "1.15.0", tag="py2.py3-none-any")
        pip = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d",
                              str(tmp_path / "dl"), "zmqish==20.0.0", "--index-url", server.simple],
                             env=env_without_index(), capture_output=True, text=True, timeout=300)
        assert pip.returncode != 0 and "pypy" in pip.stderr  # this pip (24.1 or later) stops on it
        release = synthetic_release([package("zmqish", "20.0.0")])
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            matrix = resolve_cells(release, client, [Cell(python=(3, 9), platform="linux-x86_64")],
                                   builds=Builds(client))
            py2 = IndexSource(client, Target(python=Version("2.7.18"), platform="linux-x86_64"))
            kept = py2.installable(canonicalize_name("zmqish"), Version("20.0.0"))
            deps = py2.dependencies(canonicalize_name("zmqish"), Version("20.0.0"))
    nearest = matrix.result(Cell(python=(3, 9), platform="linux-x86_64")).nearest
    assert nearest is not None and dict(nearest.pins) == {canonicalize_name("zmqish"): Version("22.0.0")}
    [moved] = nearest.deviations
    assert moved.reason.startswith(
        "zmqish 20.0.0 cannot be installed in this cell: pip 24.1 and later stop with an error on this "
        "version's requirement cffi; implementation_name === \"pypy\"")
    # Python 2.7's pip (20.3) compares it as strings: installable, and not PyPy, so no cffi
    assert kept.installable and deps is not None
    py2_target = Target(python=Version("2.7.18"), platform="linux-x86_64")
    assert [py2_target.evaluate(r.marker) for r in deps] == [False]
    assert py2_target.marker_error(deps[0].marker) is not None
