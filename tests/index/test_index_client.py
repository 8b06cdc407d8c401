"""The index client against a real loopback HTTP server serving tests/data/index/fixture,
well-behaved and misbehaving on purpose."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta.errors import IndexAccessError
from stackmeta.index import IndexClient, IndexSource
from stackmeta.index.cache import Cache
from stackmeta.index.metadata import strip_description
from stackmeta.index.simple import JSON_TYPE, ProjectFile
from stackmeta.target import Target
from tests.httpserver import StaticServer, unreachable_url

FIXTURE = Path(__file__).parents[1] / "data" / "index" / "fixture"
T39 = Target(python=Version("3.9.14"))
SIX_SHA = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer(FIXTURE) as s:
        yield s


def client(url: str, cache: Path | None, **kw: object) -> IndexClient:
    opts: dict[str, object] = {"retries": 2, "backoff": 0.01, "timeout": 5.0, "page_max_age": 0}
    opts.update(kw)
    return IndexClient(url, cache if cache is not None else False, **opts)  # type: ignore[arg-type]


def only(c: IndexClient, project: str, filename: str) -> ProjectFile:
    page = c.project(project)
    assert page is not None
    return next(f for f in page.files if f.filename == filename)


def cached_files(cache: Path) -> list[str]:
    if not cache.exists():
        return []
    store = Cache(cache)
    try:
        return [f"{sha}.{source}" for sha, source in store.metadata_keys()]
    finally:
        store.close()


def wheel_metadata(name: str) -> bytes:
    with zipfile.ZipFile(Path(__file__).parents[1] / "data" / "index" / name) as zf:
        md = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(md)


# -- how metadata is read ---------------------------------------------------------------


def test_pep658_file_not_advertised_is_still_used(server: StaticServer, tmp_path: Path) -> None:
    with client(server.url + "/simple", tmp_path / "c", keep_raw=True) as c:
        f = only(c, "urllib3", "urllib3-2.0.0-py3-none-any.whl")
        assert f.core_metadata is None  # the JSON page omits the key, as pypi.org does
        fm = c.metadata(f, "urllib3")
    assert fm.source == "pep658"
    assert fm.raw == strip_description(wheel_metadata("urllib3-2.0.0-py3-none-any.whl"))
    paths = [p for p, _ in server.log]
    assert paths == ["/simple/urllib3/", "/files/urllib3/urllib3-2.0.0-py3-none-any.whl.metadata"]
    # a client that does not write snapshots keeps only the parsed metadata (memory)
    with client(server.url + "/simple", tmp_path / "c") as c:
        lean = c.metadata(only(c, "urllib3", "urllib3-2.0.0-py3-none-any.whl"), "urllib3")
    assert lean.raw is None and lean.metadata == fm.metadata


def test_range_requests_read_metadata_out_of_the_wheel(server: StaticServer, tmp_path: Path) -> None:
    with client(server.url + "/simple", tmp_path / "c", keep_raw=True) as c:
        fm = c.metadata(only(c, "six", "six-1.16.0-py2.py3-none-any.whl"), "six")
    assert fm.source == "range"
    assert fm.raw == strip_description(wheel_metadata("six-1.16.0-py2.py3-none-any.whl"))
    wheel_gets = [h for p, h in server.log if p.endswith(".whl")]
    assert wheel_gets and all("Range" in h for h in wheel_gets)  # never the whole wheel
    # no hash on the page for what a range read gives: kept as this index's, by the wheel's sha256
    assert cached_files(tmp_path / "c") == [f"{c._scoped_key('md', SIX_SHA)}.range"]


def test_range_reads_a_wheel_larger_than_the_first_chunk(tmp_path: Path) -> None:
    # urllib3's wheel is 123 kB: the tail request does not hold all of it
    folder = tmp_path / "idx"
    (folder / "files").mkdir(parents=True)
    src = Path(__file__).parents[1] / "data" / "index" / "urllib3-2.0.0-py3-none-any.whl"
    (folder / "files" / src.name).write_bytes(src.read_bytes())
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    (folder / "simple" / "urllib3").mkdir(parents=True)
    (folder / "simple" / "urllib3" / "index.html").write_text(
        f'<a href="../../files/{src.name}#sha256={sha}">{src.name}</a>')
    with StaticServer(folder) as s, client(s.url + "/simple", None, keep_raw=True) as c:
        fm = c.metadata(only(c, "urllib3", src.name), "urllib3")
    assert fm.source == "range" and fm.raw == strip_description(wheel_metadata(src.name))


def test_server_ignoring_ranges_gives_a_verified_download(server: StaticServer, tmp_path: Path) -> None:
    server.fail("/files/six/*.whl", "no-range")
    with client(server.url + "/simple", tmp_path / "c", keep_raw=True) as c:
        fm = c.metadata(only(c, "six", "six-1.16.0-py2.py3-none-any.whl"), "six")
    assert fm.source == "download"
    assert fm.raw == strip_description(wheel_metadata("six-1.16.0-py2.py3-none-any.whl"))


def test_sdist_pkg_info(server: StaticServer, tmp_path: Path) -> None:
    with client(server.url + "/simple", tmp_path / "c") as c:
        new = c.metadata(only(c, "newsdist", "newsdist-1.0.tar.gz"), "newsdist")
        old = c.metadata(only(c, "oldsdist", "oldsdist-0.1.tar.gz"), "oldsdist")
    assert new.source == "pkg-info" and new.dependencies_known
    assert new.metadata is not None and [str(r) for r in new.metadata.requires_dist] == ["six"]
    assert old.source == "pkg-info" and not old.dependencies_known  # Metadata-Version 1.1


def test_second_run_downloads_no_metadata(server: StaticServer, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    files = [("six", "six-1.16.0-py2.py3-none-any.whl"), ("urllib3", "urllib3-2.0.0-py3-none-any.whl"),
             ("newsdist", "newsdist-1.0.tar.gz")]
    for _ in range(2):
        server.clear()
        with client(server.url + "/simple", cache) as c:
            results = c.metadatas([(p, only(c, p, fn)) for p, fn in files])
        assert all(not isinstance(r, Exception) for r in results.values())
    assert sorted(p for p, _ in server.log) == ["/simple/newsdist/", "/simple/six/", "/simple/urllib3/"]


def test_pages_are_cached_for_page_max_age(server: StaticServer, tmp_path: Path) -> None:
    for _ in range(2):
        with client(server.url + "/simple", tmp_path / "c", page_max_age=600) as c:
            assert c.project("six") is not None
    assert [p for p, _ in server.log] == ["/simple/six/"]


def test_pages_at_hand_are_read_from_the_cache_without_a_request(server: StaticServer,
                                                                  tmp_path: Path) -> None:
    url = server.url + "/simple"
    with client(url, tmp_path / "c", page_max_age=600) as c:
        c.projects(["six", "alpha"])
    server.clear()
    with client(url, tmp_path / "c", page_max_age=600) as c:
        # "beta" was never fetched: not at hand, and not asked for either
        assert c.projects_at_hand(["six", "alpha", "beta", "six"]) == ["six", "alpha"]
        assert c.read_before("six")[0] and c.read_before("alpha")[0] and not c.read_before("beta")[0]
        assert c.project("six") == c.read_before("six")[1]  # kept: the page project() gives
    with client(url, tmp_path / "c", page_max_age=0) as c:  # every page too old
        assert c.projects_at_hand(["six", "alpha"]) == []
    assert server.log == []


def test_pages_are_fetched_a_few_at_once(server: StaticServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # parsing takes turns: more pages in flight than PAGES_AT_ONCE would only hold more bodies
    monkeypatch.setattr("stackmeta.index.client.PAGES_AT_ONCE", 2)
    server.fail("/simple/*", "timeout", delay=0.3)
    names = ["alpha", "beta", "gamma", "delta", "six", "urllib3"]
    with client(server.url + "/simple", None, jobs=8) as c:
        pages = c.projects(names)
    assert all(p is not None and not isinstance(p, Exception) for p in pages.values())
    arrivals = sorted(server.arrivals)
    assert len(arrivals) == len(names)
    # never three at once: each request starts after the one two before it ended
    assert all(arrivals[i] >= arrivals[i - 2] + 0.25 for i in range(2, len(arrivals)))


def test_html_only_server(tmp_path: Path) -> None:
    with StaticServer(FIXTURE, negotiate=False) as s, client(s.url + "/simple", tmp_path / "c") as c:
        f = only(c, "urllib3", "urllib3-2.0.0-py3-none-any.whl")
        assert f.core_metadata is True and f.core_metadata_sha256 is not None  # the HTML advertises it
        assert c.metadata(f, "urllib3").source == "pep658"


def test_file_url_index(tmp_path: Path) -> None:
    with client(FIXTURE.as_uri(), tmp_path / "c") as c:  # the folder holding simple/
        assert c.index_url == FIXTURE.as_uri() + "/simple"
        fm = c.metadata(only(c, "six", "six-1.16.0-py2.py3-none-any.whl"), "six")
        assert fm.source == "range"
        assert c.project("notthere") is None


def test_index_source_versions_and_dependencies(server: StaticServer) -> None:
    with client(server.url + "/simple", None) as c:
        src = IndexSource(c, T39)
        src.prefetch(["delta", "alpha", "yankedpkg", "py3only"])
        assert list(src.versions("delta")) == [Version("2.0"), Version("3.0"), Version("4.0rc1")]
        assert list(src.versions("yankedpkg")) == []  # yanked: not a candidate
        assert list(src.versions("py3only")) == []  # Requires-Python >=3.12
        deps = src.dependencies("alpha", Version("1.0"))
        assert deps is not None and [str(r) for r in deps] == ["beta<2", "gamma[extra1]", "six"]
        assert src.dependencies("oldsdist", Version("0.1")) is None
        assert list(src.versions("notthere")) == [] and src.errors == {}


# -- faults: one clear message naming the package and the URL; nothing wrong cached -------


def test_unreachable_index(tmp_path: Path) -> None:
    url = unreachable_url()
    with client(url + "/simple", tmp_path / "c", jobs=1) as c:
        results = c.projects(["six", "alpha", "beta"])
    host = url.removeprefix("http://")
    assert [str(results[n]) for n in ("six", "alpha", "beta")] == [  # type: ignore[index]
        f"{url}/simple/six/: cannot connect (after 3 attempts): check that the index is reachable, "
        "or retry later",
        f"{url}/simple/alpha/: cannot connect ({host} refused 3 attempts): check that the index is "
        "reachable, or retry later",
        f"{url}/simple/beta/: cannot connect ({host} refused 3 attempts): check that the index is "
        "reachable, or retry later",
    ]


def test_404_for_a_project_is_an_answer(server: StaticServer) -> None:
    with client(server.url + "/simple", None) as c:
        assert c.project("notthere") is None


def test_5xx_then_success(server: StaticServer) -> None:
    server.fail("/simple/six/", "503", times=2)
    with client(server.url + "/simple", None) as c:
        assert c.project("six") is not None
    assert [p for p, _ in server.log] == ["/simple/six/"] * 3


def test_429_retried(server: StaticServer) -> None:
    server.fail("/simple/six/", "429", times=1)
    with client(server.url + "/simple", None) as c:
        assert c.project("six") is not None


def test_5xx_forever(server: StaticServer) -> None:
    server.fail("/simple/six/", "500")
    with client(server.url + "/simple", None) as c, pytest.raises(IndexAccessError) as err:
        c.project("six")
    assert str(err.value) == (f"{server.url}/simple/six/: HTTP 500 (after 3 attempts): "
                              "check that the index is reachable, or retry later")


def test_timeout(server: StaticServer) -> None:
    # the timeout counts whole seconds without a byte received (at least 1)
    server.fail("/simple/six/", "timeout", delay=3.0)
    with client(server.url + "/simple", None, timeout=0.3, retries=1) as c:
        results = c.projects(["six", "alpha"])
    assert str(results["six"]).startswith(f"{server.url}/simple/six/: timed out (after 2 attempts)")
    assert not isinstance(results["alpha"], Exception)


def test_truncated_metadata_file(server: StaticServer, tmp_path: Path) -> None:
    server.fail("/files/urllib3/*.metadata", "truncate")
    with client(server.url + "/simple", tmp_path / "c") as c:
        f = only(c, "urllib3", "urllib3-2.0.0-py3-none-any.whl")
        with pytest.raises(IndexAccessError) as err:
            c.metadata(f, "urllib3")
    assert str(err.value).startswith(f"{server.url}/files/urllib3/urllib3-2.0.0-py3-none-any.whl.metadata: ")
    assert "incomplete response" in str(err.value) and "(after 3 attempts)" in str(err.value)
    assert cached_files(tmp_path / "c") == []


def test_malformed_metadata_file(server: StaticServer, tmp_path: Path) -> None:
    server.fail("/files/alpha/*.metadata", "garbage")
    with client(server.url + "/simple", tmp_path / "c") as c, pytest.raises(IndexAccessError) as err:
        c.metadata(only(c, "alpha", "alpha-1.0-py3-none-any.whl"), "alpha")
    url = f"{server.url}/files/alpha/alpha-1.0-py3-none-any.whl.metadata"
    assert str(err.value) == f"{url}: metadata of alpha is binary, not core metadata"
    assert cached_files(tmp_path / "c") == []


def test_metadata_hash_mismatch(tmp_path: Path) -> None:
    with StaticServer(FIXTURE, negotiate=False) as s:  # the HTML page advertises the hash
        other = b"Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.0\n"  # parses; not the advertised bytes
        s.fail("/files/urllib3/*.metadata", "garbage", body=other)
        with client(s.url + "/simple", tmp_path / "c") as c, pytest.raises(IndexAccessError) as err:
            c.metadata(only(c, "urllib3", "urllib3-2.0.0-py3-none-any.whl"), "urllib3")
    assert str(err.value).startswith(
        f"{s.url}/files/urllib3/urllib3-2.0.0-py3-none-any.whl.metadata: hash mismatch for urllib3 metadata")
    assert cached_files(tmp_path / "c") == []


def test_download_hash_mismatch(server: StaticServer, tmp_path: Path) -> None:
    server.fail("/files/newsdist/*", "garbage")
    with client(server.url + "/simple", tmp_path / "c") as c, pytest.raises(IndexAccessError) as err:
        c.metadata(only(c, "newsdist", "newsdist-1.0.tar.gz"), "newsdist")
    url = f"{server.url}/files/newsdist/newsdist-1.0.tar.gz"
    assert str(err.value).startswith(f"{url}: hash mismatch for newsdist")
    assert "nothing was cached" in str(err.value)
    assert cached_files(tmp_path / "c") == []


def test_malformed_page(server: StaticServer) -> None:
    server.fail("/simple/beta/", "garbage", body=b"{oops", content_type="application/vnd.pypi.simple.v1+json")
    with client(server.url + "/simple", None) as c:
        results = c.projects(["beta", "six"])
    assert str(results["beta"]).startswith(f"{server.url}/simple/beta/: malformed project page (not JSON")
    assert not isinstance(results["six"], Exception)


def test_redirect_loop(server: StaticServer) -> None:
    server.fail("/simple/gamma/", "redirect-loop")
    with client(server.url + "/simple", None) as c, pytest.raises(IndexAccessError) as err:
        c.project("gamma")
    url = f"{server.url}/simple/gamma/"
    assert str(err.value) == f"{url}: redirect loop (back to {url}): fix the index URL"


def test_gzip_page_is_decoded(tmp_path: Path) -> None:
    with StaticServer(FIXTURE, gzip=True) as s, client(s.url + "/simple", None) as c:
        page = c.project("six")
        raw = c.transport.get(s.url + "/simple/six/", headers={"Accept": JSON_TYPE})
    assert page is not None and [f.filename for f in page.files] == ["six-1.16.0-py2.py3-none-any.whl"]
    assert s.log[0][1]["Accept-Encoding"] == "gzip"  # asked for, and decoded
    assert "content-encoding" not in raw.headers and raw.body.startswith(b"{")  # not asked for: plain


def test_a_request_carries_only_its_own_headers(server: StaticServer) -> None:
    # the same curl handle serves one thread's requests one after another
    with client(server.url + "/simple", None) as c:
        part = c.transport.get(server.url + "/simple/six/", headers={"Range": "bytes=0-9", "X-Test": "1"})
        whole = c.transport.get(server.url + "/simple/six/")
        json_page = c.transport.get(server.url + "/simple/six/",
                                    headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        html_page = c.transport.get(server.url + "/simple/six/", headers={"Accept": "text/html"})
    assert part.status == 206 and len(part.body) == 10
    assert whole.status == 200 and len(whole.body) > 10
    assert "Range" not in server.log[1][1] and "X-Test" not in server.log[1][1]
    assert json_page.body.startswith(b"{") and html_page.body.startswith(b"<")


def test_a_hosts_first_request_goes_alone(server: StaticServer) -> None:
    # the threads wait for the host's first answer (then its name is in the shared DNS cache:
    # one lookup, not one per thread), then go all at once
    server.fail("/simple/*", "timeout", delay=0.5, times=1)  # whichever comes first is slow
    with client(server.url + "/simple", None, jobs=8) as c:
        pages = c.projects(["alpha", "beta", "gamma", "six", "urllib3", "oldsdist"])
    assert not any(isinstance(p, Exception) for p in pages.values())
    assert len(server.arrivals) == 6
    assert all(t >= server.arrivals[0] + 0.45 for t in server.arrivals[1:])


def test_only_http_https_and_file_urls_are_read(server: StaticServer) -> None:
    # a page may name any URL for a file: nothing but http(s) goes to libcurl
    with client(server.url + "/simple", None) as c:
        for url in ("ftp://127.0.0.1/x.whl", "gopher://127.0.0.1/x", "dict://127.0.0.1/x"):
            with pytest.raises(IndexAccessError) as err:
                c.transport.get(url)
            assert str(err.value) == f"{url}: not an http, https or file URL: only those are read"


def test_map_inside_map_runs_in_the_worker(server: StaticServer) -> None:
    # a task that itself maps (a resolver prefetching while a check runs) must not wait for a
    # free worker of the pool it occupies
    with client(server.url + "/simple", None, jobs=2) as c:
        def outer(name: str) -> list[str]:
            inner = c.transport.map(lambda n: str(c.project(n).name), [name, "six"])  # type: ignore[union-attr]
            return sorted(str(v) for v in inner.values())
        results = c.transport.map(outer, ["alpha", "beta", "gamma"])
    assert results == {"alpha": ["alpha", "six"], "beta": ["beta", "six"], "gamma": ["gamma", "six"]}


def test_one_request_per_page_and_file_however_many_threads_ask(server: StaticServer) -> None:
    with client(server.url + "/simple", None, jobs=8) as c:
        pages = c.map(c.project, ["six"] * 20)
        assert len(pages) == 1  # the same item is one task
        f = only(c, "six", "six-1.16.0-py2.py3-none-any.whl")
        src = IndexSource(c, T39)
        src.prefetch_dependencies([("six", Version("1.16.0"))] * 5 + [("SIX", Version("1.16.0"))] * 5)
        c.transport.map(lambda i: c.metadata(f, "six"), range(10))
    assert [p for p, _ in server.log].count("/simple/six/") == 1
    assert [p for p, _ in server.log].count("/files/six/six-1.16.0-py2.py3-none-any.whl.metadata") == 1


def test_a_cache_folder_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    from stackmeta.errors import OutputError

    (tmp_path / "f").write_text("x")
    for root in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(OutputError) as err:
            IndexClient(FIXTURE.as_uri() + "/simple", root)
        assert str(err.value) == (f"cache folder {root}: {tmp_path / 'f'} is a file, not a folder: "
                                  "give --cache-dir a folder, or --no-cache")


FULL_DISK = """
import logging, resource, sys
from pathlib import Path
from stackmeta.index.cache import Cache
logging.basicConfig(format="%(levelname)s %(message)s")
resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))  # a disk that is full at 256 KB
cache = Cache(Path(sys.argv[1]))
for i in range(2):
    cache.put_metadata(f"{i:064x}", bytes(1 << 20), "download")
    cache.flush()
