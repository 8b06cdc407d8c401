"""The on-disk cache: core metadata keyed by the sha256 of the file it describes, and project
pages kept for a short time.

The index reachable here strips HTTP cache headers, so HTTP caching rules cannot be used.
Metadata is content-addressed instead: the page gives each file's sha256, and the metadata of
a file with that sha256 never changes, so it is kept for good, with how it was read (pep658,
range, download, pkg-info). An entry is written only after what can be verified was verified
(the caller's job: the advertised core-metadata hash, the whole file's hash). Pages change
(new uploads, yanks): they are trusted for ``max_age`` seconds.

Storage: one SQLite database, ``<root>/cache.sqlite3`` (WAL journal, no fsync). Writes are kept in
memory (and served from there) and written in one transaction when the cache is closed (the
client closes it), in a background thread whenever more than ``SOON_BYTES`` wait (so that a cold
run does not hold every page body it read until the end), and at once when more than
``FLUSH_BYTES`` wait: a reader never sees a part, several
processes can share the cache, and a check writes its ~700 entries without creating ~700 files
and without making its threads queue for the database. A damaged database is moved aside and
started again (it is only a cache). A cache that cannot write (a read-only or full folder) is
dropped with one warning (the ``stackmeta`` logger, which the CLI prints) and the command
goes on without it.

Entries are untrusted when read back (another process, a hand edit): the client checks what
comes out (:mod:`stackmeta.index.client`), and chooses the keys so that what one index served
is never taken for another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import platformdirs

from stackmeta.errors import OutputError

SOURCES = ("pep658", "range", "download", "pkg-info", "pep517")
_SHA = re.compile(r"^[0-9a-f]{64}$")
DB_NAME = "cache.sqlite3"
FLUSH_BYTES = 64 << 20  # pending bytes written at once, by the thread that adds them
SOON_BYTES = 8 << 20  # pending bytes written in the background (a cold check reads ~80 MB of pages)
log = logging.getLogger("stackmeta")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metadata (sha256 TEXT PRIMARY KEY, source TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    index_key TEXT NOT NULL, name TEXT NOT NULL, fetched REAL NOT NULL,
    content_type TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (index_key, name));
"""


def default_cache_dir() -> Path:
    """``$STACKMETA_CACHE_DIR`` when set (as pip's ``PIP_CACHE_DIR``, uv's ``UV_CACHE_DIR``),
    else the user's cache folder (``platformdirs``)."""
    chosen = os.environ.get("STACKMETA_CACHE_DIR")
    return Path(chosen).expanduser() if chosen else Path(platformdirs.user_cache_dir("stackmeta"))


def _fix(root: Path | None, what: str) -> str:
    """How the user points the cache at *what*: by the option, or by the variable that chose *root*."""
    chosen = os.environ.get("STACKMETA_CACHE_DIR")
    if chosen and root is not None and Path(chosen).expanduser() == root:
        return f"set $STACKMETA_CACHE_DIR to {what} (or unset it)"
    return f"give --cache-dir {what}"


