"""The transport: GET over HTTP(S) with retries, or from a ``file://`` folder. The only I/O
edge of :mod:`stackmeta.index` besides the cache.

- HTTP is libcurl's (``pycurl``): each worker thread keeps one curl handle, whose connections
  are kept alive and reused (HTTP/2 where the server offers it); a transfer runs in C without
  the GIL, so the threads' Python work (parsing pages and metadata) goes on meanwhile. Callers
  run many requests at once from the transport's thread pool (:meth:`Transport.map`), which
  lives as long as the transport. The system's CA certificates are used (``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` honoured), and libcurl's proxy variables (``https_proxy``, ``no_proxy``).
- Retries with exponential backoff on 429, 5xx, timeouts and connection errors (honouring a
  short ``Retry-After``); after the last attempt an :class:`IndexAccessError` naming the URL.
  A host that refused every attempt is not tried again by this transport (its other URLs
  fail at once with the same kind of message).
- ``timeout``: seconds to connect (at most 10), seconds a transfer may go without
  receiving a byte (counted in whole seconds, at least 1), and the deadline of the whole
  request (a server that dribbles a byte a second is cut off there); a caller may give a
  request a longer ``deadline`` (a whole download).
- A host that keeps timing out (``HOST_TIMEOUTS`` attempts in a row with no answer between)
  is given up like one that refuses connections: its other URLs fail at once.
- Every body is bounded (``limit``, default ``MAX_BODY``), counted as it arrives after
  libcurl decoded it (gzip, deflate, br): past the bound the transfer stops and the request
  fails with one line; a bomb never fills the memory.
- :meth:`Transport.abort` (called when a :meth:`Transport.map` is interrupted, e.g. by Ctrl-C)
  stops every transfer in flight within about a second (libcurl's progress callback asks)
  and fails the requests not yet started.
- Redirects are followed by hand (at most 10) so that a loop is reported as one.
- 404 and other 4xx are returned, not raised: "not there" is an answer the caller judges.
- ``file://`` URLs read a static folder: a folder URL serves its ``index.json`` (when JSON is
  accepted) or ``index.html``; ranges are honoured as a server would.
- Every request is logged (:attr:`Transport.log`) so that a benchmark can replay them.
"""

from __future__ import annotations

import base64
import io
import math
import mimetypes
import os
import re
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import pycurl

from stackmeta import __version__, credentials
from stackmeta.errors import IndexAccessError, StackmetaError
from stackmeta.index.simple import JSON_TYPE

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_BODY = 256 << 20  # far above the largest real project page (~30 MB)
HOST_TIMEOUTS = 3  # attempts in a row that timed out on a host before it is given up
USER_AGENT = f"stackmeta/{__version__}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Response:
    url: str  # after redirects
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def ok(self) -> bool:
        return self.status in (200, 206)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggedRequest:
    url: str
    headers: tuple[tuple[str, str], ...]


