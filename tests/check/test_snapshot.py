"""The recorded snapshots of pypi.org (tests/data/snapshots/<lock>/, written by
``stackmeta snapshot``) served on loopback: the check of the shared releases offline."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.check import closure, snapshot
from stackmeta.check.report import CheckReport, PinStatus
from stackmeta.cli import main
from stackmeta.errors import StackmetaError
from stackmeta.index import IndexClient
from stackmeta.record import BuildKind, Package, Release
from tests.httpserver import StaticServer

ROOT = Path(__file__).parents[2]
SNAPSHOTS = Path(__file__).parents[1] / "data" / "snapshots"
FIXTURE = Path(__file__).parents[1] / "data" / "index" / "fixture"
LOCKS = ROOT / "locks"
UV = ROOT / ".venv" / "bin" / "uv"

KNOWN_14_0_0 = {
    ("tensorflow", "numpy<1.24,>=1.22", "numpy", "1.24.3"),
    ("tensorflow", "keras<2.13,>=2.12.0", "keras", "2.11.0"),
    ("tensorflow", "gast<=0.4.0,>=0.2.1", "gast", "0.5.3"),
    ("tensorflow", "wrapt<1.15,>=1.11.0", "wrapt", "1.15.0"),
    ("awkward", "awkward-cpp==12", "awkward-cpp", "13"),
    ("jupyter-server", "jupyter-events>=0.9.0", "jupyter-events", "0.6.3"),
    ("jupyter-server", "send2trash>=1.8.2", "send2trash", "1.8.0"),
}


def run(name: str, index_url: str) -> CheckReport:
    rel = record.load_release(LOCKS, name)
    with IndexClient(index_url, False, retries=0) as client:
        return closure.run_check(rel, closure.default_target(rel), client)


def conflicts(report: CheckReport) -> set[tuple[str, str, str, str]]:
    return {(c.requirer, c.requirement, c.dependency, c.pinned) for c in report.conflicts}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def plain_http_server() -> Iterator[Any]:
    """``python -m http.server`` as a fixture: serve(folder) -> base URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(folder: Path) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_cmssw_14_0_0_over_loopback_http() -> None:
    with StaticServer(SNAPSHOTS / "CMSSW_14_0_0") as server:
        r = run("CMSSW_14_0_0", server.url + "/simple")
    assert conflicts(r) >= KNOWN_14_0_0
    unpinned = {u.name: u for u in r.unpinned}
    assert "tensorflow==2.12.0: libclang>=13.0.0" in unpinned["libclang"].required_by
    assert unpinned["libclang"].picked is not None
    assert r.blocking and not r.incomplete
    assert [(p.name, p.status) for p in r.not_installable] == [("dxr", PinStatus.NOT_PEP440)]
    assert {p.metadata_source for p in r.pins if p.metadata_file} <= {"pep658", "unknown"}
    assert len(r.pins) == len(record.load_release(LOCKS, "CMSSW_14_0_0").packages)
    assert {"tensorflow", "numpy"} <= {p.name for p in r.pins if p.status is PinStatus.WHEEL}


def test_cmssw_14_0_0_over_plain_http_server(plain_http_server: Any) -> None:
    # python -m http.server: no content negotiation, PEP 503 HTML only: the same findings
    url = plain_http_server(SNAPSHOTS / "CMSSW_14_0_0")
    r = run("CMSSW_14_0_0", url + "/simple")
    assert conflicts(r) >= KNOWN_14_0_0
    assert "libclang" in {u.name for u in r.unpinned}


@pytest.mark.parametrize(("lock", "not_installable"), [
    ("CMSSW_10_6_0", {("climate", "0.4.6"), ("pybrain", "0.3.3")}),
    ("CMSSW_10_6_0-py2", {("climate", "0.4.6"), ("pybrain", "0.3.3"), ("dablooms", "0.9.1")}),
    ("CMSSW_9_3_0", {("climate", "0.4.6"), ("dablooms", "0.9.1"), ("pyxml", "0.8.4"), ("zsi", "2.0")}),
])
def test_older_releases_from_file_urls(lock: str, not_installable: set[tuple[str, str]]) -> None:
    r = run(lock, (SNAPSHOTS / lock).as_uri())
    assert {(p.name, p.version) for p in r.not_installable} == not_installable
    assert not r.incomplete
    if lock.startswith("CMSSW_10_6_0"):
        pybrain = r.pin("pybrain")  # built from git by CMS, at a version PyPI lacks
        assert pybrain.status is PinStatus.NO_VERSION and pybrain.build == "vcs"
        assert ("requests", "urllib3<1.25,>=1.21.1", "urllib3", "1.25.2") in conflicts(r)


