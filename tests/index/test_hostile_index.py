"""What an index serves is untrusted: real loopback servers that lie, bomb, dribble and go
silent on purpose, and the one-line failure (or the honest answer) the client gives instead."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from stackmeta.errors import IndexAccessError
from stackmeta.index import IndexClient
from stackmeta.index.client import FileMetadata
from stackmeta.index.simple import ProjectFile
from tests.httpserver import SocketServer, StaticServer, never_answer, read_request

FIXTURE = Path(__file__).parents[1] / "data" / "index" / "fixture"
SIX_WHL = "six-1.16.0-py2.py3-none-any.whl"
EVIL = b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nRequires-Dist: evil-package>=6.6.6\n"


def client(url: str, cache: Path | None = None, **kw: object) -> IndexClient:
    opts: dict[str, object] = {"retries": 1, "backoff": 0.01, "timeout": 5.0, "page_max_age": 0}
    opts.update(kw)
    return IndexClient(url, cache if cache is not None else False, **opts)  # type: ignore[arg-type]


def only(c: IndexClient, project: str, filename: str) -> ProjectFile:
    page = c.project(project)
    assert page is not None
    return next(f for f in page.files if f.filename == filename)


def index_copy(tmp_path: Path, name: str = "index") -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURE, root)
    return root


def set_page(root: Path, project: str, edit: object) -> None:
    """Rewrite a project's JSON page with *edit* (a function of its files) and drop its HTML form."""
    page = root / "simple" / project / "index.json"
    data = json.loads(page.read_text())
    edit(data["files"])  # type: ignore[operator]
    page.write_text(json.dumps(data))
    (root / "simple" / project / "index.html").unlink()


def zip_bytes(members: dict[str, bytes], comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    return buf.getvalue()


def serve_wheel(tmp_path: Path, project: str, filename: str, body: bytes) -> Path:
    """A static index with one project listing one wheel (its true sha256 and size)."""
    root = tmp_path / "wheelindex"
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "files" / filename).write_bytes(body)
    (root / "simple" / project).mkdir(parents=True, exist_ok=True)
    (root / "simple" / project / "index.json").write_text(json.dumps({
        "meta": {"api-version": "1.1"}, "name": project,
        "files": [{"filename": filename, "url": f"../../files/{filename}", "size": len(body),
                   "hashes": {"sha256": hashlib.sha256(body).hexdigest()}}]}))
    return root


# -- 3. links stay where the index is -----------------------------------------------------


