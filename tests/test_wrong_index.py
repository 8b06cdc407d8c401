"""A typo in the index URL must not publish an empty metapackage.

A real HTTP server on loopback that knows no project at all (``/simpl``: every page a 404, as
https://pypi.org/simpl answers), against the real record of CMSSW_14_0_0 (321 packages, its
good check and nearest set): check, resolve and lock say so in one line and write nothing;
build and publish refuse a metapackage with no requirements or one that leaves out too much
of the release (unless --force); and scripts/pipeline.sh, run for real over a git cmsdist
history, ends non-zero."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.package.metapackage import MAX_LEFT_OUT
from tests.clirunner import run_cli
from tests.httpserver import StaticServer

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "CMSSW_14_0_0"
SHARED = ROOT.parent / "shared" / "cmsdist-excerpts"


@pytest.fixture(scope="module")
def typo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT/simpl: a real server where no project is found."""
    folder = tmp_path_factory.mktemp("empty-index")
    (folder / "simple").mkdir()
    (folder / "simple" / "index.html").write_text("<!DOCTYPE html><html><body></body></html>\n")
    with StaticServer(folder) as server:
        yield server.url + "/simpl"


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    folder = tmp_path / "locks"
    folder.mkdir()
    for suffix in (".json", ".nearest.txt"):
        shutil.copy(ROOT / "locks" / f"{RELEASE}{suffix}", folder)
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_check_resolve_and_lock_refuse_an_index_that_knows_nothing_and_save_nothing(
    typo: str, locks: Path, tmp_path: Path
) -> None:
    before = files(locks)
    code, out, err = run_cli("check", RELEASE, "--index-url", typo, "--locks-dir", str(locks), "--no-cache",
                             "--quiet")
    assert code == 1 and out == ""
    line = one_error_line(err)
    # the 307 pins CMS builds from PyPI sources (of 321), every one a 404
    pins = json.loads((locks / f"{RELEASE}.json").read_text())["check"]["pins"]
    assert len(pins) == 321 and len([p for p in pins if p["build"] == "pypi"]) == 307
    assert line.startswith(f"error: {typo} does not know 307 of the release's 307 projects from PyPI "
                           "(absl-py, anyio, appdirs, ...): ")
    assert line.endswith(f"it is not the release's index (a typo in --index-url?); nothing was saved in "
                         f"{locks / (RELEASE + '.json')}")
    code, _, err = run_cli("resolve", RELEASE, "--index-url", typo, "--locks-dir", str(locks),
                           "--cache-dir", str(tmp_path / "cache"))
    assert code == 1
    assert "projects" in one_error_line(err) and one_error_line(err).endswith("nothing was written")
    assert files(locks) == before

    # a record whose check section an older stackmeta saved from the typo: lock writes nothing
    doc = record.read_document(locks / f"{RELEASE}.json")
    for pin in doc["check"]["pins"]:
        pin.update(status="no-project", files=[], url="")
    doc["check"]["index_url"] = typo
    record.write_document(locks / f"{RELEASE}.json", doc)
    before = files(locks)
    code, _, err = run_cli("lock", RELEASE, "--locks-dir", str(locks), "--offline")
    assert code == 1
    assert f"error: {typo} does not know 307 of the release's 307 projects from PyPI" in one_error_line(err)
    assert files(locks) == before


def _consistent(locks: Path, keep: int) -> tuple[int, int]:
    """The record's nearest set cut down to its first *keep* pins, the others left out (as an
    older resolve saved it from the typo: "0 pins, 321 omissions")."""
    doc = record.read_document(locks / f"{RELEASE}.json")
    doc.pop("cells", None)  # an older resolve: one set, no cells
    nearest = doc["consistent"]
    shipped = {p["name"]: p["version_written"] for p in doc["release"]["packages"]}
    kept = dict(list(nearest["pins"].items())[:keep])
    nearest["pins"] = kept
    nearest["deviations"] = [d for d in nearest["deviations"] if d["name"] in kept]
    nearest["additions"] = [a for a in nearest["additions"] if a["name"] in kept]
    nearest["omissions"] = [{"name": n, "release_version": v, "reason": "not on the index"}
                            for n, v in shipped.items() if n not in kept]
    record.write_document(locks / f"{RELEASE}.json", doc)
    from_pypi = {p["name"] for p in doc["release"]["packages"] if p["build"] == "pypi"}
    return len(from_pypi - set(kept)), len(from_pypi)


@pytest.mark.parametrize("keep", [0, 200])
def test_build_and_publish_refuse_a_thin_metapackage_unless_forced(
    keep: int, locks: Path, tmp_path: Path
) -> None:
    left_out, from_pypi = _consistent(locks, keep)
    dist = tmp_path / "dist"
    code, _, err = run_cli("build", RELEASE, "--locks-dir", str(locks), "--out", str(dist),
                           "--build-dir", str(tmp_path / "b"), "--quiet")
    assert code == 1
    line = one_error_line(err)
    if keep == 0:
        assert "the nearest set pins nothing: a metapackage without requirements is not built" in line
    else:
        assert left_out > MAX_LEFT_OUT * from_pypi and from_pypi == 307
        assert f"the nearest set leaves out {left_out} of the release's 307 packages from PyPI" in line
        assert f"more than {MAX_LEFT_OUT:.0%}: not built; resolve against the right --index-url" in line
    assert not dist.exists() or not any(dist.iterdir())
    code, _, err = run_cli("publish", RELEASE, "--locks-dir", str(locks), "--repository-url",
                           "http://127.0.0.1:9/", "--out", str(dist), "--build-dir", str(tmp_path / "b"),
                           "--quiet")
    assert code == 1 and "build anyway with --force" in one_error_line(err)
    assert not dist.exists() or not any(dist.iterdir())
    code, _, err = run_cli("build", RELEASE, "--locks-dir", str(locks), "--out", str(dist),
                           "--build-dir", str(tmp_path / "b"), "--force")
    assert code == 0, err
    assert sorted(p.name for p in dist.iterdir()) == [
        "cms_analysis_stack-14.0.0-py3-none-any.whl", "cms_analysis_stack-14.0.0.tar.gz"]


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared cmsdist excerpts are not at {SHARED}")
def test_pipeline_ends_non_zero_on_a_typo_and_publishes_nothing(typo: str, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from make_history import make_history

    repo = tmp_path / "cmsdist"
    make_history(repo, 4, SHARED)  # CMSSW_14_0_0 .. on el9, 10_6, 9_3
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_"))}
    env.update(CMSDIST_URL=str(repo), CMSDIST_DIR=str(repo), MATCH="CMSSW_14_0_0", INDEX_URL=typo,
               LOCKS_DIR=str(tmp_path / "locks"), DIST_DIR=str(tmp_path / "dist"), PYTHON=sys.executable,
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "pipeline.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "pipeline: some releases failed in: resolve CMSSW_14_0_0 build" in proc.stderr
    assert "pipeline done" not in proc.stderr
    assert "does not know" in proc.stderr
    doc = record.read_document(tmp_path / "locks" / f"{RELEASE}.json")
    assert "check" not in doc and "consistent" not in doc
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())
