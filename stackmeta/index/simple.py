"""Parsing of simple-repository project pages (PEP 503 HTML, PEP 691 JSON). No I/O here.

:func:`parse_project_page` turns ``(body, content_type, url)`` into a :class:`ProjectPage`;
a page that is not what the standards describe raises :class:`IndexAccessError` naming the URL.
:func:`parse_index_page` lists the projects of a root page. :func:`render_project_html` /
:func:`render_project_json` write pages back (for snapshots).
"""

from __future__ import annotations

import bisect
import html
import json
import posixpath
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from itertools import accumulate, pairwise
from typing import Any, Literal, NamedTuple, Protocol, overload
from urllib.parse import urldefrag, urljoin, urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from stackmeta.errors import IndexAccessError

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.1"

FileKind = Literal["wheel", "sdist", "other"]

# what pip accepts as an sdist, longest first
SDIST_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.lz", ".tar.lzma", ".tar", ".tbz", ".tgz",
                  ".txz", ".tlz", ".zip")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectFile:
    """One file of a project page."""

    filename: str
    url: str  # absolute, without the hash fragment
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex digest), sorted
    requires_python: SpecifierSet | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    # PEP 658/714: None = the page says nothing; False = says there is none; True = there is one
    core_metadata: bool | None = None
    core_metadata_sha256: str | None = None
    upload_time: str | None = None

    @property
    def sha256(self) -> str | None:
        return dict(self.hashes).get("sha256")

    @property
    def kind(self) -> FileKind:
        return file_kind(self.filename)

    @property
    def metadata_url(self) -> str:
        return self.url + ".metadata"

    def version(self, project: str) -> Version | None:
        """The version this file is of, or None when its name does not parse."""
        return file_version(self.filename, project)


class Joined(Sequence[str]):
    """Strings kept as one: their concatenation and where each starts (a page's thousands of
    file names, or its packed files, without an object each: ~50 bytes less a string)."""

    __slots__ = ("_starts", "_text")

    def __init__(self, items: Iterable[str]) -> None:
        items = list(items)
        self._text = "".join(items)
        # where each starts: 4 bytes each (a page's text is far below 4 GiB), else 8
        self._starts = array("I" if len(self._text) < 1 << 32 else "Q",
                             accumulate(map(len, items), initial=0))

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._text[self._starts[i]:self._starts[i + 1]]

    def __iter__(self) -> Iterator[str]:
        text = self._text
        return (text[a:b] for a, b in pairwise(self._starts))

    def holding(self, needle: str) -> list[int]:
        """The positions of the strings that hold *needle*, in order (found in the whole text)."""
        text, starts, found = self._text, self._starts, []
        at = text.find(needle)
        while at >= 0:
            i = bisect.bisect_right(starts, at) - 1
            end = starts[i + 1]
            if at + len(needle) <= end:
                found.append(i)
                at = text.find(needle, end)  # this string is in: on to the next one
            else:
                at = text.find(needle, at + 1)
        return found


class Columns(NamedTuple):
    """The files of a parsed page, by position, as the page keeps them: what every file's
    usability needs (name, Requires-Python, yanked) in plain columns, the rest (URL, hashes,
    size, upload time...) only as *make* builds a file's object from it."""

    names: Sequence[str]
    requires_python: Sequence[SpecifierSet | None]
    yanked: Sequence[object]  # truthy when the file is yanked
    make: Callable[[int], ProjectFile]


class FileInfo(Protocol):
    """What choosing among a version's files needs of each: a :class:`ProjectFile`, or a
    :class:`FileRow` of a page's columns."""

    @property
    def filename(self) -> str: ...
    @property
    def requires_python(self) -> SpecifierSet | None: ...
    @property
    def yanked(self) -> bool: ...
    @property
    def kind(self) -> FileKind: ...


class FileRow(NamedTuple):
    """What a page's columns say of one file (:meth:`ProjectPage.rows_of`): enough to choose
    among a version's files (a wheel's tags, Requires-Python, yanked) without building their
    objects; :meth:`ProjectPage.file_at` builds the one chosen."""

    filename: str
    requires_python: SpecifierSet | None
    yanked: bool
    position: int  # on the page

    @property
    def kind(self) -> FileKind:
        return file_kind(self.filename)


class FileGroups(NamedTuple):
    """A page's files grouped (:meth:`ProjectPage.grouped`): each group's (key, Requires-Python,
    yanked); the versions (ascending) and, in the same order, the groups of each one's files and
    the positions of its files on the page (columns, not a tuple a version: a release's pages
    list 50,000 versions); each file's group (by position)."""

    groups: tuple[tuple[object, SpecifierSet | None, bool], ...]
    versions: tuple[Version, ...]
    group_ids: tuple[Sequence[int], ...]  # ascending; bytes when the groups are fewer than 256
    positions: tuple[Sequence[int], ...]
    of_file: Sequence[int]
    checked: bytearray  # what its user found out of each file (by position; 0: not yet), kept with the page