def test_snapshot_command_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pins = {"alpha": "1.0", "beta": "2.0", "gamma": "1.0", "six": "1.16.0", "oldsdist": "0.1"}
    rel = Release(
        release="CMSSW_99_0_0", metapackage_version=Version("99.0.0"), arches=("el9_amd64_gcc12",),
        python=Version("3.9.14"), source="test", stackmeta_version="0",
        packages=tuple(Package(rpm=f"py3-{n}", name=canonicalize_name(n), display_name=n, version_written=v,
                               version=Version(v), build=BuildKind.PYPI) for n, v in pins.items()))
    locks = tmp_path / "locks"
    record.write_document(record.record_path(locks, "CMSSW_99_0_0"), record.new_document(rel))
    out = tmp_path / "snap"
    with StaticServer(FIXTURE) as server:
        code = main(["snapshot", "CMSSW_99_0_0", "--locks-dir", str(locks), "--out", str(out), "--json",
                     "--index-url", server.url + "/simple", "--cache-dir", str(tmp_path / "cache")])
        summary = json.loads(capsys.readouterr().out)
        with IndexClient(server.url + "/simple", False) as c:
            original = closure.run_check(rel, closure.default_target(rel), c)
    assert code == 0 and summary["failed"] == []
    assert sorted(p.name for p in (out / "simple").iterdir() if p.is_dir()) == [
        "alpha", "beta", "delta", "gamma", "oldsdist", "six"]
    # delta 4.0rc1 is an other version: listed; delta 2.0 too (a version the resolver may need)
    delta = (out / "simple" / "delta" / "index.html").read_text()
    assert "delta-2.0-py3-none-any.whl" in delta and "delta-4.0rc1-py3-none-any.whl" in delta
    assert 'data-core-metadata="sha256=' in (out / "simple" / "six" / "index.html").read_text()
    assert (out / "files" / "six" / "six-1.16.0-py2.py3-none-any.whl.metadata").read_bytes().startswith(
        b"Metadata-Version: 2.1\nName: six\n")
    with IndexClient(out.as_uri(), False) as c:
        again = closure.run_check(rel, closure.default_target(rel), c)
    assert again.conflicts == original.conflicts
    assert again.unpinned == original.unpinned
    def key(r: CheckReport) -> list[tuple[object, ...]]:
        return [(p.name, p.status, p.requires_dist, [(f.filename, f.sha256) for f in p.files])
                for p in r.pins]
    assert key(again) == key(original)


