"""The environment's own tools are judged by running them (:mod:`stackmeta.index.runs`): a pip
whose vendored ``pkg_resources`` needs ``pkgutil.ImpImporter`` (gone in Python 3.12, as in the
real pip 23.1.1 and setuptools 63.4.3) is installable by its metadata everywhere, but does not
start on 3.12, so the 3.12 cell moves it and says why. Real wheels on a real pypiserver, real
interpreters of both Pythons."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.cells import Cell, cells_for
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.runs import ToolRuns
from stackmeta.pythons import find_minor
from stackmeta.resolve.cells import resolve_cells
from tests.pypiserver_fixture import make_wheel, package, pypiserver, synthetic_release

OLD_PKG_RESOURCES = "import pkgutil\nregister = pkgutil.ImpImporter\n"  # what pip 23.1.1 does at import
NEW_PKG_RESOURCES = "import pkgutil\nregister = pkgutil.zipimporter\n"


def fake_pip(folder: Path, version: str, pkg_resources: str) -> Path:
    return make_wheel(folder, "pip", version, modules={
        "pip/_internal/__init__.py": "", "pip/_internal/cli/__init__.py": "",
        "pip/_internal/cli/main.py": "def main(args=None):\n    return 0\n",
        "pip/_vendor/__init__.py": "", "pip/_vendor/pkg_resources/__init__.py": pkg_resources,
    })


def need(*minors: tuple[int, int]) -> None:
    missing = [f"{a}.{b}" for a, b in minors if find_minor((a, b)) is None]
    if missing:
        pytest.skip(f"no Python {', '.join(missing)} on this machine (python3.X on PATH or pyenv)")


@pytest.mark.slow
def test_a_tool_that_does_not_start_on_a_python_moves_in_its_cells(tmp_path: Path) -> None:
    need((3, 9), (3, 12))
    with pypiserver(tmp_path / "server") as server:
        fake_pip(server.packages, "23.1.1", OLD_PKG_RESOURCES)
        fake_pip(server.packages, "23.2", NEW_PKG_RESOURCES)
        make_wheel(server.packages, "plain", "1.0")
        release = synthetic_release([package("pip", "23.1.1"), package("plain", "1.0")])
        cells = [c for c in cells_for(Version("3.9.14"), newest=(3, 12))
                 if c.platform == "linux-x86_64" and c.python in ((3, 9), (3, 12))]
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            matrix = resolve_cells(release, client, cells, builds=Builds(client))
    assert matrix.failed == ()
    home = matrix.result(Cell(python=(3, 9), platform="linux-x86_64")).nearest
    newer = matrix.result(Cell(python=(3, 12), platform="linux-x86_64")).nearest
    assert home is not None and newer is not None
    assert dict(home.pins)["pip"] == Version("23.1.1") and home.deviations == ()
    assert dict(newer.pins)["pip"] == Version("23.2")
    [moved] = newer.deviations
    assert moved.name == "pip"
    assert ("pip 23.1.1 cannot be installed in this cell: it does not start on Python 3.12: "
            "AttributeError: module 'pkgutil' has no attribute 'ImpImporter'") in moved.reason
    # the answers are kept on disk, per wheel and Python
    runs = sorted(p.name for p in (tmp_path / "cache/builds/runs").iterdir())
    assert len(runs) == 3 and sum(r.endswith("-3.12.json") for r in runs) == 2


def test_other_projects_are_not_run_and_answers_come_back_from_disk(tmp_path: Path) -> None:
    need((3, 12))
    wheel = fake_pip(tmp_path / "dist", "23.1.1", OLD_PKG_RESOURCES)
    with pypiserver(tmp_path / "server") as server:
        (server.packages / wheel.name).write_bytes(wheel.read_bytes())
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            page = client.project("pip")
            assert page is not None
            [file] = page.files
            runs = ToolRuns(client, tmp_path / "cache/builds")
            assert runs.failure(file, canonicalize_name("plain"), (3, 12)) == ""  # not a tool: not run
            first = runs.failure(file, canonicalize_name("pip"), (3, 12))
            assert first.startswith("AttributeError: module 'pkgutil' has no attribute 'ImpImporter'")
    # the server is gone: a new instance answers from disk, without downloading
    with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
        again = ToolRuns(client, tmp_path / "cache/builds")
        assert again.failure(file, canonicalize_name("pip"), (3, 12)) == first