class ProjectPage:
    """A project's page: its files (as the index lists them).

    Read-only. ``ProjectPage(name=, url=, files=)`` holds ready files; a parsed page builds a
    file's object only when asked for (a page lists thousands of files, a check needs a few):
    :meth:`files_of` builds one version's files, :attr:`files` and :meth:`by_version` all;
    :meth:`grouped` builds none.
    """

    __slots__ = ("_at", "_built", "_by_text", "_groups", "_index", "_make", "_names", "_of", "_rps",
                 "_yanked", "api_version", "name", "notes", "url")

    def __init__(self, *, name: NormalizedName, url: str, files: Iterable[ProjectFile] = (),
                 api_version: str | None = None, lazy: Columns | None = None,
                 notes: tuple[str, ...] = ()) -> None:
        self.name = name
        self.url = url
        self.api_version = api_version
        self.notes = notes  # what the parser left out, and why (files of another project)
        if lazy is None:
            built = list(files)
            self._names: Sequence[str] = [f.filename for f in built]
            self._rps: Sequence[SpecifierSet | None] = [f.requires_python for f in built]
            self._yanked: Sequence[object] = [f.yanked for f in built]
            self._built: dict[int, ProjectFile] = dict(enumerate(built))
            self._make: Callable[[int], ProjectFile] | None = None
        else:
            self._names, self._rps, self._yanked, self._make = lazy
            self._built = {}  # the files built so far, by position (a check builds a few)
        # positions as arrays of 4-byte numbers (a page has thousands of files: a list of ints
        # is 36 bytes a position)
        self._index: dict[Version, array[int]] | None = None
        self._by_text: dict[str, array[int]] | None = None  # let go once _index is made
        self._of: dict[Version, tuple[ProjectFile, ...]] = {}  # files_of's answers
        self._at: dict[Version, Sequence[int]] = {}  # the positions of each version's files
        self._groups: dict[Callable[[str], object], FileGroups] = {}  # grouped()'s answers

    def __repr__(self) -> str:
        return f"ProjectPage(name={self.name!r}, url={self.url!r}, {len(self._names)} files)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProjectPage):
            return NotImplemented
        return (self.name, self.url, self.files) == (other.name, other.url, other.files)

    __hash__ = None  # type: ignore[assignment]

    def _file(self, i: int) -> ProjectFile:
        f = self._built.get(i)
        if f is None:
            if self._make is None or not 0 <= i < len(self._names):
                raise IndexError(i)
            f = self._built[i] = self._make(i)
        return f

    @property
    def files(self) -> tuple[ProjectFile, ...]:
        return tuple(self._file(i) for i in range(len(self._names)))

    @property
    def filenames(self) -> Sequence[str]:
        return self._names

    def _texts(self) -> dict[str, array[int]]:
        """The version text of each file name (not yet parsed) -> the files' indexes."""
        if self._by_text is None:
            by_text: dict[str, array[int]] = {}  # a page repeats each version string many times
            same: dict[str, bool] = {}  # ... and its project's name in a few spellings
            project = self.name
            for i, filename in enumerate(self._names):
                if filename.endswith(".whl"):  # the common case, inline: name-version-tags.whl
                    parts = filename[:-4].split("-")
                    if len(parts) not in (5, 6):
                        continue
                    hit = same.get(parts[0])
                    if hit is None:
                        hit = same[parts[0]] = canonicalize_name(parts[0]) == project
                    text: str | None = parts[1] if hit else None
                else:
                    text = _version_text(filename, project, same)
                if text is not None:
                    if text in by_text:
                        by_text[text].append(i)
                    else:
                        by_text[text] = array("I", (i,))
            self._by_text = by_text
        return self._by_text

    def _versions(self) -> dict[Version, array[int]]:
        if self._index is None:
            index: dict[Version, array[int]] = {}
            for text, idx in self._texts().items():
                v = _version(text)
                if v is not None:
                    if v in index:  # another spelling of a version (1.0 and 1.0.0): in order
                        index[v] = array("I", sorted([*index[v], *idx]))
                    else:
                        index[v] = idx  # in order: made by going through the page
            self._index = index
            self._by_text = None  # _find reads the index from now on
        return self._index

    def versions(self) -> list[Version]:
        """The versions that have files, in page order of first appearance."""
        return list(self._versions())

    def grouped(self, key: Callable[[str], object]) -> FileGroups:
        """The page's files in groups of the same ``key(filename)``, Requires-Python and yanked
        flag, and the groups of each version's files: what a target's installability of a
        version depends on, when *key* keeps what of a name it depends on (a wheel's tags, or
        "an sdist"). A page lists thousands of files in a few dozen groups, so each cell asks
        each group once. Made once per page and *key*."""
        found = self._groups.get(key)
        if found is None:
            ids: dict[tuple[object, SpecifierSet | None, bool], int] = {}
            names, rps, yanks = self._names, self._rps, self._yanked
            of_file = array("I")
            for i, filename in enumerate(names):
                group = (key(filename), rps[i], bool(yanks[i]))
                at = ids.get(group)
                if at is None:
                    at = ids[group] = len(ids)
                of_file.append(at)
            ordered = sorted(self._versions().items())
            few = len(ids) < 256
            group_ids = tuple((bytes if few else tuple)(sorted({of_file[i] for i in idx}))
                              for _, idx in ordered)
            found = self._groups[key] = FileGroups(
                groups=tuple(ids), versions=tuple(v for v, _ in ordered), group_ids=group_ids,
                positions=tuple(idx for _, idx in ordered), of_file=of_file, checked=bytearray(len(names)))
        return found

    def by_version(self) -> dict[Version, tuple[ProjectFile, ...]]:
        """The files of each version (files whose name gives no version are left out)."""
        return {v: tuple(self._file(i) for i in idx) for v, idx in self._versions().items()}

    def files_of(self, version: Version) -> tuple[ProjectFile, ...]:
        hit = self._of.get(version)
        if hit is None:
            hit = self._of[version] = tuple(self._file(i) for i in self._positions_of(version))
        return hit

    def rows_of(self, version: Version) -> tuple[FileRow, ...]:
        """:meth:`files_of` as rows of the page's columns, in the same order: no file object is
        built (a search judges thousands of versions, each of a dozen files or more)."""
        names, rps, yanks = self._names, self._rps, self._yanked
        return tuple(FileRow(names[i], rps[i], bool(yanks[i]), i) for i in self._positions_of(version))

    def file_at(self, position: int) -> ProjectFile:
        """The file at *position* on the page (a :class:`FileRow`'s), built once."""
        return self._file(position)

    def _positions_of(self, version: Version) -> Sequence[int]:
        hit = self._at.get(version)
        if hit is None:
            hit = self._at[version] = self._find(version)
        return hit

    def _find(self, version: Version) -> Sequence[int]:
        if self._index is not None:
            return self._index.get(version, ())
        # one version's files (a pin's), without parsing every version of the page: only the
        # texts that can spell an equal version (the same non-zero numbers in the same order)
        # are parsed and compared
        wanted = _numbers(str(version))
        if self._by_text is None and wanted:
            # nor reading every file name: a name holding such a text holds each of these
            # numbers' digits (a leading zero only adds to them), the longest first
            needle = max((str(n) for n in wanted), key=len)
            same: dict[str, bool] = {}
            found = []
            names = self._names
            hits = (names.holding(needle) if isinstance(names, Joined)
                    else [i for i, name in enumerate(names) if needle in name])
            for i in hits:
                text = _version_text(self._names[i], self.name, same)
                if text is not None and _numbers(text) == wanted and _version(text) == version:
                    found.append(i)
            return tuple(found)
        idx: list[int] = []
        for text, ids in self._texts().items():
            if _numbers(text) == wanted and _version(text) == version:
                idx.extend(ids)
        idx.sort()
        return tuple(idx)

    def replace_files(self, files: Iterable[ProjectFile]) -> ProjectPage:
        return ProjectPage(name=self.name, url=self.url, files=files, api_version=self.api_version,
                           notes=self.notes)


