"""What several commands share: reading their options the same way."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from stackmeta.errors import UsageError


def index_url(value: str) -> str:
    """An --index-url as given (http, https, file), or a local folder (a snapshot) as a file:// URL."""
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https", "file"):
        return value
    if not scheme or len(scheme) == 1:  # a path (C: on Windows)
        folder = Path(value).expanduser()
        if folder.is_dir():
            return folder.resolve().as_uri()
        raise UsageError(f"--index-url {value!r}: no such folder; give https://..., http://... or file://DIR")
    raise UsageError(f"--index-url {value!r}: {scheme}:// is not supported; give https://..., http://... "
                     "or file://DIR")