class Cache:
    """An on-disk cache under *root*; ``Cache(None)`` keeps nothing. Thread-safe.

    A *root* that is a file, or lies under one, is refused at once (:class:`OutputError`);
    a folder that cannot be created or written later makes the cache keep nothing."""

    def __init__(self, root: Path | None) -> None:
        if root is not None:
            blocker = next((p for p in (root, *root.parents) if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise OutputError(f"cache folder {root}: {blocker} is a file, not a folder: "
                                  f"{_fix(root, 'a folder')}, or --no-cache")
        self.root = root
        self._lock = threading.Lock()  # the pending writes (no I/O under it)
        self._db_lock = threading.Lock()  # the writer connection
        self._db: sqlite3.Connection | None = None
        self._local = threading.local()  # a reader connection per thread (WAL: readers run at once)
        self._readers: list[sqlite3.Connection] = []
        self._absent = False
        self._md_pending: dict[str, tuple[str, bytes]] = {}
        self._pages_pending: dict[tuple[str, str], tuple[float, str, str, bytes]] = {}
        self._pending_bytes = 0
        self._flusher: threading.Thread | None = None
        self.dropped: str | None = None  # why the cache stopped writing, once it did

    def _drop(self, why: object) -> None:
        """Stop writing (a cache that cannot write is no cache: drop it, never fail), warn once."""
        with self._lock:
            first = self.dropped is None
            self.dropped = str(why) or type(why).__name__
            self._md_pending, self._pages_pending, self._pending_bytes = {}, {}, 0
        if first:
            log.warning("cache %s cannot be written (%s): going on without it; %s, or --no-cache",
                        self.root, self.dropped, _fix(self.root, "a writable folder"))

    def _conn(self) -> sqlite3.Connection | None:
        if self.root is None or self.dropped is not None:
            return None
        if self._db is None:
            path = self.root / DB_NAME
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                try:
                    self._db = self._open(path)
                except sqlite3.OperationalError:  # cannot open or write: not a damaged file
                    raise
                except sqlite3.DatabaseError:  # a damaged file: moved aside, started again
                    with contextlib.suppress(OSError):
                        path.rename(path.with_name(f"{DB_NAME}.damaged-{int(time.time())}"))
                    self._db = self._open(path)
            except (OSError, sqlite3.Error) as exc:
                self._drop(exc)
                return None
        return self._db

    def _reader(self) -> sqlite3.Connection | None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # no database yet: none will appear before this cache writes (at flush), bar another
            # process, so ask the file system once
            if self.root is None or self._absent:
                return None
            if not (self.root / DB_NAME).exists():
                self._absent = True
                return None
            try:
                db = sqlite3.connect(self.root / DB_NAME, timeout=30, check_same_thread=False,
                                     isolation_level=None)
                # a reader per thread: SQLite's page cache is per connection (2 MB by
                # default, filled by the big page bodies read through it); entries are read
                # once each, so a small one serves as well
                db.execute("PRAGMA cache_size=-256")
            except sqlite3.Error:
                return None
            self._local.db = db
            with self._lock:
                self._readers.append(db)
        return db

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # no fsync: a cache need not survive a power cut (an application crash cannot damage it;
        # after an OS crash a damaged database is moved aside, a damaged entry is a miss), and the
        # two fsyncs of a WAL checkpoint cost a check 40-200 ms at close
        db.execute("PRAGMA synchronous=OFF")
        db.executescript(_SCHEMA)
        return db

    def flush(self) -> None:
        """Write what waits in memory, in one transaction."""
        self._join_flusher()
        self._flush_now()

    def flush_soon(self) -> None:
        """Start writing what waits in memory in a background thread (SQLite works without
        holding the GIL, so the caller's next work runs meanwhile); :meth:`flush` and
        :meth:`close` wait for it. Entries being written are, until then, a cache miss."""
        with self._lock:
            if self._flusher is not None or not (self._md_pending or self._pages_pending):
                return
            self._flusher = threading.Thread(target=self._flush_now, name="stackmeta-cache", daemon=True)
            flusher = self._flusher
        flusher.start()

    def _join_flusher(self) -> None:
        with self._lock:
            flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()

    def _flush_now(self) -> None:
        with self._lock:
            md, pages = self._md_pending, self._pages_pending
            self._md_pending, self._pages_pending, self._pending_bytes = {}, {}, 0
        self._write(md, pages)

    def _write(self, md: dict[str, tuple[str, bytes]],
               pages: dict[tuple[str, str], tuple[float, str, str, bytes]]) -> None:
        if not (md or pages):
            return
        with self._db_lock:
            db = self._conn()
            if db is None:
                return
            try:
                self._write_locked(db, md, pages)
            except sqlite3.Error as exc:  # read-only, disk full, locked for 30 s
                self._drop(exc)
                return
            self._absent = False

    @staticmethod
    def _write_locked(db: sqlite3.Connection, md: dict[str, tuple[str, bytes]],
                      pages: dict[tuple[str, str], tuple[float, str, str, bytes]]) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?, ?)",
                           [(sha, src, data) for sha, (src, data) in md.items()])
            db.executemany("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?)",
                           [(key, name, *rest) for (key, name), rest in pages.items()])
            db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.flush()
        with self._lock:
            readers, self._readers = self._readers, []
        for r in readers:
            with contextlib.suppress(sqlite3.Error):
                r.close()
        self._local = threading.local()
        with self._db_lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    # -- metadata, by the sha256 of the file it was read from ----------------------------

    def get_metadata(self, sha256: str | None) -> tuple[bytes, str] | None:
        """(metadata bytes, source) for the file with this sha256, or None."""
        if sha256 is None or not _SHA.match(sha256):
            return None
        with self._lock:
            if sha256 in self._md_pending:
                source, data = self._md_pending[sha256]
                return data, source
        db = self._reader()
        if db is None:
            return None
        try:
            row = db.execute("SELECT data, source FROM metadata WHERE sha256 = ?", (sha256,)).fetchone()
        except sqlite3.Error:
            return None
        return (bytes(row[0]), str(row[1])) if row else None

    def has_metadata(self, sha256: str | None) -> bool:
        """Whether there is metadata for the file with this sha256 (without reading it)."""
        if sha256 is None or not _SHA.match(sha256):
            return False
        with self._lock:
            if sha256 in self._md_pending:
                return True
        db = self._reader()
        if db is None:
            return False
        try:
            return db.execute("SELECT 1 FROM metadata WHERE sha256 = ?", (sha256,)).fetchone() is not None
        except sqlite3.Error:
            return False

    def put_metadata(self, sha256: str | None, data: bytes, source: str) -> None:
        if sha256 is None or not _SHA.match(sha256) or source not in SOURCES:
            return
        with self._lock:
            if self.root is None or self.dropped is not None:
                return
            self._md_pending[sha256] = (source, data)
            self._pending_bytes += len(data)
            pending = self._pending_bytes
        self._flush_if(pending)

    def metadata_keys(self) -> list[tuple[str, str]]:
        """(sha256, source) of every metadata entry, sorted."""
        self.flush()
        with self._db_lock:
            db = self._conn()
            if db is None:
                return []
            return sorted(db.execute("SELECT sha256, source FROM metadata").fetchall())

    # -- pages, for a short time ---------------------------------------------------------

    @staticmethod
    def _index_key(index_url: str) -> str:
        return hashlib.sha256(index_url.rstrip("/").encode()).hexdigest()[:16]

    def get_page(self, index_url: str, name: str, max_age: float) -> tuple[bytes, str, str] | None:
        """(body, content type, url) of a page fetched less than *max_age* seconds ago."""
        if max_age <= 0:
            return None
        key = (self._index_key(index_url), name)
        with self._lock:
            if key in self._pages_pending:
                t, ctype, url, body = self._pages_pending[key]
                return (body, ctype, url) if t > time.time() - max_age else None
        db = self._reader()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT body, content_type, url FROM pages WHERE index_key = ? AND name = ? AND fetched > ?",
                (*key, time.time() - max_age)).fetchone()
        except sqlite3.Error:
            return None
        return (bytes(row[0]), str(row[1]), str(row[2])) if row else None

    def put_page(self, index_url: str, name: str, body: bytes, content_type: str, url: str) -> None:
        with self._lock:
            if self.root is None or self.dropped is not None:
                return
            self._pages_pending[(self._index_key(index_url), name)] = (time.time(), content_type, url, body)
            self._pending_bytes += len(body)
            pending = self._pending_bytes
        self._flush_if(pending)

    def _flush_if(self, pending: int) -> None:
        """Write what waits when *pending* bytes do: at once past ``FLUSH_BYTES``, in the
        background past ``SOON_BYTES`` (unless a background write still runs)."""
        if pending > FLUSH_BYTES:
            self.flush()
        elif pending > SOON_BYTES:
            with self._lock:
                if self._flusher is not None and not self._flusher.is_alive():
                    self._flusher = None  # done: its thread was not joined yet
            self.flush_soon()