_DIGITS = re.compile(r"[0-9]+")


@lru_cache(maxsize=1 << 16)
def _numbers(text: str) -> tuple[int, ...]:
    """The non-zero numbers of a version text, in order. Two texts of equal PEP 440 versions
    have the same: each number is one component (epoch, release, pre, post, dev, a local
    segment) compared by its value, components in a fixed order, and an omitted one (epoch,
    trailing release zeros, an implicit pre/post/dev number) counts as 0."""
    return tuple(n for n in map(int, _DIGITS.findall(text)) if n)


def file_kind(filename: str) -> FileKind:
    if filename.endswith(".whl"):
        return "wheel"
    if filename.lower().endswith(SDIST_SUFFIXES):
        return "sdist"
    return "other"


@lru_cache(maxsize=1 << 17)
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _same_name(name: str, project: NormalizedName, memo: dict[str, bool] | None = None) -> bool:
    if memo is not None:
        hit = memo.get(name)
        if hit is None:
            hit = memo[name] = canonicalize_name(name) == project
        return hit
    return canonicalize_name(name) == project


def _version_text(filename: str, project: NormalizedName, memo: dict[str, bool] | None = None) -> str | None:
    """The version part of a wheel or sdist file name of *project* (not yet parsed)."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) in (5, 6) and _same_name(parts[0], project, memo):
            return parts[1]
        return None
    lower = filename.lower()
    if not lower.endswith(SDIST_SUFFIXES):
        return None
    for suffix in (".tar.gz", ".zip"):  # as packaging.utils.parse_sdist_filename reads them
        if lower.endswith(suffix):
            name, sep, text = filename[: -len(suffix)].rpartition("-")
            if sep and _same_name(name, project, memo) and _version(text) is not None:
                return text
    return _loose_sdist_version(filename, project)


def file_version(filename: str, project: str) -> Version | None:
    """The version of a wheel or sdist of *project* named *filename* (None when unknown)."""
    text = _version_text(filename, canonicalize_name(project))
    return None if text is None else _version(text)


def _loose_sdist_version(filename: str, project: str) -> str | None:
    lower = filename.lower()
    stem = next((filename[: -len(s)] for s in SDIST_SUFFIXES if lower.endswith(s)), filename)
    wanted = canonicalize_name(project)
    # the name part may itself contain dashes: try every split, name first
    parts = stem.split("-")
    for i in range(1, len(parts)):
        if canonicalize_name("-".join(parts[:i])) == wanted:
            return "-".join(parts[i:])
    return None


# -- parsing ---------------------------------------------------------------------------


def _other_project(filename: str, project: NormalizedName, memo: dict[str, bool]) -> NormalizedName | None:
    """The project a wheel or sdist file name names when it is not *project* (None when it
    is *project*'s or its name does not parse). A wheel's name part is compared first (the
    common case, cheap); only a name that is not the project's is parsed by ``packaging``."""
    if filename.endswith(".whl"):
        if _same_name(filename.split("-", 1)[0], project, memo):
            return None
        try:
            other = parse_wheel_filename(filename)[0]
        except InvalidWheelFilename:
            return None
    elif filename.lower().endswith((".tar.gz", ".zip")):
        if _version_text(filename, project, memo) is not None:
            return None
        try:
            other = parse_sdist_filename(filename)[0]
        except InvalidSdistFilename:
            return None
    else:
        return None
    return other if other != project else None


def _foreign_note(url: str, project: str, foreign: list[tuple[str, str]]) -> tuple[str, ...]:
    if not foreign:
        return ()
    shown = ", ".join(f"{f} ({other})" for f, other in foreign[:3])
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    return (f"{url}: {len(foreign)} file{'s' * (len(foreign) > 1)} of another project skipped: "
            f"{shown}{more}",)


def _bad(url: str, what: str) -> IndexAccessError:
    return IndexAccessError(f"{url}: malformed project page ({what}): check that it is a PEP 503/691 index")


@lru_cache(maxsize=4096)
def _specifier(text: str | None) -> SpecifierSet | None:
    if text is None or not text.strip():
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        # pip ignores a Requires-Python it cannot parse; so do we (the file stays usable)
        return None


def _joiner(page_url: str) -> Callable[[str], str]:
    """A fast ``urljoin(page_url, href)`` without the fragment, for the hrefs of one page."""
    parts = urlsplit(page_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    base_dir = parts.path.rsplit("/", 1)[0].split("/")  # ["", "simple", "six"]
    up2 = origin + "/".join(base_dir[:-2]) + "/" if len(base_dir) > 2 else origin + "/"

    def join(href: str) -> str:
        href = href.split("#", 1)[0]
        if "://" in href[:12] or href.startswith("file:"):
            return href
        if href.startswith("//") or "?" in href or "%2e" in href.lower() or "\\" in href:
            return urldefrag(urljoin(page_url, href))[0]
        if href.startswith("/"):
            return origin + posixpath.normpath(href) + ("/" if href.endswith("/") else "")
        if href.startswith("../../") and "/.." not in href[5:] and "/./" not in href:
            return up2 + href[6:]
        segs = list(base_dir)
        for seg in href.split("/"):
            if seg == "..":
                if len(segs) > 1:
                    segs.pop()
            elif seg != ".":
                segs.append(seg)
        return origin + "/".join(segs)

    return join


def _metadata_flag(value: Any) -> tuple[bool | None, str | None]:
    """PEP 658/714 value (True, False, {"sha256": ...}, "true", "sha256=...")."""
    if value is None:
        return None, None
    if value is False or value == "false":
        return False, None
    if isinstance(value, Mapping):
        sha = value.get("sha256")
        return True, sha.lower() if isinstance(sha, str) else None
    if isinstance(value, str) and "=" in value:
        algo, _, digest = value.partition("=")
        return True, digest.lower() if algo.strip().lower() == "sha256" else None
    return True, None


def parse_project_page(body: bytes, content_type: str, url: str, name: str | None = None) -> ProjectPage:
    """Parse a project page; *content_type* picks JSON (PEP 691) or HTML (PEP 503)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
        return _parse_json(body, url, name)
    if ctype in ("text/html", HTML_TYPE, "application/xhtml+xml", ""):
        return _parse_html(body, url, name)
    raise _bad(url, f"unexpected content type {content_type!r}")


class _Files:
    """A JSON page's files as they are read, entry by entry (:func:`_parse_json`): the columns a
    :class:`ProjectPage` keeps, each entry packed (:func:`_pack`) as soon as it is read."""

    def __init__(self, project: NormalizedName) -> None:
        self.project = project
        self.names: list[str] = []
        self.rps: list[SpecifierSet | None] = []
        self.yanks: list[object] = []
        self.packs: list[str] = []  # the rest of each file in one string (_pack); "": in odd
        self.odd: dict[int, dict[str, Any]] = {}  # the entries _pack cannot hold, as they came
        self.foreign: list[tuple[str, str]] = []
        self._specs: dict[str | None, SpecifierSet | None] = {}
        self._memo: dict[str, bool] = {}

    def add(self, entry: object) -> bool:
        """Take one entry of the page's "files"; False when it is no file entry (no filename/url)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) \
                or not isinstance(entry.get("url"), str):
            return False
        filename: str = entry["filename"]
        head = filename.partition("-")[0]  # _other_project's cheap first test, inline (per file)
        memo, project = self._memo, self.project
        same = memo.get(head)
        if same is None:
            same = memo[head] = canonicalize_name(head) == project
        if not same:
            other = _other_project(filename, project, memo)
            if other is not None:
                self.foreign.append((filename, other))
                return True
        rp = entry.get("requires-python")
        rp = rp if isinstance(rp, str) else None
        specs = self._specs
        if rp in specs:  # a page repeats a few Requires-Python texts
            self.rps.append(specs[rp])
        else:
            self.rps.append(specs.setdefault(rp, _specifier(rp)))
        self.yanks.append(entry.get("yanked", False))
        rec = _pack(entry, filename)
        if rec is None:
            self.odd[len(self.names)] = entry
        self.packs.append(rec or "")
        self.names.append(filename)
        return True


_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace (as the json module skips it)
_DECODER = json.JSONDecoder()


def _skip(text: str, at: int) -> int:
    """Where the JSON whitespace from *at* on ends."""
    found = _SPACE.match(text, at)
    return at if found is None else found.end()


def _opened(text: str, at: int, close: str) -> tuple[int, bool]:
    """Just inside an array or object ending with *close*: where its first item starts, and
    whether it is empty instead (then: where it ends)."""
    at = _skip(text, at)
    return (at + 1, True) if text[at:at + 1] == close else (at, False)


def _next_item(text: str, at: int, close: str) -> tuple[int, bool] | None:
    """After an item of an array or object ending with *close*: where the next item starts, or
    (the last item) where it ends and True; None when neither follows (a trailing comma too)."""
    at = _skip(text, at)
    if text[at:at + 1] == close:
        return at + 1, True
    if text[at:at + 1] != ",":
        return None
    at = _skip(text, at + 1)
    return None if text[at:at + 1] == close else (at, False)


def _streamed(body: bytes, name: str) -> dict[str, Any] | None:
    """``json.loads(body)``, its top-level "files" list read one entry at a time into
    :class:`_Files` (for project *name*): a big page's entries (pydantic-core's 15,000, 7 MB
    of JSON) never exist all at once as dicts (~1.4 kB each), which left the process that much
    larger for good. None when the body is not plainly a well-formed JSON object of that shape,
    or an entry is no file entry: then it is read whole (:func:`json.loads`), which gives the
    same page or the same error."""
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        project = canonicalize_name(name)
        data: dict[str, Any] = {}
        at = _skip(text, 0)
        if text[at:at + 1] != "{":
            return None
        at, done = _opened(text, at + 1, "}")
        while not done:
            if text[at:at + 1] != '"':
                return None
            key, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if text[at:at + 1] != ":":
                return None
            at = _skip(text, at + 1)
            if key == "files" and text[at:at + 1] == "[":
                files = data[key] = _Files(project)  # a key given twice: the last counts (as json.loads)
                at, end = _opened(text, at + 1, "]")
                while not end:
                    entry, at = _DECODER.raw_decode(text, at)
                    if not files.add(entry) or (step := _next_item(text, at, "]")) is None:
                        return None
                    at, end = step
            else:
                data[key], at = _DECODER.raw_decode(text, at)
            if (step := _next_item(text, at, "}")) is None:
                return None
            at, done = step
        return data if _skip(text, at) == len(text) else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _parse_json(body: bytes, url: str, name: str | None) -> ProjectPage:
    data = _streamed(body, name) if name is not None else None
    if data is None:  # the whole JSON at once (no name to judge files by, or not plainly well-formed)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad(url, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), (list, _Files)):
        raise _bad(url, "no 'files' list")
    meta = data.get("meta") or {}
    api = meta.get("api-version") if isinstance(meta, dict) else None
    if isinstance(api, str) and not api.startswith("1."):
        raise _bad(url, f"unsupported api-version {api}")
    page_name = data.get("name") or name or ""
    if not isinstance(page_name, str):
        raise _bad(url, "'name' is not a string")
    project = canonicalize_name(page_name)
    if name is not None and project != canonicalize_name(name):
        raise IndexAccessError(f"{url}: the page is project {page_name!r}'s, not {name}'s: "
                               "the index serves another project's page; refused")
    files = data["files"]
    del data  # the JSON is not kept: a page of thousands of files is ~1 kB a file as dicts
    if not isinstance(files, _Files):
        entries, files = files, _Files(project)
        for entry in entries:
            if not files.add(entry):
                raise _bad(url, f"file entry without filename/url: {str(entry)[:80]}")
        del entries
    names, rps, yanks, packs, odd, foreign = (files.names, files.rps, files.yanks, files.packs, files.odd,
                                              files.foreign)
    packed, filenames = Joined(packs), Joined(names)
    del packs, names, files
    join = _joiner(url)

    def make(i: int) -> ProjectFile:
        if i in odd:
            return _json_file(odd[i], join)
        link, sha, size, upload, md = _unpack(packed[i])
        filename, yanked = filenames[i], yanks[i]
        return ProjectFile(
            filename=filename,
            url=join(link + filename if link.endswith("/") else link),
            hashes=(("sha256", sha.lower()),) if sha else (),
            requires_python=rps[i],
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
            size=int(size) if size else None,
            core_metadata=md[0] == "1" if md else None,
            core_metadata_sha256=md[1:] or None,
            upload_time=upload or None,
        )

    return ProjectPage(name=project, url=url, lazy=Columns(filenames, rps, yanks, make),
                       api_version=api if isinstance(api, str) else None,
                       notes=_foreign_note(url, project, foreign))


def _pack(entry: dict[str, Any], filename: str) -> str | None:
    """What a PEP 691 file entry says besides its name, Requires-Python and yanked, in one
    string: "URL\\nSHA256\\nSIZE\\nUPLOAD-TIME\\nCORE-METADATA" (an empty field: none; the URL
    without the file name when it ends with "/" and the name; the core metadata "", "0", "1" or
    "1" and its sha256), as the page's :class:`Columns` keep it (a few hundred bytes, not the
    entry's kilobyte of dicts). None for an entry this cannot say exactly (a separator in a
    value, hashes other than one sha256, an empty upload time...): it is kept as it came."""
    link: str = entry["url"]
    hashes = entry.get("hashes")
    if hashes and isinstance(hashes, dict):
        sha = hashes.get("sha256")
        if len(hashes) != 1 or type(sha) is not str or not sha or "\n" in sha:
            return None
    else:
        sha = ""
    size = entry.get("size")
    if type(size) is int:
        size_text = str(size)
    elif isinstance(size, int):  # a bool: kept as the entry says
        return None
    else:
        size_text = ""
    upload = entry.get("upload-time")
    if not isinstance(upload, str):
        upload = ""
    elif not upload or "\n" in upload:
        return None
    flag = entry.get("core-metadata")
    if flag is None:
        flag = entry.get("dist-info-metadata")
    has_md, md_sha = (None, None) if flag is None else _metadata_flag(flag)
    if has_md is None:
        md = ""
    elif md_sha is None:
        md = "1" if has_md else "0"
    elif md_sha and "\n" not in md_sha:
        md = "1" + md_sha
    else:
        return None
    if "\n" in link or link.endswith("/"):
        return None
    if link.endswith(filename) and link[-len(filename) - 1:-len(filename)] == "/":
        link = link[:-len(filename)]
    return _compact(link, sha, size_text, upload, md)


# pypi.org's file URLs: this, then the file's blake2b-256 in hex as "xx/yy/<60 digits>/", then its name
_FILES = "https://files.pythonhosted.org/packages/"


def _digest(text: str) -> str | None:
    """*text*, 64 lowercase hex digits (a sha256 or blake2b-256), as 32 characters, one per
    byte (latin-1: a str of them takes a byte each); None when it is not exactly that."""
    if len(text) != 64:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw.decode("latin-1") if raw.hex() == text else None


def _compact(link: str, sha: str, size: str, upload: str, md: str) -> str:
    """A file's packed fields (:func:`_pack`) in half the room, exactly as :func:`_unpack` gives
    them back: the hex digests (the sha256, the metadata's, and the blake2b in a pypi.org URL)
    as bytes; a flag character says which. A page of pypi.org keeps ~140 bytes a file instead
    of ~270 (the pages of a release's stack, 200,000 files and more: 50 MB before)."""
    bits, raw = 0, ""
    rest = link[len(_FILES):] if link.startswith(_FILES) else ""
    if len(rest) == 67 and rest[2] == "/" and rest[5] == "/" and rest[66] == "/":
        path = _digest(rest[0:2] + rest[3:5] + rest[6:66])
        if path is not None:
            bits, raw, link = bits | 1, raw + path, ""
    digest = _digest(sha)
    if digest is not None:
        bits, raw, sha = bits | 2, raw + digest, ""
    digest = _digest(md[1:]) if md[:1] == "1" else None
    if digest is not None:
        bits, raw, md = bits | 4, raw + digest, ""
    return f"{chr(48 + bits)}{raw}{link}\n{sha}\n{size}\n{upload}\n{md}"


def _unpack(record: str) -> tuple[str, str, str, str, str]:
    """The fields :func:`_compact` packed: link, sha256, size, upload time, core metadata."""
    bits, at = ord(record[0]) - 48, 1
    link, sha, size, upload, md = record[1 + 32 * bin(bits).count("1"):].split("\n")
    if bits & 1:
        h = record[at:at + 32].encode("latin-1").hex()
        link, at = f"{_FILES}{h[:2]}/{h[2:4]}/{h[4:]}/", at + 32
    if bits & 2:
        sha, at = record[at:at + 32].encode("latin-1").hex(), at + 32
    if bits & 4:
        md = "1" + record[at:at + 32].encode("latin-1").hex()
    return link, sha, size, upload, md


def _json_file(entry: dict[str, Any], join: Callable[[str], str]) -> ProjectFile:
    """A PEP 691 file entry as a file object (for the entries :func:`_pack` cannot hold)."""
    hashes = entry.get("hashes") or {}
    if not isinstance(hashes, dict):
        hashes = {}  # not what PEP 691 says: the file simply has no hash we can use
    yanked = entry.get("yanked", False)
    flag = entry.get("core-metadata", entry.get("dist-info-metadata"))
    has_md, md_sha = _metadata_flag(flag)
    size = entry.get("size")
    rp = entry.get("requires-python")
    upload = entry.get("upload-time")
    return ProjectFile(
        filename=entry["filename"],
        url=join(entry["url"]),
        hashes=tuple(sorted((str(k).lower(), str(v).lower()) for k, v in hashes.items())),
        requires_python=_specifier(rp) if isinstance(rp, str) else None,
        yanked=bool(yanked),
        yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
        size=size if isinstance(size, int) else None,
        core_metadata=has_md,
        core_metadata_sha256=md_sha,
        upload_time=upload if isinstance(upload, str) else None,
    )


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], list[str]]] = []
        self.base: str | None = None
        self.meta_api: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._text = []
            self.anchors.append((dict(attrs), self._text))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "meta":
            d = dict(attrs)
            if d.get("name") == "pypi:repository-version":
                self.meta_api = d.get("content")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse_html(body: bytes, url: str, name: str | None) -> ProjectPage:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(url, f"not UTF-8: {exc}") from None
    if "<" not in text or ("<a" not in text.lower() and "<html" not in text.lower()
                           and "<!doctype" not in text.lower()):
        raise _bad(url, "not an HTML page")
    parser = _AnchorParser()
    try:
        parser.feed(text)
        parser.close()
    except AssertionError as exc:  # HTMLParser's way of failing on broken markup
        raise _bad(url, f"broken HTML: {exc}") from None
    if parser.meta_api and not parser.meta_api.startswith("1."):
        raise _bad(url, f"unsupported repository-version {parser.meta_api}")
    base = urljoin(url, parser.base) if parser.base else url
    project = canonicalize_name(name or url.rstrip("/").rsplit("/", 1)[-1])
    files = []
    foreign: list[tuple[str, str]] = []
    memo: dict[str, bool] = {}
    for attrs, text_parts in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        full, fragment = urldefrag(urljoin(base, href))
        filename = "".join(text_parts).strip() or full.rsplit("/", 1)[-1]
        other = _other_project(filename, project, memo)
        if other is not None:
            foreign.append((filename, other))
            continue
        hashes: tuple[tuple[str, str], ...] = ()
        if fragment and "=" in fragment:
            algo, _, digest = fragment.partition("=")
            hashes = ((algo.lower(), digest.lower()),)
        yanked_attr = attrs.get("data-yanked")
        flag = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        has_md, md_sha = _metadata_flag(flag)
        if ("data-core-metadata" in attrs or "data-dist-info-metadata" in attrs) and flag is None:
            has_md = True  # an attribute without a value means "true"
        files.append(ProjectFile(
            filename=filename,
            url=full,
            hashes=hashes,
            requires_python=_specifier(attrs.get("data-requires-python")),
            yanked="data-yanked" in attrs,
            yanked_reason=yanked_attr or None,
            core_metadata=has_md,
            core_metadata_sha256=md_sha,
        ))
    return ProjectPage(name=project, url=url, files=files, api_version=parser.meta_api,
                       notes=_foreign_note(url, project, foreign))


