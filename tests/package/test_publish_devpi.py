"""Publishing with the real twine to a real devpi-server on loopback.

devpi's upload URL is ``<user>/<index>/``, its simple index ``<user>/<index>/+simple/``; it
serves PEP 503 HTML and PEP 691 JSON with relative file URLs (``../../+f/...#sha256=``).
The release's nearest set is found by the real resolver against the same devpi index, fed with
tiny real wheels uploaded there first.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name as cn
from packaging.version import Version

from stackmeta.package import builder, metapackage, publish
from stackmeta.resolve.nearest import load_nearest
from tests.clirunner import run_cli
from tests.devpi_fixture import PASSWORD, USER, Devpi, devpi, installed
from tests.pypiserver_fixture import env_without_index, make_wheel, package, synthetic_release, write_record

pytestmark = pytest.mark.skipif(installed() is not None, reason=str(installed()))

WHEEL = "cms_analysis_stack-{v}-py3-none-any.whl"
SDIST = "cms_analysis_stack-{v}.tar.gz"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devpi]:
    with devpi(tmp_path_factory.mktemp("devpi")) as srv:
        wheels = tmp_path_factory.mktemp("wheels")
        paths = [
            make_wheel(wheels, "numpy", "1.23.5", requires_python=">=3.8"),
            make_wheel(wheels, "numpy", "1.24.3", requires_python=">=3.8"),
            make_wheel(wheels, "tensorflow", "2.11.1", requires=["numpy<1.24,>=1.20"]),
            make_wheel(wheels, "tensorflow", "2.12.0", requires=["numpy<1.24,>=1.22"]),
            make_wheel(wheels, "tensorflow", "2.13.0", requires=["numpy<=1.24.3,>=1.22"]),
        ]
        twine(paths, srv.upload)
        yield srv


@pytest.fixture
def twine_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HOME", str(tmp_path))  # no .pypirc of the machine
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


def twine(paths: list[Path], repository_url: str) -> None:
    env = env_without_index() | {"TWINE_USERNAME": USER, "TWINE_PASSWORD": PASSWORD,
                                 "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    subprocess.run([sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
                    "--repository-url", repository_url, *map(str, paths)],
                   env=env, check=True, capture_output=True, timeout=60)


def served(server: Devpi, project: str) -> dict[str, str]:
    """What the index's PEP 691 page lists: filename -> sha256."""
    req = urllib.request.Request(f"{server.simple}{project}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        page = json.load(resp)
    return {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}


def locks_resolved_on(server: Devpi, tmp_path: Path, release: str) -> Path:
    """A release record whose pins conflict (tensorflow 2.12.0 requires numpy<1.24, the release
    pins numpy 1.24.3), resolved by the real resolver against the devpi index."""
    locks = tmp_path / "locks"
    rel = synthetic_release([package("numpy", "1.24.3"), package("tensorflow", "2.12.0", requires=["numpy"])],
                            release=release, python="3.9.14")
    write_record(locks, rel)
    code, _, err = run_cli("resolve", release, "--platform", "linux-x86_64", "--locks-dir", str(locks),
                           "--index-url", server.simple,
                       "--cache-dir", str(tmp_path / "cache"), "--quiet")
    assert code == 0, err
    return locks


def publish_args(server: Devpi, tmp_path: Path, locks: Path, release: str, run: str,
                 index: bool = True) -> list[str]:
    return ["publish", release, "--locks-dir", str(locks), "--repository-url", server.upload,
            *(["--index-url", server.simple] if index else []), "--out", str(tmp_path / f"dist{run}"),
            "--build-dir", str(tmp_path / f"build{run}")]


def test_publish_to_devpi_uploads_verifies_and_skips_the_same(
    tmp_path: Path, server: Devpi, twine_env: None
) -> None:
    locks = locks_resolved_on(server, tmp_path, "CMSSW_14_0_1")
    nearest = load_nearest(locks, "CMSSW_14_0_1")
    assert nearest.index_url == server.simple.rstrip("/")
    assert nearest.pins == ((cn("numpy"), Version("1.24.3")), (cn("tensorflow"), Version("2.13.0")))

    code, out, err = run_cli(*publish_args(server, tmp_path, locks, "CMSSW_14_0_1", "1"), "--json")
    assert code == 0, err
    first = json.loads(out)
    files = [SDIST.format(v="14.0.1"), WHEEL.format(v="14.0.1")]
    assert first["index_url"] == server.simple.rstrip("/")
    assert [u["file"] for u in first["uploaded"]] == files
    assert first["skipped"] == []
    assert first["verified"] == files
    built = {p.name: builder.sha256(p) for p in (tmp_path / "dist1").iterdir()}
    assert {u["file"]: u["sha256"] for u in first["uploaded"]} == built
    assert served(server, "cms-analysis-stack") == built  # what pip would see

    # again, from a fresh build: the same bytes (reproducible), so nothing is uploaded
    code, out, err = run_cli(*publish_args(server, tmp_path, locks, "CMSSW_14_0_1", "2"), "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["uploaded"] == []
    assert [s["file"] for s in again["skipped"]] == files
    assert again["verified"] == files

    # without --index-url: devpi's +api page names its simple index
    assert publish.index_for(server.upload) == server.simple.rstrip("/")
    code, out, err = run_cli(*publish_args(server, tmp_path, locks, "CMSSW_14_0_1", "3", index=False))
    assert code == 0, err
    assert out.splitlines() == [
        f"skipped {files[0]}: already on the index with the same sha256",
        f"skipped {files[1]}: already on the index with the same sha256",
        f"verified: {server.simple.rstrip('/')} serves 2 file(s) with the expected sha256",
    ]


def test_another_file_under_the_same_name_on_devpi_stops_before_uploading(
    tmp_path: Path, server: Devpi, twine_env: None
) -> None:
    locks = locks_resolved_on(server, tmp_path, "CMSSW_14_0_2")
    rel = synthetic_release([package("numpy", "1.24.3"), package("tensorflow", "2.12.0", requires=["numpy"])],
                            release="CMSSW_14_0_2", python="3.9.14")
    nearest = load_nearest(locks, "CMSSW_14_0_2")
    # someone published 14.0.2 from another set: the same filename, other bytes
    other = dataclasses.replace(nearest, pins=((cn("numpy"), Version("1.23.5")),
                                               (cn("tensorflow"), Version("2.12.0"))), deviations=())
    theirs = builder.build(metapackage.project(rel, other), tmp_path / "theirs", work_dir=tmp_path / "w")
    wheel = next(p for p in theirs.files if p.name.endswith(".whl"))
    twine([wheel], server.upload)

    code, _, err = run_cli(*publish_args(server, tmp_path, locks, "CMSSW_14_0_2", "1"))
    ours = builder.sha256(tmp_path / "dist1" / WHEEL.format(v="14.0.2"))
    assert code == 1
    assert ours != builder.sha256(wheel)
    text = " ".join(err.split())
    assert f"error: {WHEEL.format(v='14.0.2')} is already on the index (" in text
    assert (f"/{WHEEL.format(v='14.0.2')}) with sha256 {builder.sha256(wheel)}, ours is {ours}: "
            "nothing was uploaded") in text
    listing = served(server, "cms-analysis-stack")
    assert listing[WHEEL.format(v="14.0.2")] == builder.sha256(wheel)  # theirs stays
    assert SDIST.format(v="14.0.2") not in listing  # ours was not uploaded
