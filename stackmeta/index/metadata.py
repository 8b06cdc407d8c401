"""Core metadata (METADATA, PKG-INFO, PEP 658 files) as the check and the resolver read it.

Parsed with ``packaging.metadata`` without validation, then the three fields that matter are
read one item at a time, so that the junk found in old real metadata (an unparsable
requirement, a bad Requires-Python) is reported and skipped instead of failing the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from packaging.markers import Marker
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta.errors import IndexAccessError

MetadataSource = Literal["pep658", "range", "download", "pkg-info", "pep517", "unknown"]
MAX_METADATA = 64 << 20  # bytes: real core metadata (long description included) stays below 10 MB


@dataclass(frozen=True, kw_only=True, slots=True)
class CoreMetadata:
    """What stackmeta reads of one file's core metadata."""

    name: NormalizedName
    version: Version | None
    metadata_version: str
    requires_dist: tuple[Requirement, ...]
    requires_python: SpecifierSet | None
    dynamic: tuple[str, ...] = ()
    provides_extra: tuple[str, ...] = ()
    junk: tuple[str, ...] = ()  # what could not be read, one note each
    # Requires-Dist (etc.) read past a header block broken by a line that is no header
    # (:data:`BROKEN_HEADERS`): not junk, pip reads the file, but not every pip alike
    broken_headers: bool = False

    @property
    def dependencies_known(self) -> bool:
        """Whether Requires-Dist is authoritative (always for a wheel's METADATA; for an
        sdist's PKG-INFO only from Metadata-Version 2.2 when not Dynamic)."""
        try:
            mv = Version(self.metadata_version)
        except InvalidVersion:
            return False
        return mv >= Version("2.2") and "requires-dist" not in self.dynamic


class _Bad(Exception):
    """A metadata file that is not core metadata (the message lacks the URL)."""


def parse_metadata(data: bytes, *, url: str, project: str) -> CoreMetadata:
    """Parse core metadata; a file that is not core metadata of *project* raises
    IndexAccessError naming the URL. Parsed with ``packaging.metadata.parse_email`` (what
    ``Metadata.from_email(..., validate=False)`` does), then read field by field."""
    if len(data) > MAX_METADATA:
        raise IndexAccessError(f"{url}: metadata of {project} is larger than {MAX_METADATA >> 20} MB "
                               "(no real metadata file is): refused")
    try:
        if not data.strip():
            raise _Bad(f"empty metadata file for {project}: the index serves a broken file")
        if b"\x00" in data[:4096]:
            raise _Bad(f"metadata of {project} is binary, not core metadata")
        return _parse(_wanted_headers(data), canonicalize_name(project))
    except _Bad as exc:
        raise IndexAccessError(f"{url}: {exc}") from None


@lru_cache(maxsize=4096)
def _requirement(text: str) -> Requirement:
    req = Requirement(text)
    if req.marker is not None and len(_MARKERS) < _MAX_MARKERS:
        req.marker = _MARKERS.setdefault(str(req.marker), req.marker)
    return req


# one Marker object per marker text: thousands of requirements share a few hundred markers
# (``python_version < "3.10"``), and a target remembers what each marker object evaluates to
# (stackmeta.target), so each is evaluated once per target, not once per requirement
_MARKERS: dict[str, Marker] = {}
_MAX_MARKERS = 1 << 14  # more are not shared (what an index serves is untrusted: no unbounded growth)


# the header block as the email parser reads it: header lines and their continuations, up to
# the first empty line or line that is no header; then, in it, the fields read here
_BLOCK = re.compile(rb"(?:(?:From |[\041-\071\073-\176]*:|[\t ])[^\n]*(?:\n|\Z))*")
def _fields(names: str, *, continued: bool = True) -> re.Pattern[bytes]:
    """The lines of the fields *names* (``a|b``), with their continuation lines when *continued*."""
    more = rb"(?:\n[\t ][^\n]*)*" if continued else b""
    return re.compile(rb"^(?:" + names.encode() + rb")[\t ]*:[^\n]*" + more, re.IGNORECASE | re.MULTILINE)


# the fields that constrain an install: read past a broken header block too
_CONSTRAINING = "requires-dist|requires-python|dynamic|provides-extra"
_WANTED = _fields("metadata-version|name|version|" + _CONSTRAINING)
_LATE = _fields(_CONSTRAINING)
# every core metadata field: the last one ends the headers that a broken line cut off
_FIELD = _fields("metadata-version|name|version|dynamic|platform|supported-platform|summary"
                 "|description|description-content-type|keywords|home-page|download-url|author"
                 "|author-email|maintainer|maintainer-email|license|license-expression"
                 "|license-file|classifier|requires-dist|requires-python|requires-external"
                 "|project-url|provides-extra|provides-dist|obsoletes-dist|requires|provides"
                 "|obsoletes", continued=False)