def parse_index_page(body: bytes, content_type: str, url: str) -> list[NormalizedName]:
    """The project names of a root page (JSON or HTML)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype.endswith("json"):
        try:
            data = json.loads(body)
            return [canonicalize_name(p["name"]) for p in data["projects"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise _bad(url, f"root page: {exc}") from None
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    return [canonicalize_name("".join(t).strip()) for _, t in parser.anchors if "".join(t).strip()]


# -- rendering (snapshots) -------------------------------------------------------------



def _href(url: str, file: ProjectFile) -> str:
    sha = file.sha256
    return f"{url}#sha256={sha}" if sha else url


def render_project_html(page: ProjectPage, urls: Mapping[str, str] | None = None,
                        metadata: Mapping[str, str] | None = None) -> str:
    """PEP 503 HTML (repository-version 1.1) for *page*; *urls* overrides file URLs by
    filename, *metadata* maps a filename to the sha256 of its served ``.metadata`` file."""
    urls = urls or {}
    metadata = metadata or {}
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        '    <meta name="pypi:repository-version" content="1.1">',
        f"    <title>Links for {html.escape(page.name)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {html.escape(page.name)}</h1>",
    ]
    for f in page.files:
        attrs = [f'href="{html.escape(_href(urls.get(f.filename, f.url), f))}"']
        if f.requires_python is not None:
            attrs.append(f'data-requires-python="{html.escape(str(f.requires_python))}"')
        if f.yanked:
            attrs.append(f'data-yanked="{html.escape(f.yanked_reason or "")}"')
        if f.filename in metadata:
            value = f"sha256={metadata[f.filename]}"
            attrs.append(f'data-dist-info-metadata="{value}" data-core-metadata="{value}"')
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def render_project_json(page: ProjectPage, urls: Mapping[str, str] | None = None,
                        metadata: Mapping[str, str] | None = None, *, upload_time: bool = True) -> str:
    """PEP 691 JSON (api-version 1.1) for *page* (same arguments as the HTML form)."""
    urls = urls or {}
    metadata = metadata or {}
    files = []
    versions: set[str] = set()
    for f in page.files:
        entry: dict[str, Any] = {
            "filename": f.filename,
            "url": urls.get(f.filename, f.url),
            "hashes": dict(f.hashes),
            "requires-python": None if f.requires_python is None else str(f.requires_python),
            "yanked": (f.yanked_reason or True) if f.yanked else False,
        }
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time is not None and upload_time:
            entry["upload-time"] = f.upload_time
        if f.filename in metadata:
            entry["core-metadata"] = {"sha256": metadata[f.filename]}
            entry["dist-info-metadata"] = {"sha256": metadata[f.filename]}
        files.append(entry)
        v = f.version(page.name)
        if v is not None:
            versions.add(str(v))
    doc = {"meta": {"api-version": "1.1"}, "name": page.name, "files": files,
           "versions": sorted(versions, key=Version)}
    return json.dumps(doc, indent=None, separators=(",", ":")) + "\n"


def render_index_html(names: Iterable[str]) -> str:
    lines = ["<!DOCTYPE html>", "<html>", "  <head>",
             '    <meta name="pypi:repository-version" content="1.1">',
             "    <title>Simple index</title>", "  </head>", "  <body>"]
    for n in sorted(set(names)):
        lines.append(f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br/>')
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines)


def render_index_json(names: Iterable[str]) -> str:
    doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in sorted(set(names))]}
    return json.dumps(doc, separators=(",", ":")) + "\n"