class Transport:
    """GET with retries; thread-safe. ``jobs`` is the number of requests in flight at once."""

    def __init__(self, *, jobs: int = 16, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.25, user_agent: str = USER_AGENT) -> None:
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self.log: list[LoggedRequest] = []
        self._dead: dict[str, str] = {}  # host -> why: hosts that refused connections or never answer
        self._timeouts: dict[str, int] = {}  # host -> attempts in a row that timed out
        self._stop = threading.Event()  # set by abort(): every transfer ends, none starts
        # the handles share one DNS cache and TLS sessions; a host's first request goes alone
        # (the others to that host wait for it): then one name lookup is made, not one per
        # thread (a burst of lookups gets some of them dropped by resolvers: 5 s each)
        self._share = pycurl.CurlShare()
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        self._known: set[str] = set()  # hosts that answered once (their name is in the cache)
        self._host_locks: dict[str, threading.Lock] = {}
        self._local = threading.local()  # each thread's curl handle
        self._handles: list[pycurl.Curl] = []
        self._pool: ThreadPoolExecutor | None = None
        self._ca = _ca_paths()
        # the CA certificates read from the hashed folder alone, as each connection needs them
        # (see _folder_only); off for good once that did not verify a server the bundle may
        self._ca_folder_only = _folder_only(*self._ca)

    def abort(self) -> None:
        """Stop: transfers in flight end within about a second, later requests fail at once."""
        self._stop.set()

    @property
    def aborted(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:  # after abort(): what has not started never starts
            pool.shutdown(wait=True, cancel_futures=self._stop.is_set())
        with self._lock:
            handles, self._handles = self._handles, []
        for h in handles:
            h.close()
        self._local = threading.local()

    def _handle(self) -> pycurl.Curl:
        h: pycurl.Curl | None = getattr(self._local, "curl", None)
        if h is None:
            h = pycurl.Curl()
            h.setopt(pycurl.NOSIGNAL, 1)
            h.setopt(pycurl.TCP_NODELAY, 1)
            h.setopt(pycurl.USERAGENT, self.user_agent)
            h.setopt(pycurl.SHARE, self._share)
            h.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)  # nothing else, ever
            h.setopt(pycurl.CONNECTTIMEOUT_MS, int(min(self.timeout, 10.0) * 1000))
            h.setopt(pycurl.LOW_SPEED_LIMIT, 1)
            h.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(self.timeout)))
            h.setopt(pycurl.NOPROGRESS, 0)
            h.setopt(pycurl.XFERINFOFUNCTION, self._progress)
            self._set_ca(h)
            self._local.curl = h
            with self._lock:
                self._handles.append(h)
        return h

    def _set_ca(self, h: pycurl.Curl) -> None:
        cafile, capath = self._ca
        folder_only = self._ca_folder_only
        self._local.ca_folder_only = folder_only
        if folder_only:
            h.setopt(pycurl.CAINFO, None)  # not libcurl's built-in bundle either
        elif cafile:
            h.setopt(pycurl.CAINFO, cafile)
        if capath:
            h.setopt(pycurl.CAPATH, capath)

    def _ca_failed(self, h: pycurl.Curl, exc: pycurl.error) -> bool:
        """Whether *exc* is a server this handle could not verify from the CA folder alone: then
        every handle reads the bundle as well from now on (this one at once, to try again)."""
        if not getattr(self._local, "ca_folder_only", False) or not exc.args \
                or exc.args[0] not in _CA_ERRORS:
            return False
        self._ca_folder_only = False
        self._set_ca(h)
        return True

    def _progress(self, _dltotal: int, _dlnow: int, _ultotal: int, _ulnow: int) -> int:
        """libcurl's progress callback (at least once a second): non-zero aborts the transfer."""
        return 1 if self._stop.is_set() else 0

    # -- one request -------------------------------------------------------------------

    def get(self, url: str, *, headers: Mapping[str, str] | None = None, limit: int = MAX_BODY,
            deadline: float | None = None) -> Response:
        """GET *url*; follows redirects, retries transient failures. 4xx are returned. A user
        name and password in *url* are sent (HTTP basic) to its host only, and shown nowhere.
        A body longer than *limit* bytes (decoded) fails the request; *deadline*: seconds the
        request may take (default: the transport's timeout)."""
        url = credentials.without(url)
        hdrs = dict(headers or {})
        with self._lock:
            self.log.append(LoggedRequest(url=url, headers=tuple(sorted(hdrs.items()))))
        if url.startswith("file:"):
            return _get_file(url, hdrs, limit)
        if not url.startswith(("http://", "https://")):
            raise IndexAccessError(f"{url}: not an http, https or file URL: only those are read")
        seen = {url}
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._get_with_retries(current, hdrs, limit, deadline or self.timeout)
            if resp.status in REDIRECT_STATUS and "location" in resp.headers:
                nxt = credentials.without(urljoin(current, resp.headers["location"]))
                if not nxt.startswith(("http://", "https://")):
                    raise IndexAccessError(f"{url}: redirected to {nxt[:100]}, not an http(s) URL: refused")
                if nxt in seen:
                    raise IndexAccessError(f"{url}: redirect loop (back to {nxt}): fix the index URL")
                seen.add(nxt)
                current = nxt
                continue
            return resp
        raise IndexAccessError(f"{url}: more than {MAX_REDIRECTS} redirects: fix the index URL")

    def _get_with_retries(self, url: str, headers: Mapping[str, str], limit: int,
                          deadline: float) -> Response:
        host = urlsplit(url).netloc
        self._refuse_if_dead(url, host)  # do not wait through the retries of every URL of a dead host
        last, wait = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt and self._stop.wait(wait or self.backoff * (2 ** (attempt - 1))):
                break
            self._refuse_if_dead(url, host)  # given up meanwhile (by another request)
            wait = 0.0
            try:
                resp = self._first_or_any(host, url, headers, limit, deadline)
            except pycurl.error as exc:
                code = exc.args[0] if exc.args else 0
                if self._stop.is_set():
                    break
                if code == pycurl.E_WRITE_ERROR:
                    raise IndexAccessError(f"{url}: the response is larger than {limit >> 20} MB "
                                           "(no real file of this kind is): the index serves a wrong "
                                           "file; refused") from None
                last = _describe(exc)
                if code in _TIMED_OUT:
                    self._timed_out(host, deadline)
                continue
            if resp.status in RETRY_STATUS:
                last = f"HTTP {resp.status}"
                retry_after = resp.headers.get("retry-after", "")
                if retry_after.isdigit():  # honoured when short
                    last += f" retry-after={retry_after}"
                    wait = min(float(retry_after), 10.0)
                continue
            with self._lock:
                self._timeouts.pop(host, None)
            return resp
        if self._stop.is_set():
            raise IndexAccessError(f"{url}: interrupted")
        attempts = self.retries + 1
        if last == "cannot connect":
            self._dead.setdefault(host, f"cannot connect ({host} refused {attempts} "
                                        f"attempt{'s' * (attempts > 1)})")
        raise IndexAccessError(
            f"{url}: {last} (after {attempts} attempt{'s' * (attempts > 1)}): "
            "check that the index is reachable, or retry later"
        )

    def _refuse_if_dead(self, url: str, host: str) -> None:
        dead = self._dead.get(host)
        if dead is not None:
            raise IndexAccessError(f"{url}: {dead}: check that the index is reachable, or retry later")

    def _timed_out(self, host: str, deadline: float) -> None:
        """Count an attempt on *host* that timed out; give the host up after HOST_TIMEOUTS in a row."""
        with self._lock:
            n = self._timeouts[host] = self._timeouts.get(host, 0) + 1
            if n >= HOST_TIMEOUTS:
                self._dead.setdefault(host, f"no answer ({host} gave none in {n} attempts in a row, "
                                            f"each given {deadline:g} s; given up)")

    def _first_or_any(self, host: str, url: str, headers: Mapping[str, str], limit: int,
                      deadline: float) -> Response:
        """:meth:`_attempt`; while *host* has not answered yet, one attempt at a time."""
        if host in self._known:
            return self._attempt(url, headers, limit, deadline)
        with self._lock:
            gate = self._host_locks.setdefault(host, threading.Lock())
        with gate:
            self._refuse_if_dead(url, host)  # it failed for another thread meanwhile
            if self._stop.is_set():
                raise IndexAccessError(f"{url}: interrupted")
            if host not in self._known:
                resp = self._attempt(url, headers, limit, deadline)
                self._known.add(host)
                return resp
        # it answered another thread meanwhile: the threads that waited for that go at once, not
        # one by one behind the gate (one that gets no answer held the others for its timeout)
        return self._attempt(url, headers, limit, deadline)

    def _attempt(self, url: str, headers: Mapping[str, str], limit: int, deadline: float) -> Response:
        """One GET, no redirect followed; raises ``pycurl.error`` when no answer came (or the
        body passed *limit*: ``E_WRITE_ERROR``)."""
        if self._stop.is_set():
            raise IndexAccessError(f"{url}: interrupted")
        h = self._handle()
        if getattr(self._local, "ca_folder_only", False) and not self._ca_folder_only:
            self._set_ca(h)  # another handle found the folder alone short
        body = _Bounded(limit)
        raw: list[bytes] = []
        h.setopt(pycurl.URL, url)
        encoding = None
        lines = []
        for k, v in headers.items():
            if k.lower() == "accept-encoding":
                encoding = v  # asked through libcurl, which then decodes the body
            else:
                lines.append(f"{k}: {v}")
        auth = credentials.auth_for(url)  # the host's own credentials; a redirect elsewhere gets none
        if auth is not None:
            lines.append("Authorization: Basic " + base64.b64encode(":".join(auth).encode()).decode())
        if lines:
            h.setopt(pycurl.HTTPHEADER, lines)
        else:  # an empty list would leave the last request's headers (a Range!) in place
            h.unsetopt(pycurl.HTTPHEADER)
        if encoding is None:
            h.unsetopt(pycurl.ACCEPT_ENCODING)
        else:
            h.setopt(pycurl.ACCEPT_ENCODING, encoding)
        h.setopt(pycurl.WRITEFUNCTION, body.write)
        h.setopt(pycurl.HEADERFUNCTION, raw.append)
        h.setopt(pycurl.TIMEOUT_MS, max(1, int(deadline * 1000)))
        try:
            try:
                h.perform()
            except pycurl.error as exc:
                if not self._ca_failed(h, exc):
                    raise
                h.perform()  # with the bundle too, as before the folder alone (nothing was received)
            status = h.getinfo(pycurl.RESPONSE_CODE)
        finally:
            h.setopt(pycurl.HEADERFUNCTION, _ignore)  # no reference to this call's objects kept
            h.setopt(pycurl.WRITEFUNCTION, _ignore_body)
        return Response(url=url, status=status, headers=_headers(raw), body=body.getvalue())

    # -- many at once ------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T],
            on_done: Callable[[T, R | StackmetaError], None] | None = None) -> dict[T, R | StackmetaError]:
        """Run *fn* over *items* with ``jobs`` threads. A :class:`StackmetaError` raised for one
        item is its result; the others go on. *on_done* is called (in this thread) per item.
        Called from one of the transport's own threads, the items run there, one by one."""
        todo = list(dict.fromkeys(items))
        out: dict[T, R | StackmetaError] = {}

        def done(item: T, result: Callable[[], R]) -> None:
            try:
                res: R | StackmetaError = result()
            except StackmetaError as exc:
                res = exc
            out[item] = res
            if on_done is not None:
                on_done(item, res)

        if getattr(self._local, "worker", False):
            for item in todo:
                done(item, partial(fn, item))
            return out
        if todo:
            ex = self._executor()
            futures = {ex.submit(fn, item): item for item in todo}
            try:
                for fut in as_completed(futures):
                    done(futures[fut], fut.result)
            except BaseException:  # Ctrl-C (or a bug): the workers stop too, at once
                self.abort()
                for fut in futures:
                    fut.cancel()
                raise
        return {item: out[item] for item in todo}

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                _fewer_malloc_arenas()
                self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="stackmeta",
                                                initializer=self._mark_worker)
            return self._pool

    def _mark_worker(self) -> None:
        self._local.worker = True


