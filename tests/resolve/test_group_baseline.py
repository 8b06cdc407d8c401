"""A working group's metapackage on a release: `stackmeta build --base RELEASE --add ...`, with
the real resolver against a real pypiserver, then the real pip installing it."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackmeta.cli import main
from stackmeta.resolve.venv import list_installed
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

PYTHON = ".".join(sys.version.split()[0].split(".")[:3])
INDEX = {
    "numlib": {"1.23.5": [], "1.24.3": []},
    "awklib": {"2.1.1": ["numlib>=1.20"], "2.6.0": ["numlib>=1.23"]},
    "coffealib": {"2024.4.0": ["awklib>=2.0", "uprootlib>=5"], "2024.9.0": ["awklib>=2.6"]},
    "uprootlib": {"5.0.0": ["awklib>=2.0"], "5.3.0": ["awklib>=2.0"]},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pypiserver(tmp_path_factory.mktemp("server")) as srv:
        for name, versions in INDEX.items():
            for version, requires in versions.items():
                make_wheel(srv.packages, name, version, requires)
        yield srv


@pytest.fixture
def locks(server: Server, tmp_path: Path) -> Path:
    locks = tmp_path / "locks"
    write_record(locks, synthetic_release([package("numlib", "1.24.3"), package("awklib", "2.1.1")],
                                          python=PYTHON))
    code, _, err = run_cli("resolve", "CMSSW_14_0_0", "--index-url", server.simple,
                              "--cache-dir", str(tmp_path / "cache"), "--locks-dir", str(locks), "--quiet")
    assert code == 0, err
    return locks


def test_group_metapackage_adds_to_the_release_and_pip_installs_it(
        locks: Path, server: Server, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    code, out, err = run_cli(
        "build", "--base", "CMSSW_14_0_0", "--add", "coffealib==2024.4.0", "--name", "hgg-analysis-stack",
        "--version", "1.0", "--out", str(dist), "--build-dir", str(tmp_path / "build"),
        "--cache-dir", str(tmp_path / "cache"), "--locks-dir", str(locks), "--json")
    assert code == 0, err
    result = json.loads(out)
    # the release's pins stay; the group's addition and what it needs are pinned too
    assert result["pins"] == {"awklib": "2.1.1", "coffealib": "2024.4.0", "numlib": "1.24.3",
                              "uprootlib": "5.3.0"}
    assert result["moves"] == []
    assert [f["file"].rsplit("/", 1)[1] for f in result["files"]] == [
        "hgg_analysis_stack-1.0.tar.gz", "hgg_analysis_stack-1.0-py3-none-any.whl"]

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    wheel = dist / "hgg_analysis_stack-1.0-py3-none-any.whl"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--index-url", server.simple, str(wheel)], check=True, env=env_without_index())
    installed = list_installed(str(python)).dists
    assert {k: v for k, v in installed.items() if k not in ("pip", "setuptools")} == {
        "awklib": "2.1.1", "coffealib": "2024.4.0", "numlib": "1.24.3", "uprootlib": "5.3.0",
        "hgg-analysis-stack": "1.0"}


def test_an_addition_that_moves_release_pins_is_refused_without_allow_moves(
        locks: Path, tmp_path: Path) -> None:
    argv = ["build", "--base", "CMSSW_14_0_0", "--add", "coffealib==2024.9.0", "--name", "hgg-analysis-stack",
            "--version", "1.0", "--out", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "build"),
            "--cache-dir", str(tmp_path / "cache"), "--locks-dir", str(locks), "--quiet"]
    code, _, err = run_cli(*argv)
    assert code == 1
    assert err.strip() == (
        "error: --add coffealib==2024.9.0 needs: awklib 2.1.1 -> 2.6.0 (coffealib 2024.9.0 requires "
        "awklib>=2.6): nothing was built; pass --allow-moves to build with these moves, or choose other "
        "versions"
    )
    assert not (tmp_path / "dist").exists()
    code, out, err = run_cli(*argv, "--allow-moves", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["moves"] == [{"name": "awklib", "from": "2.1.1", "to": "2.6.0",
                                "reason": "coffealib 2024.9.0 requires awklib>=2.6"}]
    # the deviation is recorded in the metapackage's own data, as a release's are
    wheel = tmp_path / "dist" / "hgg_analysis_stack-1.0-py3-none-any.whl"
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        data = next(zf.read(n) for n in zf.namelist() if n.endswith(".json") and "hgg_analysis_stack/" in n)
    deviations = json.loads(data)["deviations"]
    assert [(d["name"], d["release_version"], d["version"]) for d in deviations] == [
        ("awklib", "2.1.1", "2.6.0")]


def test_group_needs_a_name_and_version(locks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--base", "CMSSW_14_0_0", "--add", "coffealib", "--locks-dir", str(locks)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: a group's metapackage needs its own --name and --version, e.g. --name hgg-analysis-stack "
        "--version 1.0")


def test_a_bad_group_version_is_refused_before_the_index_is_asked(
    locks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.httpserver import unreachable_url

    assert main(["build", "--base", "CMSSW_14_0_0", "--add", "coffealib", "--name", "hgg-analysis-stack",
                 "--version", "one", "--index-url", unreachable_url(), "--locks-dir", str(locks),
                 "--out", str(tmp_path / "dist")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --version 'one' is not a PEP 440 version: use e.g. 14.0.0.post1")
    assert not (tmp_path / "dist").exists()