def test_uv_resolves_from_a_snapshot(plain_http_server: Any, tmp_path: Path) -> None:
    # uv reads the PEP 503 pages and the PEP 658 metadata; it never needs the wheels
    url = plain_http_server(SNAPSHOTS / "CMSSW_14_0_0")
    reqs = tmp_path / "requirements.in"
    reqs.write_text("awkward-cpp==13\nnumpy==1.24.3\nsix==1.16.0\n")
    proc = subprocess.run(
        [str(UV), "pip", "compile", str(reqs), "--index-url", f"{url}/simple", "--python", sys.executable,
         "--python-version", "3.9", "--python-platform", "x86_64-manylinux_2_28", "--no-cache", "--no-header",
         "--no-annotate", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["awkward-cpp==13", "numpy==1.24.3", "six==1.16.0"]


def test_snapshots_fit_the_budget() -> None:
    total = sum(p.stat().st_size for p in SNAPSHOTS.rglob("*") if p.is_file())
    assert total < 40e6


def test_snapshot_into_a_file_is_refused_before_any_request(tmp_path: Path) -> None:
    from tests.clirunner import run_cli

    out = tmp_path / "afile"
    out.write_text("mine\n")
    locks = Path(__file__).resolve().parents[2] / "locks"
    code, _, err = run_cli("snapshot", "CMSSW_14_0_0", "--out", str(out), "--locks-dir", str(locks),
                           "--index-url", "http://127.0.0.1:9/simple", "--cache-dir", str(tmp_path / "c"))
    assert (code, err) == (2, f"error: {out} is a file, not a folder: give an empty or new folder for the "
                              "snapshot\n")
    assert out.read_text() == "mine\n"


def test_a_snapshot_folder_is_an_index_url(tmp_path: Path) -> None:
    from tests.clirunner import run_cli

    out, source = tmp_path / "snap", SNAPSHOTS / "CMSSW_9_3_0"
    code, _, err = run_cli("snapshot", "CMSSW_9_3_0", "--out", str(out), "--locks-dir", str(LOCKS), "--quiet",
                           "--index-url", str(source), "--cache-dir", str(tmp_path / "c"))
    assert (code, err) == (0, "")
    assert json.loads((out / "SNAPSHOT.json").read_text())["index_url"] == f"{source.as_uri()}/simple"
    def files(folder: Path) -> list[Path]:
        return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert files(out) == files(source)
    again, original = run("CMSSW_9_3_0", out.as_uri()), run("CMSSW_9_3_0", source.as_uri())
    assert (again.conflicts, again.unpinned) == (original.conflicts, original.unpinned)
    def key(r: CheckReport) -> list[tuple[object, ...]]:
        return [(p.name, p.status, p.requires_dist, [(f.filename, f.sha256) for f in p.files])
                for p in r.pins]
    assert key(again) == key(original)


def test_an_index_that_answers_nothing_leaves_the_snapshot_there(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    out.mkdir()
    (out / "SNAPSHOT.json").write_text("{}\n")  # an earlier snapshot, replaced only by a better one
    rel = record.load_release(LOCKS, "CMSSW_9_3_0")
    target = closure.default_target(rel)
    url = "http://127.0.0.1:9/simple"
    with IndexClient(url, False, retries=0, keep_raw=True) as client:
        pages, metas = closure.fetch(rel, target, client)
    with pytest.raises(StackmetaError) as info:
        snapshot.write_snapshot(out, pages=pages, metas=metas, target=target, about={})
    assert str(info.value) == (
        f"{url}/appdirs/: cannot connect (after 1 attempt): check that the index is reachable, or retry "
        f"later; the index answered none of the {len(pages)} project pages: nothing written into {out}")
    assert [p.name for p in tmp_path.iterdir()] == ["snap"] and (out / "SNAPSHOT.json").read_text() == "{}\n"


def test_snapshot_usage_errors_before_any_request(tmp_path: Path) -> None:
    from tests.clirunner import run_cli

    common = ["--out", str(tmp_path / "snap"), "--locks-dir", str(LOCKS), "--cache-dir", str(tmp_path / "c")]
    assert run_cli("snapshot", "CMSSW_9_3_0", *common, "--index-url", str(tmp_path / "nowhere")) == (
        2, "", f"error: --index-url '{tmp_path / 'nowhere'}': no such folder; give https://..., http://... "
               "or file://DIR\n")
    assert run_cli("snapshot", "CMSSW_9_3_0", *common, "--jobs", "0") == (
        2, "", "error: --jobs must be at least 1\n")
    assert not (tmp_path / "snap").exists()


def test_stripping_the_description_twice_changes_nothing() -> None:
    # a snapshot of a snapshot keeps its metadata files byte for byte (a file without a body,
    # as many on PyPI are, used to gain a blank line each time)
    for path in (SNAPSHOTS / "CMSSW_9_3_0" / "files").rglob("*.metadata"):
        data = path.read_bytes()
        once = snapshot.strip_description(data)
        assert once == data.rstrip(b"\n") + b"\n", path
        assert snapshot.strip_description(once) == once, path
    assert snapshot.strip_description(b"Name: a\r\nDescription: x\r\n  y\r\nVersion: 1\r\n\r\nbody\r\n") == (
        b"Name: a\nVersion: 1\n")


def test_snapshot_without_the_cache(tmp_path: Path) -> None:
    # the cache's own error says "or --no-cache": snapshot has it, as check does
    from tests.clirunner import run_cli

    afile = tmp_path / "afile"
    afile.write_text("")
    args = ["snapshot", "CMSSW_9_3_0", "--out", str(tmp_path / "snap"), "--locks-dir", str(LOCKS), "--quiet",
            "--index-url", str(SNAPSHOTS / "CMSSW_9_3_0"), "--cache-dir", str(afile)]
    assert run_cli(*args) == (1, "", f"error: cache folder {afile}: {afile} is a file, not a folder: give "
                                     "--cache-dir a folder, or --no-cache\n")
    code, out, err = run_cli(*args, "--no-cache")
    assert (code, err) == (0, "") and out.startswith(f"{tmp_path / 'snap'}: 130 project pages")
    assert (tmp_path / "snap" / "SNAPSHOT.json").exists() and afile.read_text() == ""