BROKEN_HEADERS = ("headers broken by a line that is no header (a multi-line field written "
                  "unindented): Requires-Dist read past it too, as pip running setup.py egg_info "
                  "reads it (pip building by PEP 517 stops at that line)")


def _header_bounds(data: bytes) -> tuple[int, int]:
    """Where the email parser ends the header block (at the first empty line or line that is
    no header), and where the headers end that a line that is no header cut off there: after
    the last core metadata field of the file (the same place when the block ended properly)."""
    block = _BLOCK.match(data)
    start = block.end() if block else 0
    if data[start:start + 1] in (b"", b"\n", b"\r"):
        return start, start
    end = start
    for field in _FIELD.finditer(data, start):
        end = field.end()
    return start, end


def _wanted_headers(data: bytes) -> bytes:
    """The header lines of the fields read here, with their continuation lines: what
    ``parse_email`` would read of them from the whole file, without the description (the
    body, often most of the file) and the classifiers, URLs, etc. The headers end where the
    email parser ends them: at the first empty line or line that is no header.

    Where a line that is neither ends them (setuptools writes a multi-line ``Author`` as it
    is: rep 0.6.6), pips read the file two ways: pip 23.0.1 (Python 3.9's own) runs
    ``setup.py egg_info`` and reads every Requires-Dist; pip 26.3 builds by PEP 517, stops at
    that line and sees none. A set must install under both, so the fields that constrain an
    install are read on to the last core metadata field of the file as well, marked by an
    ``X-Broken-Headers`` line."""
    head, cut = _header_bounds(data)
    wanted = _WANTED.findall(data, 0, head)
    late = _LATE.findall(data, head, cut)
    if any(line[:15].lower() == b"requires-python" for line in wanted):
        late = [line for line in late if line[:15].lower() != b"requires-python"]
    if late:
        wanted += [*late, b"X-Broken-Headers: yes"]
    return b"\n".join(wanted) + b"\n"


@lru_cache(maxsize=2048)
def _parse(head: bytes, project: NormalizedName) -> CoreMetadata:
    """The fields of *head* (:func:`_wanted_headers`: remembered by those few lines, not by
    the whole file, which a long description makes large)."""
    try:
        raw, unparsed = parse_email(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Bad(f"metadata of {project} does not parse ({exc})") from None
    junk: list[str] = []
    name = raw.get("name")
    mv = raw.get("metadata_version")
    if not name or not mv:
        raise _Bad(f"metadata of {project} lacks {'Name' if not name else 'Metadata-Version'}: "
                   "not a core metadata file (truncated or malformed)")
    if canonicalize_name(name) != project:
        raise _Bad(f"metadata names project {name!r}, expected {project}")
    version: Version | None = None
    try:
        version = Version(raw.get("version", ""))
    except InvalidVersion:
        junk.append(f"Version: {raw.get('version')!r}")
    reqs: list[Requirement] = []
    for item in raw.get("requires_dist", []):
        try:
            reqs.append(_requirement(item))
        except InvalidRequirement:
            junk.append(f"Requires-Dist: {item!r}")
    for key in unparsed:
        if key.lower() in ("requires-dist", "requires_dist"):
            for item in unparsed[key]:
                junk.append(f"Requires-Dist: {item!r}")
    rp: SpecifierSet | None = None
    if raw.get("requires_python"):
        try:
            rp = SpecifierSet(raw["requires_python"])
        except InvalidSpecifier:
            junk.append(f"Requires-Python: {raw['requires_python']!r}")
    return CoreMetadata(
        name=canonicalize_name(name),
        version=version,
        metadata_version=mv,
        requires_dist=tuple(reqs),
        requires_python=rp,
        dynamic=tuple(d.lower() for d in raw.get("dynamic", [])),
        provides_extra=tuple(raw.get("provides_extra", [])),
        junk=tuple(junk),
        broken_headers="x-broken-headers" in unparsed,
    )


def strip_description(data: bytes) -> bytes:
    """Core metadata without its long description (the message body and any ``Description``
    field with its continuation lines): what a resolver reads, at a fraction of the size.
    The headers end with one newline, body or not (so stripping is idempotent)."""
    data = data.replace(b"\r\n", b"\n")
    # up to the first empty line, or on to the last field that a broken header block cut off
    first = data.find(b"\n\n")
    head = data[:max(first if first >= 0 else len(data), _header_bounds(data)[1])]
    out: list[bytes] = []
    skipping = False
    for line in head.rstrip(b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"description:")
        if not skipping:
            out.append(line)
    return b"\n".join(out) + b"\n"