cache.close()
print("done")
"""


def test_a_full_cache_disk_is_dropped_with_one_warning(tmp_path: Path) -> None:
    """A real process whose files may not grow past 256 KB (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so a write past it fails with EFBIG, as on a full disk)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "cache")], capture_output=True,
                         text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "done\n"), run.stderr
    assert run.stderr.splitlines() == [
        f"WARNING cache {tmp_path / 'cache'} cannot be written (disk I/O error): going on "
        "without it; give --cache-dir a writable folder, or --no-cache"]


def test_pending_pages_past_soon_bytes_are_written_in_the_background(tmp_path: Path) -> None:
    """A cold run does not hold every page body it read until the cache is closed: past
    SOON_BYTES a background write empties the pending entries, which another reader then sees."""
    import time

    from stackmeta.index import cache as cache_mod

    cache = Cache(tmp_path)
    body = b"x" * (1 << 20)
    for i in range(cache_mod.SOON_BYTES // len(body) + 1):
        cache.put_page("https://i/simple", f"p{i}", body, JSON_TYPE, f"https://i/simple/p{i}/")
    deadline = time.monotonic() + 30
    while cache._pending_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache._pending_bytes == 0
    cache._join_flusher()
    other = Cache(tmp_path)
    assert other.get_page("https://i/simple", "p0", 60) == (body, JSON_TYPE, "https://i/simple/p0/")
    other.close()
    cache.close()


def test_the_cache_folder_follows_stackmeta_cache_dir(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    snapshot = Path(__file__).parents[1] / "data" / "snapshots" / "CMSSW_9_3_0"
    env = {**os.environ, "STACKMETA_CACHE_DIR": str(tmp_path / "mine"), "HOME": str(tmp_path / "home")}
    env.pop("XDG_CACHE_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "stackmeta", "check", "CMSSW_9_3_0", "--no-save", "--json",
                           "--index-url", str(snapshot)], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=300)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the release's own conflicts
    assert (tmp_path / "mine" / "cache.sqlite3").is_file()
    assert not (tmp_path / "home").exists()


def test_a_stackmeta_cache_dir_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    snapshot = Path(__file__).parents[1] / "data" / "snapshots" / "CMSSW_9_3_0"
    env = {**os.environ, "STACKMETA_CACHE_DIR": str(blocker)}
    proc = subprocess.run([sys.executable, "-m", "stackmeta", "check", "CMSSW_9_3_0", "--no-save",
                           "--index-url", str(snapshot)], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=300)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"error: cache folder {blocker}: {blocker} is a file, not a folder: set $STACKMETA_CACHE_DIR "
        "to a folder (or unset it), or --no-cache"]
    assert blocker.read_text() == "x"
