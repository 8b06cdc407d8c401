"""End to end, with real components only: tiny real wheels on a real pypiserver, the real
resolver, build and twine, and the real pip installing the metapackage into a fresh venv."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackmeta.record import BuildKind
from tests.clirunner import run_cli
from tests.pypiserver_fixture import (
    PASSWORD,
    USER,
    env_without_index,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

PY39 = Path.home() / ".pyenv/versions/3.9.18/bin/python"

# what the index has: name -> {version: Requires-Dist}
INDEX = {
    "numlib": {"1.23.5": [], "1.24.3": []},
    "scilib": {"1.10.1": ["numlib>=1.19.5"]},
    "tflib": {
        "2.11.0": ["numlib<1.24"],
        "2.12.0": ["numlib<1.24,>=1.22", "clanglib>=13.0.0"],  # conflicts with the release's numlib
        "2.13.0": ["numlib<=1.24.3,>=1.22", "clanglib>=13.0.0"],
    },
    "clanglib": {"13.0.0": [], "18.1.1": []},  # not shipped by the release
    "oldlib": {"1.0": [], "1.1": []},
}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    with pypiserver(tmp_path / "server") as server:
        for name, versions in INDEX.items():
            for version, requires in versions.items():
                make_wheel(server.packages, name, version, requires)
        yield server.url


@pytest.mark.slow
def test_pip_installs_the_published_metapackage_at_exactly_its_pins(
    tmp_path: Path, index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not PY39.exists():
        pytest.skip("no Python 3.9 here")
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    simple = f"{index}/simple"
    locks = tmp_path / "locks"
    rel = synthetic_release([
        package("numlib", "1.24.3"), package("scilib", "1.10.1"), package("tflib", "2.12.0"),
        package("oldlib", "1.0"), package("gitonly", "0.3.3", build=BuildKind.VCS),
    ])
    write_record(locks, rel)
    common = ["--locks-dir", str(locks), "--json"]

    code, out, err = run_cli("resolve", "CMSSW_14_0_0", "--platform", "linux-x86_64", "--index-url", simple,
                                "--cache-dir", str(tmp_path / "cache"), *common)
    assert code == 0, err
    nearest = json.loads(out)
    # the documented rule: numlib (more of the stack depends on it) stays, tflib moves to the
    # nearest version that accepts it (2.11.0 does not: distance 2 upwards, 2.13.0)
    assert nearest["pins"] == {"clanglib": "18.1.1", "numlib": "1.24.3", "oldlib": "1.0",
                               "scilib": "1.10.1", "tflib": "2.13.0"}
    assert [(d["name"], d["release_version"], d["version"]) for d in nearest["deviations"]] == [
        ("tflib", "2.12.0", "2.13.0")]
    assert [o["name"] for o in nearest["omissions"]] == ["gitonly"]

    code, out, err = run_cli("publish", "CMSSW_14_0_0", "--repository-url", index,
                                "--out", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "build"),
                                *common)
    assert code == 0, err
    published = json.loads(out)
    assert [u["file"] for u in published["uploaded"]] == [
        "cms_analysis_stack-14.0.0.tar.gz", "cms_analysis_stack-14.0.0-py3-none-any.whl"]

    venv = tmp_path / "venv"
    subprocess.run([PY39, "-m", "venv", venv], check=True)
    env = env_without_index()
    pip = subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "-q", "cms-analysis-stack==14.0.0",
         "--index-url", simple],
        env=env, capture_output=True, text=True,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    listed = subprocess.run([venv / "bin/python", "-m", "pip", "list", "--format=json"], env=env,
                            capture_output=True, text=True, check=True)
    installed = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    installed = {k: v for k, v in installed.items() if k not in ("pip", "setuptools")}
    assert installed == {**nearest["pins"], "cms-analysis-stack": "14.0.0"}

    check = subprocess.run([venv / "bin/python", "-m", "cms_analysis_stack", "check", "--json"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["drift"] is False
    assert [(d["name"], d["installed"], d["release_version"]) for d in report["deviations"]] == [
        ("tflib", "2.13.0", "2.12.0")]
    assert (report["missing"], report["other_versions"], report["extra"]) == ([], [], [])
    assert [o["name"] for o in report["omitted"]] == ["gitonly"]

    # drift is seen: another version of a pin
    subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "oldlib==1.1", "--index-url", simple],
                   env=env, check=True, capture_output=True)
    check = subprocess.run([venv / "bin/python", "-m", "cms_analysis_stack", "check"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 1
    assert "  other version: oldlib 1.1 installed, 1.0 expected" in check.stdout

    # publishing again uploads nothing: the same bytes are there
    code, out, err = run_cli("publish", "CMSSW_14_0_0", "--repository-url", index,
                                "--out", str(tmp_path / "dist2"), "--build-dir", str(tmp_path / "build2"),
                                *common)
    assert code == 0, err
    again = json.loads(out)
    assert again["uploaded"] == [] and len(again["skipped"]) == 2