_ARENAS = 2


def _fewer_malloc_arenas() -> None:
    """Let the worker threads share glibc's malloc arenas (M_ARENA_MAX), unless
    MALLOC_ARENA_MAX says otherwise. By default each thread gets its own (up to 8 per core), and
    the big page bodies and metadata each thread reads leave freed memory behind in each one:
    with 16 workers a resolve's peak RSS was 60 MB higher for nothing (the GIL serialises the
    work anyway). Elsewhere (another libc) nothing is done."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-8, _ARENAS)  # M_ARENA_MAX (malloc.h)


def _ignore(_line: bytes) -> None:
    return None


def _ignore_body(data: bytes) -> int:
    return 0  # no transfer runs without its own write function: abort any that would


class _Bounded:
    """A response body that refuses to grow past *limit* bytes (libcurl's write function:
    returning less than it was given aborts the transfer with ``E_WRITE_ERROR``). Kept in one
    growing buffer whose bytes :meth:`getvalue` hands over without a copy (a list of chunks
    joined at the end held a large download twice)."""

    __slots__ = ("_buf", "_limit", "_size")

    def __init__(self, limit: int) -> None:
        self._buf = io.BytesIO()
        self._limit = limit
        self._size = 0

    def write(self, data: bytes) -> int | None:
        self._size += len(data)
        if self._size > self._limit:
            self._buf = io.BytesIO()
            return 0
        self._buf.write(data)
        return None

    def getvalue(self) -> bytes:
        return self._buf.getvalue()


def _headers(raw: list[bytes]) -> dict[str, str]:
    """The header lines of the last response received (lower-case names)."""
    got: dict[str, str] = {}
    for line in raw:
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if sep:
            got[name.strip().lower()] = value.strip()
        elif name.startswith("HTTP/"):  # a new response (after 100 Continue): its own headers
            got.clear()
    return got


_CA_ERRORS = (pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CACERT_BADFILE)
_HASHED = re.compile(r"[0-9a-f]{8}\.[0-9]+")  # OpenSSL's name for a certificate in a CA folder


def _folder_only(cafile: str | None, capath: str | None) -> bool:
    """Whether libcurl may be given the CA folder alone (OpenSSL then reads from it, by its
    hashed names, just the certificates a connection needs): a bundle file is read whole into
    every handle, about 0.8 MB each (32 handles that connect: 20 to 26 MB more). Only for the
    system's own bundle (SSL_CERT_FILE naming another file is the user's choice: used as given)
    beside a folder of hashed names. Should the folder lack what the bundle has, a server it
    does not verify is tried again with the bundle (:meth:`Transport._ca_failed`)."""
    if not (cafile and capath):
        return False
    if os.path.realpath(cafile) != os.path.realpath(ssl.get_default_verify_paths().openssl_cafile):
        return False
    try:
        with os.scandir(capath) as entries:
            return any(_HASHED.fullmatch(e.name) for e in entries)
    except OSError:
        return False


def _ca_paths() -> tuple[str | None, str | None]:
    """The CA certificates Python's ``ssl`` would use (``SSL_CERT_FILE``/``SSL_CERT_DIR`` first):
    libcurl's built-in path may be another system's. Where the system has none (a Python
    from python.org on macOS before its "Install Certificates"), certifi's when installed."""
    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env) or paths.cafile
    capath = os.environ.get(paths.openssl_capath_env) or paths.capath
    found = (cafile if cafile and os.path.isfile(cafile) else None,
             capath if capath and os.path.isdir(capath) else None)
    if found == (None, None):
        try:
            import certifi
        except ImportError:
            return found
        return certifi.where(), None
    return found