def test_an_http_index_cannot_make_stackmeta_read_local_files(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(FIXTURE / "files" / "six" / SIX_WHL, local / SIX_WHL)
    (local / f"{SIX_WHL}.metadata").write_bytes(EVIL)
    root = index_copy(tmp_path)

    def to_local(files: list[dict[str, object]]) -> None:
        files[0]["url"] = (local / SIX_WHL).as_uri()
        files[0]["core-metadata"] = True

    set_page(root, "six", to_local)
    with StaticServer(root) as server, client(server.url + "/simple") as c, \
            pytest.raises(IndexAccessError) as err:
        c.metadata(only(c, "six", SIX_WHL), "six")
    assert str(err.value) == (f"{(local / SIX_WHL).as_uri()}.metadata: six's page links a file URL, "
                              "and an http index may link only http(s) files: refused")


def test_a_file_index_reads_only_inside_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(FIXTURE / "files" / "six" / SIX_WHL, outside / SIX_WHL)
    (outside / f"{SIX_WHL}.metadata").write_bytes(EVIL)
    (outside / "alpha.metadata").write_bytes(b"Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n"
                                             b"Requires-Dist: evil-package\n")
    root = index_copy(tmp_path)
    set_page(root, "six", lambda files: files[0].update(url=f"../../../outside/{SIX_WHL}"))
    # a symlink inside the folder that leads out of it
    link = root / "files" / "alpha" / "alpha-1.0-py3-none-any.whl.metadata"
    link.unlink()
    link.symlink_to(outside / "alpha.metadata")
    with client(root.as_uri() + "/simple") as c:
        results = c.metadatas([("six", only(c, "six", SIX_WHL)),
                               ("alpha", only(c, "alpha", "alpha-1.0-py3-none-any.whl")),
                               ("alpha", only(c, "alpha", "alpha-0.9-py3-none-any.whl"))])
    six, alpha10, alpha09 = results.values()
    assert str(six) == (f"{(outside / SIX_WHL).as_uri()}.metadata: a file of six outside the index "
                        f"folder {root}: refused")
    assert str(alpha10) == f"{link.as_uri()}: a file of alpha outside the index folder {root}: refused"
    assert isinstance(alpha09, FileMetadata) and alpha09.metadata is not None  # inside: read
    assert [str(r) for r in alpha09.metadata.requires_dist] == ["six"]


# -- 4. the cache answers only for what it can vouch for ---------------------------------


def test_a_lying_index_does_not_poison_the_cache_for_an_honest_one(tmp_path: Path) -> None:
    liar = index_copy(tmp_path, "liar")
    (liar / "files" / "six" / f"{SIX_WHL}.metadata").write_bytes(EVIL)  # same wheel, lying metadata
    cache = tmp_path / "cache"
    with StaticServer(liar) as server, client(server.url + "/simple", cache) as c:
        lie = c.metadata(only(c, "six", SIX_WHL), "six")
    assert lie.metadata is not None and [str(r) for r in lie.metadata.requires_dist] == [
        "evil-package>=6.6.6"]  # that index's own answer, kept as that index's
    with StaticServer(FIXTURE) as server, client(server.url + "/simple", cache) as c:
        honest = c.metadata(only(c, "six", SIX_WHL), "six")
    assert honest.source == "range" and honest.metadata is not None
    assert honest.metadata.requires_dist == ()


def test_a_hand_edited_cache_entry_is_not_served(tmp_path: Path) -> None:
    root = index_copy(tmp_path)
    md = (root / "files" / "alpha" / "alpha-1.0-py3-none-any.whl.metadata").read_bytes()
    set_page(root, "alpha", lambda files: files[1].update(
        {"core-metadata": {"sha256": hashlib.sha256(md).hexdigest()}}))
    cache = tmp_path / "cache"
    with StaticServer(root) as server:
        with client(server.url + "/simple", cache) as c:
            first = c.metadata(only(c, "alpha", "alpha-1.0-py3-none-any.whl"), "alpha")
        assert first.source == "pep658"
        db = sqlite3.connect(cache / "cache.sqlite3")
        with db:
            assert db.execute("UPDATE metadata SET data = ?", (md + b"Requires-Dist: evil-package\n",)
                              ).rowcount == 1
        db.close()
        server.clear()
        with client(server.url + "/simple", cache) as c:
            again = c.metadata(only(c, "alpha", "alpha-1.0-py3-none-any.whl"), "alpha")
        metadata_gets = [p for p, _ in server.log if p.endswith(".metadata")]
    assert again.metadata is not None
    assert [str(r) for r in again.metadata.requires_dist] == ["beta<2", "gamma[extra1]", "six"]
    assert metadata_gets == ["/files/alpha/alpha-1.0-py3-none-any.whl.metadata"]  # read again


# -- 5. a page of another project ---------------------------------------------------------


def test_a_json_page_of_another_project_is_refused(tmp_path: Path) -> None:
    root = index_copy(tmp_path)
    shutil.copytree(root / "simple" / "six", root / "simple" / "demo")  # /simple/demo/ serves six's page
    with StaticServer(root) as server, client(server.url + "/simple") as c, \
            pytest.raises(IndexAccessError) as err:
        c.project("demo")
    assert str(err.value) == (f"{server.url}/simple/demo/: the page is project 'six''s, not demo's: "
                              "the index serves another project's page; refused")


def test_files_of_another_project_are_skipped_with_a_note(tmp_path: Path) -> None:
    root = tmp_path / "index"
    (root / "simple" / "demo").mkdir(parents=True)
    (root / "simple" / "demo" / "index.html").write_text(
        '<html><body><a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>'
        '<a href="six-1.0.tar.gz">six-1.0.tar.gz</a>'
        '<a href="six-1.0-py3-none-any.whl">six-1.0-py3-none-any.whl</a>'
        '<a href="Demo_Pkg-2.0-py3-none-any.whl">Demo_Pkg-2.0-py3-none-any.whl</a></body></html>')
    (root / "simple" / "demo-pkg").mkdir(parents=True)
    with StaticServer(root) as server, client(server.url + "/simple") as c:
        page = c.project("demo")
    assert page is not None
    assert list(page.filenames) == ["demo-1.0.tar.gz"]
    assert [str(v) for v in page.versions()] == ["1.0"]
    assert page.notes == (f"{server.url}/simple/demo/: 3 files of another project skipped: "
                          "six-1.0.tar.gz (six), six-1.0-py3-none-any.whl (six), "
                          "Demo_Pkg-2.0-py3-none-any.whl (demo-pkg)",)


# -- 6. every read is bounded -------------------------------------------------------------


def _stream(conn: socket.socket, stop: threading.Event, head: bytes, chunk: bytes, total: int) -> None:
    conn.sendall(head)
    sent = 0
    while sent < total and not stop.is_set():
        conn.sendall(chunk)
        sent += len(chunk)


_GZIP_BOMB: list[bytes] = []


def gzip_bomb(size: int = 1 << 30) -> bytes:
    """*size* zero bytes, gzip-compressed (~1 MB for 1 GB), made once."""
    if not _GZIP_BOMB:
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as gz:
            zeros = bytes(1 << 20)
            for _ in range(size >> 20):
                gz.write(zeros)
        _GZIP_BOMB.append(out.getvalue())
    return _GZIP_BOMB[0]


def bomb_server(conn: socket.socket, stop: threading.Event) -> None:
    """/simple/huge/: a 2 GB page; /simple/bomb/: a gzip page that inflates to 1 GB;
    /simple/demo/: a page whose wheel's .metadata is 2 GB."""
    head = read_request(conn)
    path = head.split(b" ", 2)[1].decode()
    if path == "/simple/demo/":
        page = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": [
            {"filename": "demo-1.0-py3-none-any.whl", "url": "/files/demo-1.0-py3-none-any.whl",
             "hashes": {"sha256": "0" * 64}, "core-metadata": True}]}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page))
        return
    if path == "/simple/bomb/":
        body = gzip_bomb()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\n"
                     b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        conn.sendall(body)
        return
    size = 2 << 30
    ctype = b"text/html" if path.startswith("/simple/") else b"application/octet-stream"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    _stream(conn, stop, head % (ctype, size), b"Requires-Dist: x\n" * 4096, size)


