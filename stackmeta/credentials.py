"""Credentials in URLs (``https://user:PASS@host/simple``): used for requests, and nowhere else.

A URL is split where it enters stackmeta (:func:`without`, called by the command line's option
readers, the index client and the transport): the rest of the program, and everything it
prints or writes (records, locks, pylock files, snapshots, the cache, the metapackage), sees
the URL without them; the user name and password are kept here, by the URL's scheme, host and
port, for the requests made to that host (:func:`auth_for`) and for a child pip or twine
(:func:`with_auth`, :func:`for_host`). :func:`redact` is the last pass over every message:
anything that still holds credentials in a URL, or a password known here, is shown as pip's
``redact_auth_from_url`` shows it (``https://user:****@host``).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_lock = threading.Lock()
_known: dict[str, tuple[str, str]] = {}  # "scheme://host:port" -> (user, password), decoded

# scheme://userinfo@ in any text (userinfo: no slash, no whitespace, no '@' left of the last '@')
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
MASK = "****"


def _origin(scheme: str, host: str | None, port: int | None) -> str:
    scheme = scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(host or '').lower()}:{port}"


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        return _origin(parts.scheme, parts.hostname, parts.port)
    except ValueError:
        return None


def without(url: str) -> str:
    """*url* without its user name and password; those are kept for requests to its host."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        origin = _origin(parts.scheme, parts.hostname, parts.port)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:  # a bad port: not ours to judge here, but never kept with its secret
        return _USERINFO.sub(lambda m: m.group("scheme"), url)
    with _lock:
        _known[origin] = (user, password)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def auth_for(url: str) -> tuple[str, str] | None:
    """(user, password) kept for the host of *url* (same scheme, host and port), or None."""
    origin = _origin_of(url)
    if origin is None:
        return None
    with _lock:
        return _known.get(origin)


def known() -> tuple[tuple[str, tuple[str, str]], ...]:
    """The credentials kept, by origin: for a child process of stackmeta's own, which keeps
    them as this one does (:func:`remember`)."""
    with _lock:
        return tuple(_known.items())


def remember(entries: tuple[tuple[str, tuple[str, str]], ...]) -> None:
    """Keep *entries* (:func:`known` of the parent process)."""
    with _lock:
        _known.update(dict(entries))


def with_auth(url: str) -> str:
    """*url* with the credentials kept for its host put back: only for a child process that
    makes the requests itself (pip), given through its environment, never its command line."""
    auth = auth_for(url)
    if auth is None:
        return url
    parts = urlsplit(url)
    user, password = auth
    userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, parts.fragment))


def _secrets() -> list[str]:
    with _lock:
        found = {s for user, password in _known.values() for s in (password or user,) if len(s) >= 4}
    return sorted(found, key=len, reverse=True)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """*text* with credentials in URLs masked (``https://user:****@host``, a lone user name
    too: it may be a token) and every password known here replaced by ``****``."""
    if "@" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
        encoded = quote(secret, safe="")
        if encoded != secret and encoded in text:
            text = text.replace(encoded, MASK)
    return text
