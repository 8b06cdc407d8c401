"""Publishing proves itself by bytes, takes .pypirc as twine does, and says what an index's
refusal means: the real twine, a real pypiserver on loopback, and real loopback servers that
misbehave on purpose (an index whose files are not what its page lists; an upload endpoint
that answers 500)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stackmeta.errors import PublishError
from stackmeta.package import pipeline, publish
from stackmeta.package.metapackage import Options
from stackmeta.resolve.nearest import load_resolved, save_nearest
from tests.clirunner import run_cli
from tests.httpserver import StaticServer
from tests.package.test_metapackage import sample
from tests.pypiserver_fixture import PASSWORD, USER, Server, pypiserver, write_record

WHEEL = "cms_analysis_stack-{}-py3-none-any.whl"
SDIST = "cms_analysis_stack-{}.tar.gz"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pypiserver(tmp_path_factory.mktemp("pypiserver")) as srv:
        yield srv


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A HOME of the test's own (its .pypirc, no keyring), and no TWINE_* from outside."""
    for name in ("TWINE_USERNAME", "TWINE_PASSWORD", "TWINE_REPOSITORY", "TWINE_REPOSITORY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    return tmp_path


def _locks(tmp_path: Path, release: str) -> Path:
    locks = tmp_path / "locks"
    rel, nearest = sample(release=release)
    write_record(locks, rel)
    save_nearest(locks, release, rel, nearest)
    return locks


def _pypirc(home: Path, url: str, password: str = PASSWORD) -> None:
    (home / ".pypirc").write_text(
        f"[distutils]\nindex-servers =\n    local\n\n[local]\nrepository = {url}\nusername = {USER}\n"
        f"password = {password}\n")


def _on(server: Server, version: str) -> list[str]:
    return sorted(p.name for p in server.packages.glob(f"cms_analysis_stack-{version}*"))


# -- the bytes built are the bytes uploaded, and the bytes served are checked -------------


def test_a_wheel_swapped_in_out_after_the_build_is_never_uploaded(
    server: Server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    locks = _locks(tmp_path, "CMSSW_14_0_4")
    loaded = load_resolved(locks, "CMSSW_14_0_4")
    built = pipeline.build_loaded(loaded, Options(), tmp_path / "dist", tmp_path / "b")
    # another wheel under the same name: the same metadata (Requires-Dist and all), one file more
    with zipfile.ZipFile(built.wheel, "a") as whl:
        whl.writestr("cms_analysis_stack/payload.py", "print('not what was built')\n")
    with pytest.raises(PublishError) as info:
        publish.publish(publish.built_files(built), loaded.nearest, repository_url=server.url)
    swapped = hashlib.sha256(built.wheel.read_bytes()).hexdigest()
    ours = built.digests[built.wheel.name]
    assert str(info.value) == (
        f"{built.wheel} changed since it was built (sha256 {swapped}, built {ours}): "
        "nothing was uploaded; build it again (stackmeta build) and publish")
    assert _on(server, "14.0.4") == []


def test_an_index_serving_other_bytes_than_its_page_lists_fails_the_read_back(
    server: Server, home: Path, tmp_path: Path
) -> None:
    locks = _locks(tmp_path, "CMSSW_14_0_5")
    loaded = load_resolved(locks, "CMSSW_14_0_5")
    built = pipeline.build_loaded(loaded, Options(), tmp_path / "dist", tmp_path / "b")
    # a static index whose page lists both files with the sha256 we built, but serves a wheel
    # with other bytes (a compromised mirror, a cache serving a stale file)
    index = tmp_path / "index"
    page = index / "simple" / "cms-analysis-stack"
    page.mkdir(parents=True)
    (index / "files").mkdir()
    links = []
    for path in built.files:
        data = path.read_bytes()
        if path.name.endswith(".whl"):
            data = data.replace(b"cms_analysis_stack", b"cms_analysis_stacc", 1)
        (index / "files" / path.name).write_bytes(data)
        links.append(f'<a href="../../files/{path.name}#sha256={built.digests[path.name]}">{path.name}</a>')
    (page / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>\n")
    with StaticServer(index, negotiate=False) as lying:
        code, out, err = run_cli("publish", "CMSSW_14_0_5", "--locks-dir", str(locks), "--repository-url",
                                 server.url, "--index-url", lying.url + "/simple", "--out",
                                 str(tmp_path / "d2"), "--build-dir", str(tmp_path / "b2"), "--quiet")
        served = hashlib.sha256((index / "files" / built.wheel.name).read_bytes()).hexdigest()
        assert code == 1 and out == ""
        ours = built.digests[built.wheel.name]
        assert err.strip() == (
            f"error: {lying.url}/files/{built.wheel.name}: the index serves bytes with sha256 {served} "
            f"(its page says {ours}), we built {ours}: check the index")
    assert _on(server, "14.0.5") == []  # both listed with our sha256: skipped, never uploaded


# -- .pypirc, and what an index's refusal means ---------------------------------------------


def test_pypirc_section_by_name_as_twine_takes_it(server: Server, home: Path, tmp_path: Path) -> None:
    _pypirc(home, server.url)
    locks = _locks(tmp_path, "CMSSW_14_0_6")
    code, out, err = run_cli("publish", "CMSSW_14_0_6", "--locks-dir", str(locks), "--repository", "local",
                             "--out", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "b"), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["index_url"] == f"{server.url}/simple"
    assert done["verified"] == [SDIST.format("14.0.6"), WHEEL.format("14.0.6")]
    assert _on(server, "14.0.6") == [WHEEL.format("14.0.6"), SDIST.format("14.0.6")]
    assert PASSWORD not in out + err
    # every record the index lacks, to the same section: only the new release is uploaded
    locks2 = _locks(tmp_path / "new", "CMSSW_14_0_10")
    for name in ("CMSSW_14_0_6.json", "CMSSW_14_0_6.nearest.txt"):
        shutil.copy(locks / name, locks2)
    code, out, err = run_cli("publish", "--new", "--locks-dir", str(locks2), "--repository", "local", "--out",
                             str(tmp_path / "dist-new"), "--build-dir", str(tmp_path / "b-new"), "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["published"] == {"CMSSW_14_0_10": [SDIST.format("14.0.10"), WHEEL.format("14.0.10")]}
    assert done["already"] == ["CMSSW_14_0_6"]

    # the same section with a wrong password: the credentials are blamed, and only they
    _pypirc(home, server.url, "wrong-" + PASSWORD)
    locks = _locks(tmp_path / "7", "CMSSW_14_0_7")
    code, out, err = run_cli("publish", "CMSSW_14_0_7", "--locks-dir", str(locks), "--repository", "local",
                             "--out", str(tmp_path / "d7"), "--build-dir", str(tmp_path / "b7"))
    assert code == 1
    assert err.splitlines()[-1] == (
        f"error: {server.url} (.pypirc section 'local') refused the credentials (HTTP 403 Forbidden): check "
        "TWINE_USERNAME/TWINE_PASSWORD, keyring, or the .pypirc section (--repository NAME)")
    assert PASSWORD not in out + err and _on(server, "14.0.7") == []

    code, _, err = run_cli("publish", "CMSSW_14_0_7", "--locks-dir", str(locks), "--repository", "nosuch",
                           "--out", str(tmp_path / "d7"), "--build-dir", str(tmp_path / "b7"))
    assert code == 1
    assert err.strip() == ("error: --repository nosuch: Missing 'nosuch' section from ~/.pypirc: add a "
                           "[nosuch] section with repository = URL to ~/.pypirc, or give --repository-url")


def test_a_file_the_index_has_already_is_not_blamed_on_the_credentials(
    server: Server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    locks = _locks(tmp_path, "CMSSW_14_0_8")
    built = pipeline.build_loaded(load_resolved(locks, "CMSSW_14_0_8"), Options(), tmp_path / "dist",
                                  tmp_path / "b")
    shutil.copy(built.wheel, server.packages)  # on the index already; publish reads another index
    empty = tmp_path / "empty"
    (empty / "simple").mkdir(parents=True)
    (empty / "simple" / "index.html").write_text("<!DOCTYPE html><html><body></body></html>\n")
    with StaticServer(empty) as elsewhere:
        code, _, err = run_cli("publish", "CMSSW_14_0_8", "--locks-dir", str(locks), "--repository-url",
                               server.url, "--index-url", elsewhere.url + "/simple", "--out",
                               str(tmp_path / "dist"), "--build-dir", str(tmp_path / "b"), "--quiet")
    assert code == 1
    # pypiserver answers 409 to a duplicate, but 400 to twine (as PyPI does): either is the file
    line = err.strip()
    assert line.startswith(f"error: {server.url} refused the upload (HTTP 400 Bad Request): a file of that "
                           "name is there already (an index never replaces one")
    assert "credentials" not in line and "--verbose" not in line and "\x1b" not in err


class _Answers500(BaseHTTPRequestHandler):
    """An upload endpoint in trouble: every POST gets a 500."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"Internal Server Error"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_500_from_the_index_is_its_failure_not_the_credentials(
    server: Server, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    locks = _locks(tmp_path, "CMSSW_14_0_9")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers500)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        code, _, err = run_cli("publish", "CMSSW_14_0_9", "--locks-dir", str(locks), "--repository-url", url,
                               "--index-url", server.simple, "--out", str(tmp_path / "dist"),
                               "--build-dir", str(tmp_path / "b"), "--quiet")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 1
    assert err.strip() == (f"error: {url} failed (HTTP 500 Internal Server Error): the index is in trouble; "
                           "publish again later")
