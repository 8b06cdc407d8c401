"""The transport: GET over HTTP(S) with retries, or from a ``file://`` folder. The only I/O
edge of :mod:`stackmeta.index` besides the cache.

- One ``urllib3.PoolManager`` shared by all threads (connections are kept alive and reused);
  callers run many requests at once from a thread pool (:meth:`Transport.map`).
- Retries with exponential backoff on 429, 5xx, timeouts and connection errors (honouring a
  short ``Retry-After``); after the last attempt an :class:`IndexAccessError` naming the URL.
  A host that refused every attempt is not tried again by this transport (its other URLs
  fail at once with the same kind of message).
- Redirects are followed by hand (at most 10) so that a loop is reported as one.
- 404 and other 4xx are returned, not raised: "not there" is an answer the caller judges.
- ``file://`` URLs read a static folder: a folder URL serves its ``index.json`` (when JSON is
  accepted) or ``index.html``; ranges are honoured as a server would.
- Every request is logged (:attr:`Transport.log`) so that a benchmark can replay them.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.ssl_ import create_urllib3_context

from stackmeta import __version__
from stackmeta.errors import IndexAccessError, StackmetaError
from stackmeta.index.simple import JSON_TYPE

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
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
        self._pool_kw: dict[str, Any] = dict(
            num_pools=8, maxsize=self.jobs, block=False, retries=False,
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            headers={"User-Agent": user_agent},
        )
        self._pool = urllib3.PoolManager(**self._pool_kw)  # http://
        self._tls_pool: urllib3.PoolManager | None = None  # https://, made when first needed
        self._lock = threading.Lock()
        self.log: list[LoggedRequest] = []
        self._dead: dict[str, str] = {}  # host -> why: hosts that refused connections

    def close(self) -> None:
        self._pool.clear()
        if self._tls_pool is not None:
            self._tls_pool.clear()

    def _pool_for(self, url: str) -> urllib3.PoolManager:
        if not url.startswith("https:"):
            return self._pool
        with self._lock:
            if self._tls_pool is None:
                # one TLS context for every connection: loading the CA certificates costs ~0.2 s of
                # CPU, which urllib3 would otherwise spend again on each new connection (and an
                # index served over plain HTTP does not spend it at all)
                tls = create_urllib3_context()
                tls.load_default_certs()
                self._tls_pool = urllib3.PoolManager(ssl_context=tls, **self._pool_kw)
            return self._tls_pool

    # -- one request -------------------------------------------------------------------

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Response:
        """GET *url*; follows redirects, retries transient failures. 4xx are returned."""
        hdrs = dict(headers or {})
        with self._lock:
            self.log.append(LoggedRequest(url=url, headers=tuple(sorted(hdrs.items()))))
        if url.startswith("file:"):
            return _get_file(url, hdrs)
        seen = {url}
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._get_with_retries(current, hdrs)
            if resp.status in REDIRECT_STATUS and "location" in resp.headers:
                nxt = urljoin(current, resp.headers["location"])
                if nxt in seen:
                    raise IndexAccessError(f"{url}: redirect loop (back to {nxt}): fix the index URL")
                seen.add(nxt)
                current = nxt
                continue
            return resp
        raise IndexAccessError(f"{url}: more than {MAX_REDIRECTS} redirects: fix the index URL")

    def _get_with_retries(self, url: str, headers: Mapping[str, str]) -> Response:
        host = urlsplit(url).netloc
        dead = self._dead.get(host)
        if dead is not None:  # do not wait through the retries of every URL of a host that is down
            raise IndexAccessError(f"{url}: cannot connect ({host} {dead}): "
                                   "check that the index is reachable, or retry later")
        last = ""
        pool = self._pool_for(url)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, last))
            try:
                r = pool.request("GET", url, headers=dict(headers), redirect=False,
                                       preload_content=True, decode_content=True)
            except (Urllib3Error, OSError) as exc:
                last = _describe(exc)
                continue
            resp = Response(url=url, status=r.status,
                            headers={k.lower(): v for k, v in r.headers.items()}, body=r.data or b"")
            if resp.status in RETRY_STATUS:
                last = f"HTTP {resp.status}"
                retry_after = resp.headers.get("retry-after", "")
                if retry_after.isdigit():
                    last += f" retry-after={retry_after}"
                continue
            return resp
        attempts = self.retries + 1
        if last == "cannot connect":
            self._dead.setdefault(host, f"refused {attempts} attempt{'s' * (attempts > 1)}")
        raise IndexAccessError(
            f"{url}: {last} (after {attempts} attempt{'s' * (attempts > 1)}): "
            "check that the index is reachable, or retry later"
        )

    def _delay(self, attempt: int, last: str) -> float:
        if "retry-after=" in last:
            return min(float(last.rsplit("=", 1)[1]), 10.0)
        return float(self.backoff * (2 ** (attempt - 1)))

    # -- many at once ------------------------------------------------------------------

    def map(self, fn: Callable[[T], R], items: Iterable[T],
            on_done: Callable[[T, R | StackmetaError], None] | None = None) -> dict[T, R | StackmetaError]:
        """Run *fn* over *items* with ``jobs`` threads. A :class:`StackmetaError` raised for one
        item is its result; the others go on. *on_done* is called (in this thread) per item."""
        todo = list(dict.fromkeys(items))
        out: dict[T, R | StackmetaError] = {}
        if not todo:
            return out
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(todo)), thread_name_prefix="stackmeta") as ex:
            futures = {ex.submit(fn, item): item for item in todo}
            for fut in as_completed(futures):
                item = futures[fut]
                try:
                    res: R | StackmetaError = fut.result()
                except StackmetaError as exc:
                    res = exc
                out[item] = res
                if on_done is not None:
                    on_done(item, res)
        return {item: out[item] for item in todo}


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return "timed out"
    if "NewConnection" in name or isinstance(exc, ConnectionRefusedError):
        return "cannot connect"
    text = str(exc).split(": ", 1)[-1] if str(exc) else name
    return f"{name}: {text}"[:200]


def _get_file(url: str, headers: Mapping[str, str]) -> Response:
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