CHILD = """
import resource, sys
from stackmeta.index import IndexClient
from stackmeta.errors import IndexAccessError
c = IndexClient(sys.argv[1], False, retries=0, timeout=30)
page = c.project("demo")
for what in (lambda: c.project("huge"), lambda: c.project("bomb"),
             lambda: c.metadata(page.files[0], "demo")):
    try:
        what()
        print("read!")
    except IndexAccessError as exc:
        print(exc)
c.close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_huge_and_bomb_bodies_fail_in_one_line_in_bounded_memory(tmp_path: Path) -> None:
    gzip_bomb()
    with SocketServer(bomb_server) as server:
        run = subprocess.run([sys.executable, "-c", CHILD, server.url + "/simple"], capture_output=True,
                             text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    *lines, rss = run.stdout.splitlines()
    u = server.url
    assert lines == [
        f"{u}/simple/huge/: the response is larger than 256 MB (no real file of this kind is): the index "
        "serves a wrong file; refused",
        f"{u}/simple/bomb/: the response is larger than 256 MB (no real file of this kind is): the index "
        "serves a wrong file; refused",
        f"{u}/files/demo-1.0-py3-none-any.whl.metadata: the response is larger than 64 MB (no real file "
        "of this kind is): the index serves a wrong file; refused",
    ]
    assert int(rss) < 700_000, f"peak RSS {int(rss) // 1024} MB"  # KB; 2-4 GB unbounded


def test_a_metadata_zip_bomb_is_not_inflated(tmp_path: Path) -> None:
    big = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n" + b" " * (100 << 20)
    body = zip_bytes({"demo-1.0.dist-info/METADATA": big, "demo/__init__.py": b""})
    # the same wheel whose central directory (and local header) claim METADATA is 100 bytes
    liar = bytearray(body)
    for sig, field in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        pos = liar.find(sig)  # the first entry is METADATA
        liar[pos + field:pos + field + 4] = (100).to_bytes(4, "little")
    name = "demo-1.0-py3-none-any.whl"
    for folder, data in (("honest", body), ("liar", bytes(liar))):
        root = serve_wheel(tmp_path / folder, "demo", name, data)
        with StaticServer(root) as server:
            with client(server.url + "/simple") as c:
                f = only(c, "demo", name)
                with pytest.raises(IndexAccessError) as err:
                    c.metadata(f, "demo")
            server.fail("*.whl", "no-range")  # the whole wheel: the same bound
            with client(server.url + "/simple") as c, pytest.raises(IndexAccessError) as err2:
                c.metadata(only(c, "demo", name), "demo")
        if data is body:
            assert str(err.value) == (f"{f.url}: wheel of demo: METADATA of {len(big)} bytes (more than "
                                      "64 MB), more than any real wheel's: refused")
            assert str(err2.value) == (f"{f.url}: wheel of demo: demo-1.0.dist-info/METADATA is larger "
                                       "than 64 MB (no real metadata file is): refused")
        else:
            assert str(err.value) == (f"{f.url}: wheel of demo: METADATA inflates past 64 MB, more than "
                                      "any real wheel's: refused")
            assert str(err2.value).startswith(f"{f.url}: wheel of demo is not a readable zip (")


def test_a_lying_central_directory_does_not_ask_for_4_gb(tmp_path: Path) -> None:
    total = 5 << 30
    eocd = b"PK\x05\x06" + (0).to_bytes(4, "little") + (1).to_bytes(2, "little") * 2 \
        + (0xFFFFFFFE).to_bytes(4, "little") + (1 << 20).to_bytes(4, "little") + b"\0\0"
    tail = bytes(1024 - len(eocd)) + eocd
    ranges: list[str] = []

    def liar(conn: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            head = read_request(conn)
            if not head:
                return
            path = head.split(b" ", 2)[1].decode()
            rng = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                        if line.lower().startswith(b"range:")), "")
            if path == "/simple/demo/":
                body = json.dumps({"name": "demo", "files": [
                    {"filename": "demo-1.0-py3-none-any.whl", "url": "/demo-1.0-py3-none-any.whl",
                     "hashes": {"sha256": "0" * 64}, "core-metadata": False}]}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            ranges.append(rng)
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n"
                         b"Content-Length: %d\r\n\r\n%s"
                         % (total - len(tail), total - 1, total, len(tail), tail))

    with SocketServer(liar) as server, client(server.url + "/simple") as c:
        f = only(c, "demo", "demo-1.0-py3-none-any.whl")
        with pytest.raises(IndexAccessError) as err:
            c.metadata(f, "demo")
    assert str(err.value) == (f"{f.url}: wheel of demo: a central directory of 4294967294 bytes (more "
                              "than 64 MB), more than any real wheel's: refused")
    assert ranges == ["bytes=-65536"]  # the tail, and nothing after it


# -- 7. a malformed zip is one package's error ----------------------------------------------


def test_a_malformed_central_directory_is_one_packages_error(tmp_path: Path) -> None:
    md = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    data = bytearray(zip_bytes({"demo-1.0.dist-info/METADATA": md}, comment=b"PK\x03\x04"))
    central = data.find(b"PK\x01\x02")  # METADATA's local header "is" the comment's last 4 bytes
    data[central + 42:central + 46] = (len(data) - 4).to_bytes(4, "little")
    root = serve_wheel(tmp_path, "demo", "demo-1.0-py3-none-any.whl", bytes(data))
    shutil.copytree(FIXTURE / "simple" / "alpha", root / "simple" / "alpha")
    shutil.copytree(FIXTURE / "files" / "alpha", root / "files" / "alpha")
    with StaticServer(root) as server, client(server.url + "/simple") as c:
        bad = only(c, "demo", "demo-1.0-py3-none-any.whl")
        good = only(c, "alpha", "alpha-1.0-py3-none-any.whl")
        results = c.metadatas([("demo", bad), ("alpha", good)])
    assert str(results[("demo", bad)]).startswith(f"{bad.url}: wheel of demo is not a readable zip (")
    alpha = results[("alpha", good)]
    assert isinstance(alpha, FileMetadata) and alpha.metadata is not None  # the others go on


# -- 8. nothing hangs ---------------------------------------------------------------------


def dribble(conn: socket.socket, stop: threading.Event) -> None:
    """A page of 1000 bytes, one byte every 0.9 s (for 20 s at most)."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(22):
        if stop.wait(0.9):
            return
        conn.sendall(b"<")


