"""A real HTTP server on 127.0.0.1 serving a folder, with misbehaviours switched on at will.

Usage::

    with StaticServer(folder) as server:          # a ThreadingHTTPServer in a thread
        url = server.url + "/simple"               # http://127.0.0.1:PORT/simple
        server.fail("/simple/six/*", "500", times=2)   # two 500s, then normal answers
        ...
        server.log                                 # [(path, {header: value})] of every request
        server.arrivals                            # when each arrived (time.monotonic())

Serving (GET and HEAD): ``/x/`` answers ``x/index.json`` with the PEP 691 content type when the request
accepts it and the file exists (``negotiate=True``, the default), else ``x/index.html``;
other files by their suffix. ``Range: bytes=a-b`` and ``bytes=-n`` are honoured (206).
With ``gzip=True`` pages (JSON, HTML) go out gzip-compressed to a client that accepts it
(``Content-Encoding: gzip``), as from nginx with ``gzip on``.

Misbehaviours (:meth:`StaticServer.fail`; *pattern* is an ``fnmatch`` pattern on the path,
``times`` how many matching requests misbehave, None for all):

- ``"404"`` / ``"500"`` / ``"503"`` / ``"429"``: that status, empty body;
- ``"timeout"``: wait ``delay`` seconds (default 5) before answering normally;
- ``"truncate"``: announce the full Content-Length, send half of the body, close;
- ``"garbage"``: answer ``body`` (default: bytes that are no page and no metadata) with 200
  and ``content_type`` (default ``application/octet-stream``);
- ``"redirect-loop"``: 302 to the path itself;
- ``"no-range"``: ignore Range headers (answer 200 with the whole file).

:func:`unreachable_url` gives a URL where nothing listens.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import mimetypes
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass
class Fault:
    pattern: str
    kind: str
    times: int | None = None
    delay: float = 5.0
    body: bytes = b"\x00\x01 this is not what you asked for \xff"
    content_type: str = "application/octet-stream"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real index servers
    disable_nagle_algorithm = True  # TCP_NODELAY, as real servers: no 40 ms stall per response

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._head_only = True
        self.do_GET()

    _head_only = False

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        owner = self.server.owner
        with owner.lock:
            owner.log.append((path, dict(self.headers.items())))
            owner.arrivals.append(time.monotonic())
            fault = owner.take_fault(path)
        if fault is not None:
            if fault.kind.isdigit():
                self._send(int(fault.kind), b"", "text/plain")
                return
            if fault.kind == "timeout":
                time.sleep(fault.delay)
            elif fault.kind == "garbage":
                self._send(200, fault.body, fault.content_type)
                return
            elif fault.kind == "redirect-loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        target = owner.root / path.lstrip("/")
        ctype = None
        if target.is_dir():
            accept = self.headers.get("Accept", "")
            if owner.negotiate and JSON_TYPE in accept and (target / "index.json").is_file():
                target, ctype = target / "index.json", JSON_TYPE
            else:
                target = target / "index.html"
        if not target.is_file() or owner.root.resolve() not in target.resolve().parents:
            self._send(404, b"not found", "text/plain")
            return
        data = target.read_bytes()
        ctype = ctype or (mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        if target.suffix == ".html":
            ctype = "text/html; charset=utf-8"
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and not (fault and fault.kind == "no-range"):
            first, _, last = rng[6:].partition("-")
            total = len(data)
            if first == "":
                start, end = max(0, total - int(last)), total - 1
            else:
                start, end = int(first), min(total - 1, int(last) if last else total - 1)
            self._send(206, data[start:end + 1], ctype,
                       {"Content-Range": f"bytes {start}-{end}/{total}"}, fault)
            return
        headers = {"Accept-Ranges": "bytes"}
        if (owner.gzip and "gzip" in self.headers.get("Accept-Encoding", "")
                and (ctype.startswith("text/html") or ctype.endswith("json"))):
            data = gzip.compress(data)
            headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        self._send(200, data, ctype, headers, fault)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              fault: Fault | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if fault is not None and fault.kind == "truncate":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops simultaneous connects (SYN retried after 1 s)
    owner: StaticServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is not news


class StaticServer:
    """A folder served on 127.0.0.1 (a free port) by a real ThreadingHTTPServer."""

    def __init__(self, root: Path, *, negotiate: bool = True, gzip: bool = False) -> None:
        self.root = Path(root)
        self.negotiate = negotiate
        self.gzip = gzip
        self.lock = threading.Lock()
        self.log: list[tuple[str, dict[str, str]]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request in the log
        self.faults: list[Fault] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, pattern: str, kind: str, *, times: int | None = None, delay: float = 5.0,
             body: bytes | None = None, content_type: str | None = None) -> None:
        fault = Fault(pattern=pattern, kind=kind, times=times, delay=delay)
        if body is not None:
            fault.body = body
        if content_type is not None:
            fault.content_type = content_type
        with self.lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.log.clear()
            self.arrivals.clear()

    def take_fault(self, path: str) -> Fault | None:
        """(called with the lock held)"""
        for fault in self.faults:
            if fnmatch.fnmatchcase(path, fault.pattern) and (fault.times is None or fault.times > 0):
                if fault.times is not None:
                    fault.times -= 1
                return fault
        return None

    def start(self) -> StaticServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unreachable_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SocketServer:
    """A raw TCP server on 127.0.0.1 that misbehaves as *serve* says: ``serve(conn, stop)``
    runs in a thread per accepted connection (*stop* is set when the server stops), for
    what :class:`StaticServer` cannot do: answer nothing at all, dribble a byte at a time,
    stream a body without end. ``accepted`` counts the connections."""

    def __init__(self, serve: Any) -> None:
        self._serve = serve
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.1)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.stop_event = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conns = []
        while not self.stop_event.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.accepted += 1
            conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()
        for conn in conns:
            conn.close()

    def _one(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the client gave up: as expected
            self._serve(conn, self.stop_event)

    def __enter__(self) -> SocketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._thread.join(5)
        self._sock.close()


def read_request(conn: socket.socket) -> bytes:
    """The request head (up to the empty line) read from *conn*."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def never_answer(conn: socket.socket, stop: threading.Event) -> None:
    """Accept, read the request, say nothing until the server stops."""
    read_request(conn)
    stop.wait(120)
