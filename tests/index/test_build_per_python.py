"""An sdist is built by each cell's own Python, as pip on a laptop builds it: Theano 1.0.5's
old ``versioneer.py`` uses ``configparser.SafeConfigParser``, so its sdist builds on 3.11 and
fails on 3.12 and later. Built once with one Python, it looked installable everywhere, and the
real pip install of CMSSW_12_6_5 on 3.13 failed there. Real sdists with an in-tree backend on a
real pypiserver, built by real interpreters of both Pythons."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.cells import Cell, cells_for
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.pythons import find_minor
from stackmeta.resolve.cells import resolve_cells
from tests.pypiserver_fixture import make_wheel, package, pypiserver, synthetic_release
from tests.resolve.test_cells import make_sdist


@pytest.mark.slow
def test_an_sdist_that_builds_only_on_older_pythons_moves_in_the_newer_cells(tmp_path: Path) -> None:
    missing = [f"{a}.{b}" for a, b in ((3, 9), (3, 12)) if find_minor((a, b)) is None]
    if missing:
        pytest.skip(f"no Python {', '.join(missing)} on this machine (python3.X on PATH or pyenv)")
    with pypiserver(tmp_path / "server") as server:
        make_sdist(server.packages, "theanoish", "1.0.5", mode="versioneer")
        make_wheel(server.packages, "theanoish", "1.0.6")
        release = synthetic_release([package("theanoish", "1.0.5")])
        cells = [c for c in cells_for(Version("3.9.14"), newest=(3, 12))
                 if c.platform == "linux-x86_64" and c.python in ((3, 9), (3, 12))]
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            builds = Builds(client)
            matrix = resolve_cells(release, client, cells, builds=builds)
    home = matrix.result(Cell(python=(3, 9), platform="linux-x86_64")).nearest
    newer = matrix.result(Cell(python=(3, 12), platform="linux-x86_64")).nearest
    assert home is not None and newer is not None
    name = canonicalize_name("theanoish")
    assert dict(home.pins)[name] == Version("1.0.5") and home.deviations == ()
    assert dict(newer.pins)[name] == Version("1.0.6")
    [moved] = newer.deviations
    assert ("theanoish 1.0.5 cannot be installed in this cell: no wheel for this cell; its sdist does "
            "not build: AttributeError: module 'configparser' has no attribute 'SafeConfigParser'"
            ) in moved.reason
    # one build per Python, each remembered on disk under its own name
    remembered = sorted(p.name for p in (tmp_path / "cache/builds").glob("*.json"))
    assert len(remembered) == 2 and sum(n.endswith("-3.12.json") for n in remembered) == 1