def test_timeout_is_a_deadline_for_a_server_that_dribbles() -> None:
    with SocketServer(dribble) as server, client(server.url + "/simple", timeout=2.0, retries=0) as c:
        start = time.monotonic()
        with pytest.raises(IndexAccessError) as err:
            c.project("six")
        took = time.monotonic() - start
    assert str(err.value) == (f"{server.url}/simple/six/: timed out (after 1 attempt): check that the "
                              "index is reachable, or retry later")
    assert took < 3.5


def test_a_host_that_never_answers_is_given_up_after_a_few_timeouts() -> None:
    names = [f"p{i}" for i in range(10)]
    with SocketServer(never_answer) as server, client(server.url + "/simple", timeout=1.0, retries=4) as c:
        start = time.monotonic()
        results = c.projects(names)
        took = time.monotonic() - start
    host = server.url.removeprefix("http://")
    given_up = (f"no answer ({host} gave none in 3 attempts in a row, each given 1 s; given up): check "
                "that the index is reachable, or retry later")
    assert [str(r) for r in results.values()] == [f"{server.url}/simple/{n}/: {given_up}" for n in names]
    assert server.accepted == 3 and took < 5  # was: 10 pages x 5 attempts x 1 s, one at a time


def test_an_aborted_transport_stops_transfers_in_flight() -> None:
    with SocketServer(never_answer) as server:
        c = client(server.url + "/simple", timeout=30.0, retries=4)
        c.transport._known.add(server.url.removeprefix("http://"))  # all 8 requests in flight at once
        threading.Timer(0.5, c.transport.abort).start()
        start = time.monotonic()
        results = c.projects([f"p{i}" for i in range(8)])
        c.close()
        took = time.monotonic() - start
    assert {str(r).split(": ", 1)[1] for r in results.values()} == {"interrupted"}
    assert took < 2.0
