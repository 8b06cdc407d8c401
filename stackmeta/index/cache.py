"""The on-disk cache: core metadata keyed by the sha256 of the file it describes, and project
pages kept for a short time.

The index reachable here strips HTTP cache headers, so HTTP caching rules cannot be used.
Metadata is content-addressed instead: the page gives each file's sha256, and the metadata of
a file with that sha256 never changes, so it is kept forever under
``<root>/metadata/<sha[:2]>/<sha>.<source>`` (source: pep658, range, download, pkg-info).
An entry is written only after what can be verified was verified (the caller's job: the
advertised core-metadata hash, the whole file's hash). Pages change (new uploads, yanks):
they are kept under ``<root>/pages/<index-key>/<name>`` for ``max_age`` seconds.
Every write is atomic, so a reader never sees a part.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import platformdirs

from stackmeta import atomic

SOURCES = ("pep658", "range", "download", "pkg-info")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("stackmeta"))


class Cache:
    """An on-disk cache under *root*; ``Cache(None)`` keeps nothing."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @property
    def enabled(self) -> bool:
        return self.root is not None

    # -- metadata, by the sha256 of the file it was read from ----------------------------

    def _md_path(self, sha256: str, source: str) -> Path | None:
        if self.root is None or not _SHA.match(sha256):
            return None
        return self.root / "metadata" / sha256[:2] / f"{sha256}.{source}"

    def get_metadata(self, sha256: str | None) -> tuple[bytes, str] | None:
        """(metadata bytes, source) for the file with this sha256, or None."""
        if sha256 is None:
            return None
        for source in SOURCES:
            path = self._md_path(sha256, source)
            if path is None:
                return None
            try:
                return path.read_bytes(), source
            except FileNotFoundError:
                continue
            except OSError:
                return None
        return None

    def put_metadata(self, sha256: str | None, data: bytes, source: str) -> None:
        if sha256 is None or source not in SOURCES:
            return
        path = self._md_path(sha256, source)
        if path is not None:
            atomic.write_bytes(path, data)

    # -- pages, for a short time ---------------------------------------------------------

    def _page_path(self, index_url: str, name: str) -> Path | None:
        if self.root is None:
            return None
        key = hashlib.sha256(index_url.rstrip("/").encode()).hexdigest()[:16]
        return self.root / "pages" / key / name

    def get_page(self, index_url: str, name: str, max_age: float) -> tuple[bytes, str, str] | None:
        """(body, content type, url) of a page fetched less than *max_age* seconds ago."""
        path = self._page_path(index_url, name)
        if path is None or max_age <= 0:
            return None
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        head, sep, body = raw.partition(b"\n")
        try:
            meta = json.loads(head)
            if not sep or time.time() - float(meta["time"]) > max_age or len(body) != meta["length"]:
                return None
            return body, str(meta["content_type"]), str(meta["url"])
        except (ValueError, KeyError, TypeError):
            return None

    def put_page(self, index_url: str, name: str, body: bytes, content_type: str, url: str) -> None:
        path = self._page_path(index_url, name)
        if path is None:
            return
        head = json.dumps({"time": time.time(), "content_type": content_type, "url": url,
                           "length": len(body)}).encode()
        atomic.write_bytes(path, head + b"\n" + body)
