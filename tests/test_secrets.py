"""A password in --index-url / --repository-url is used for the requests and nowhere else.

A real pypiserver on loopback that serves nothing without USER/PASSWORD (basic auth on listing,
downloads and uploads); every command that takes an index URL is run with the password in the
URL, in text, --json, --quiet and --debug, on success and on errors; then every output stream
and every file written (records, locks, pylock files, the snapshot, the cache database, the
built and the uploaded wheel and sdist, inside their archives) is searched for the password."""

from __future__ import annotations

import json
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackmeta import credentials
from tests.clirunner import run_cli
from tests.pypiserver_fixture import (
    PASSWORD,
    USER,
    Server,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

RELEASE = "CMSSW_14_0_0"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}.1"  # the running Python's minor: env finds it
SECRET = PASSWORD.encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pypiserver(tmp_path_factory.mktemp("auth-server"), authenticate="download,list,update") as srv:
        make_wheel(srv.packages, "alpha", "1.0", ["beta>=1"])
        make_wheel(srv.packages, "beta", "1.0")
        make_wheel(srv.packages, "beta", "2.0")
        yield srv


def _with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{USER}:{password}@", 1)


def _contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """A file's bytes, and for a wheel or an sdist the bytes of every member too."""
    data = path.read_bytes()
    yield str(path), data
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                yield f"{path}!{name}", zf.read(name)
    elif path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                if handle is not None:
                    yield f"{path}!{member.name}", handle.read()


def _leaks(*folders: Path) -> list[str]:
    return [where for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()
            for where, data in _contents(path) if SECRET in data]


def test_a_password_in_the_url_is_used_and_never_shown_or_written(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TWINE_USERNAME", "TWINE_PASSWORD", "TWINE_REPOSITORY", "TWINE_REPOSITORY_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no .pypirc, no keyring of the machine
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    locks, cache = tmp_path / "locks", tmp_path / "cache"
    write_record(locks, synthetic_release([package("alpha", "1.0"), package("beta", "1.0")], release=RELEASE,
                                          python=PYTHON))
    index = _with_password(server.simple)
    common = ("--locks-dir", str(locks), "--cache-dir", str(cache))
    said: list[str] = []

    def run(*argv: str, expect: int = 0) -> str:
        code, out, err = run_cli(*argv)
        said.extend((out, err))
        assert code == expect, (argv, out, err)
        return out

    # every command that reads an index, with the password in its URL: the requests are made
    # with it (the server serves nothing without it), and no output says it
    run("check", RELEASE, "--index-url", index, *common)
    report = json.loads(run("check", RELEASE, "--index-url", index, *common, "--json", "--refresh"))
    assert report["report"]["index_url"] == server.simple.rstrip("/")
    assert {p["name"]: p["status"] for p in report["report"]["pins"]} == {"alpha": "wheel", "beta": "wheel"}
    run("check", RELEASE, "--index-url", index, *common, "--quiet", "--refresh")
    run("resolve", RELEASE, "--index-url", index, *common)
    run("lock", RELEASE, "--index-url", index, *common)
    run("snapshot", RELEASE, "--index-url", index, "--out", str(tmp_path / "snapshot"),
        "--cache-dir", str(cache), "--locks-dir", str(locks))
    # a child pip installs from the index: the password reaches it through its environment
    made = json.loads(run("env", RELEASE, str(tmp_path / "venv"), "--index-url", index, *common, "--json"))
    assert made["created"] is True and made["plan"]["pins"] == {"alpha": "1.0", "beta": "1.0"}
    run("build", RELEASE, "--locks-dir", str(locks), "--out", str(tmp_path / "dist"),
        "--build-dir", str(tmp_path / "build"))
    # publish: the upload URL's credentials reach twine (no TWINE_* set), through its environment
    published = json.loads(run(
        "publish", RELEASE, "--locks-dir", str(locks), "--repository-url", _with_password(server.url + "/"),
        "--index-url", index, "--out", str(tmp_path / "dist2"), "--build-dir", str(tmp_path / "build2"),
        "--json"))
    assert [f["file"] for f in published["uploaded"]] == [
        "cms_analysis_stack-14.0.0.tar.gz", "cms_analysis_stack-14.0.0-py3-none-any.whl"]
    assert published["index_url"] == server.simple.rstrip("/")

    # errors, with and without --debug: the URL is named, the password is not
    nowhere = _with_password(server.url + "/nothing/")
    for extra in ((), ("--debug",), ("--json",), ("--quiet",)):
        run("check", RELEASE, "--index-url", nowhere, *common, *extra, expect=1)
    err = said[-1] + said[-3] + said[-5] + said[-7]
    assert f"{server.url}/nothing does not know 2 of the release's 2 projects" in err
    assert "Traceback (most recent call last)" in said[-5]
    run("check", RELEASE, "--index-url", _with_password(server.simple, "wrong-" + PASSWORD), *common,
        "--refresh", expect=1)  # the server refuses a wrong password: every page, so one error, nothing saved
    assert ("error: the index answered none of the release's 2 project pages, the first: "
            f"{server.simple.rstrip('/')}/alpha/: HTTP 403") in said[-1], said[-1]
    ftp = "ftp://" + _with_password(server.url).removeprefix("http://")
    run("check", RELEASE, "--index-url", ftp, *common, "--debug", expect=2)
    assert "ftp://maintainer:****@127.0.0.1" in said[-1]

    assert [text for text in said if PASSWORD in text] == []
    assert _leaks(tmp_path, server.packages) == []
    on_server = sorted(p.name for p in server.packages.glob("cms_analysis_stack-*"))
    assert on_server == ["cms_analysis_stack-14.0.0-py3-none-any.whl", "cms_analysis_stack-14.0.0.tar.gz"]
    # what was written names the index, without its credentials
    nearest_txt = (locks / f"{RELEASE}.nearest.txt").read_text()
    assert f"against {server.simple.rstrip('/')}" in nearest_txt
    assert (cache / "cache.sqlite3").is_file()


def test_redact_masks_credentials_in_any_text() -> None:
    assert credentials.redact("GET https://user:pa55word-x@host:8080/simple/ failed") == (
        "GET https://user:****@host:8080/simple/ failed")
    assert credentials.redact("https://tok3n-only@host/simple") == "https://****@host/simple"
    assert credentials.redact("no URL here, an e-mail a@b.c") == "no URL here, an e-mail a@b.c"
    clean = credentials.without("https://someone:k%40y-123456@index.example/simple")
    assert clean == "https://index.example/simple"
    assert credentials.auth_for("https://INDEX.example:443/other") == ("someone", "k@y-123456")
    assert credentials.auth_for("http://index.example/simple") is None  # another scheme, another port
    assert credentials.with_auth(clean) == "https://someone:k%40y-123456@index.example/simple"
    assert credentials.redact("pip said: k@y-123456 and k%40y-123456") == "pip said: **** and ****"