# libcurl's error codes that mean "no answer": the connection (or name) failed, or time ran out
_CANNOT_CONNECT = frozenset({pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST,
                             pycurl.E_COULDNT_RESOLVE_PROXY})
_TIMED_OUT = frozenset({pycurl.E_OPERATION_TIMEDOUT})


def _describe(exc: pycurl.error) -> str:
    code, text = (*exc.args, 0, "")[:2]
    if code in _TIMED_OUT:
        return "timed out"
    if code in _CANNOT_CONNECT:
        return "cannot connect"
    if code == pycurl.E_PARTIAL_FILE:
        return f"incomplete response ({text})"[:200]
    return f"{text or 'transfer failed'} (curl error {code})"[:200]


def _get_file(url: str, headers: Mapping[str, str], limit: int = MAX_BODY) -> Response:
    from urllib.request import url2pathname  # imports http.client: only for file:// indexes

    parts = urlsplit(url)
    path = Path(url2pathname(unquote(parts.path)))
    if path.is_dir():
        accept = headers.get("Accept", "")
        candidates = ["index.json", "index.html"] if JSON_TYPE in accept else ["index.html"]
        for name in candidates:
            if (path / name).is_file():
                path = path / name
                break
        else:
            return Response(url=url, status=404)
    if not path.is_file():
        return Response(url=url, status=404)
    try:
        if path.stat().st_size > limit:
            raise IndexAccessError(f"{url}: the file is larger than {limit >> 20} MB "
                                   "(no real file of this kind is): refused")
        data = path.read_bytes()
    except OSError as exc:
        raise IndexAccessError(f"{url}: cannot read ({exc.strerror})") from None
    if path.name == "index.json":
        ctype = JSON_TYPE
    elif path.suffix == ".html":
        ctype = "text/html"
    else:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    rng = headers.get("Range")
    if rng and rng.startswith("bytes="):
        start_s, _, end_s = rng[6:].partition("-")
        total = len(data)
        if start_s == "":
            start, end = max(0, total - int(end_s)), total - 1
        else:
            start, end = int(start_s), min(total - 1, int(end_s) if end_s else total - 1)
        return Response(url=url, status=206, body=data[start:end + 1], headers={
            "content-type": ctype, "content-range": f"bytes {start}-{end}/{total}"})
    return Response(url=url, status=200, body=data, headers={"content-type": ctype})
