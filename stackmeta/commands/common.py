"""What several commands share: reading their options the same way."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from stackmeta import credentials
from stackmeta.errors import UsageError


def index_url(value: str) -> str:
    """An --index-url as given (http, https, file), or a local folder (a snapshot) as a file:// URL.
    A user name and password in it are kept for the requests to its host only (see
    :mod:`stackmeta.credentials`): what comes back, and what the command shows and saves,
    has none."""
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https", "file"):
        return credentials.without(value)
    shown = credentials.redact(value)
    if not scheme or len(scheme) == 1:  # a path (C: on Windows)
        folder = Path(value).expanduser()
        if folder.is_dir():
            return folder.resolve().as_uri()
        raise UsageError(f"--index-url {shown!r}: no such folder; give https://..., http://... or file://DIR")
    raise UsageError(f"--index-url {shown!r}: {scheme}:// is not supported; give https://..., http://... "
                     "or file://DIR")


def repository_url(value: str) -> str:
    """A --repository-url (an upload URL) without its user name and password; those are kept
    for the requests to its host and handed to twine through its environment."""
    scheme = urlsplit(value).scheme.lower()
    if scheme not in ("http", "https"):
        raise UsageError(f"--repository-url {credentials.redact(value)!r}: give an https:// (or http://) "
                         "upload URL, e.g. https://upload.pypi.org/legacy/")
    return credentials.without(value)
