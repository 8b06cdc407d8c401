"""The resolver's view of an index: :class:`IndexSource` implements
:class:`stackmeta.resolve.candidates.CandidateSource` for one target over an :class:`IndexClient`.

The pure helpers (:func:`file_usable`, :func:`installable_versions`, :func:`metadata_file`)
say which files pip could use for a target; the check uses them too. :func:`nearest_order`
orders a project's versions nearest first from the release's own (the resolver tries them in
that order; the platform matrix picks the nearest installable one by it).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta.errors import StackmetaError
from stackmeta.index.client import FileMetadata, IndexClient
from stackmeta.index.metadata import CoreMetadata
from stackmeta.index.simple import FileGroups, FileInfo, ProjectFile, ProjectPage, file_kind
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.target import Target, full_version, valid_wheel_name

if TYPE_CHECKING:
    from stackmeta.index.installable import Builds, Verdict


F = TypeVar("F", bound=FileInfo)


def python_ok(file: FileInfo, target: Target) -> bool:
    """Whether the file's Requires-Python (from the page) admits the target's Python."""
    return file.requires_python is None or file.requires_python.contains(target.python_full, prereleases=True)


def file_usable(file: FileInfo, target: Target) -> bool:
    """pip could install this file for the target (yanked or not): a wheel whose tags fit or
    an sdist, with a Requires-Python admitting the target's Python."""
    return _usable(file.filename, file.requires_python, target)


def _usable(filename: str, requires_python: SpecifierSet | None, target: Target) -> bool:
    """:func:`file_usable` of the file with this name and Requires-Python."""
    return _kind_fits(filename, target) and _python_admits(requires_python, target)


def _kind_fits(filename: str, target: Target) -> bool:
    """A wheel whose tags fit the target, or an sdist."""
    kind = file_kind(filename)
    return target.wheel_rank(filename) is not None if kind == "wheel" else kind == "sdist"


def _python_admits(requires_python: SpecifierSet | None, target: Target) -> bool:
    return requires_python is None or requires_python.contains(target.python_full, prereleases=True)


def installable_versions(page: ProjectPage, target: Target, *, yanked: bool = False
                         ) -> dict[Version, list[ProjectFile]]:
    """Versions with a file pip could use for the target (yanked files only if *yanked*)."""
    out: dict[Version, list[ProjectFile]] = {}
    for version, files in page.by_version().items():
        usable = [f for f in files if file_usable(f, target) and (yanked or not f.yanked)]
        if usable:
            out[version] = usable
    return out


def _kind_key(filename: str) -> str | None:
    """What of a file's name :func:`_kind_fits` depends on, for any target, but whether a
    wheel's name is valid: a wheel's tag part ("PY-ABI-PLATFORM"), "" for an sdist, None for
    anything else (no target installs it)."""
    kind = file_kind(filename)
    if kind == "sdist":
        return ""
    if kind != "wheel":
        return None
    parts = filename[:-4].split("-")
    return "-".join(parts[-3:]) if len(parts) in (5, 6) else None


def installable_list(page: ProjectPage, target: Target, *, yanked: bool = False) -> list[Version]:
    """``sorted(installable_versions(page, target, yanked=yanked))``, without building the
    page's file objects (a page lists thousands of files): each group of files alike for any
    target (:meth:`ProjectPage.grouped`) is judged once; a wheel's name is checked (by the
    spec) only when its group fits, and once a page."""
    grouped = page.grouped(_kind_key)
    python = full_version(target)
    admits: dict[int, bool] = {}  # a page's files share a few Requires-Python objects
    ok: list[bool] = []
    for key, rp, yank in grouped.groups:
        if (yank and not yanked) or not isinstance(key, str):
            ok.append(False)
            continue
        if rp is not None:
            admitted = admits.get(id(rp))
            if admitted is None:
                admitted = admits[id(rp)] = rp.contains(python, prereleases=True)
            if not admitted:
                ok.append(False)
                continue
        ok.append(key == "" or target.tags_rank(key) is not None)
    named = _checker(page, grouped)
    groups, of_file = grouped.groups, grouped.of_file
    return [v for v, gids, idx in _by_version(grouped)  # ascending
            if any(ok[g] and (groups[g][0] == "" or any(named(i) for i in idx if of_file[i] == g))
                   for g in gids)]


def _by_version(grouped: FileGroups) -> Iterable[tuple[Version, Sequence[int], Sequence[int]]]:
    """Each version of *grouped* (ascending), the groups of its files and their positions."""
    return zip(grouped.versions, grouped.group_ids, grouped.positions, strict=True)


def _checker(page: ProjectPage, grouped: FileGroups) -> Callable[[int], bool]:
    """Whether the file at a position has a valid wheel name (by the spec), found out once
    a page (kept in *grouped*'s ``checked``: 1 not valid, 2 valid)."""
    names, valid = page.filenames, grouped.checked

    def named(i: int) -> bool:
        hit = valid[i]
        if not hit:
            hit = valid[i] = 2 if valid_wheel_name(names[i]) else 1
        return hit == 2

    return named


def wheel_versions(page: ProjectPage, target: Target) -> frozenset[Version]:
    """The versions with a wheel (a valid name) for the target, yanked or not, whatever their
    Requires-Python: those of which ``any(target.wheel_rank(f.filename) is not None for f in
    page.files_of(version))``, found without building the page's file objects (as
    :func:`installable_list`)."""
    grouped = page.grouped(_kind_key)
    fits = [isinstance(key, str) and key != "" and target.tags_rank(key) is not None
            for key, _, _ in grouped.groups]
    named, of_file = _checker(page, grouped), grouped.of_file
    return frozenset(v for v, gids, idx in _by_version(grouped)
                     if any(fits[g] for g in gids) and any(fits[of_file[i]] and named(i) for i in idx))


def metadata_file(files: Sequence[F], target: Target) -> F | None:
    """The file whose metadata describes this version for the target: the best usable wheel
    (as pip would pick it), else an sdist (``.tar.gz`` first), else None."""
    wheels = [(target.wheel_rank(f.filename), f) for f in files if f.kind == "wheel"]
    ranked = [(r, f) for r, f in wheels if r is not None and python_ok(f, target)]
    if ranked:
        return min(ranked, key=lambda rf: (rf[0], rf[1].yanked))[1]
    sdists = [f for f in files if f.kind == "sdist"]
    if sdists:
        return sorted(sdists, key=lambda f: (not f.filename.endswith(".tar.gz"), f.yanked))[0]
    return None


# pip 24.1 (which needs Python 3.8) and later refuse a version whose metadata does not parse
# under current packaging; where a cell's Python runs only older pips, lenient reading stands
STRICT_METADATA_PYTHON = (3, 8)


class IndexSource:
    """Versions and Requires-Dist for a target, read from an index through *client*.

    Errors (an unreachable page, a broken metadata file) do not raise: the project has no
    versions / the dependencies are unknown (None), and the message is in :attr:`errors`.

    With *builds*, :meth:`installable` finds out by building whether an sdist-only version is
    installable (:mod:`stackmeta.index.installable`), and the dependencies of a version that
    built are read from the wheel it built.
    """

    def __init__(self, client: IndexClient, target: Target, *, builds: Builds | None = None) -> None:
        self.client = client
        self.target = target
        self.builds = builds
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()
        # (name, version) -> the file whose metadata pip reads here (asked again and again)
        self._chosen: dict[tuple[NormalizedName, Version], ProjectFile | None] = {}
        self._wheels: dict[NormalizedName, frozenset[Version]] = {}  # name -> its versions with a wheel here
        # answers made once (a cell's sameness checks and its guess's check each ask on a fresh
        # memo, the same questions again); not when the page could not be read (it may be later)
        self._versions: dict[NormalizedName, Sequence[Version]] = {}
        self._verdicts: dict[tuple[NormalizedName, Version], Verdict] = {}

    def _page(self, name: NormalizedName) -> ProjectPage | None:
        try:
            return self.client.project(name)
        except StackmetaError as exc:
            with self._lock:
                self.errors[name] = str(exc)
            return None

    def versions(self, name: NormalizedName) -> Sequence[Version]:
        cname = canonicalize_name(name)
        found = self._versions.get(cname)
        if found is None:
            page = self._page(cname)
            if page is None:
                return []
            found = self._versions[cname] = tuple(installable_list(page, self.target))
        return found

    def has_wheel(self, name: NormalizedName, version: Version) -> bool:
        """Whether that version has a wheel for the target (:func:`wheel_versions`)."""
        cname = canonicalize_name(name)
        found = self._wheels.get(cname)
        if found is None:
            page = self._page(cname)
            found = self._wheels[cname] = frozenset() if page is None else wheel_versions(page, self.target)
        return version in found

    def files(self, name: NormalizedName, version: Version) -> tuple[ProjectFile, ...]:
        """All files of that version on the page (usable or not)."""
        page = self._page(canonicalize_name(name))
        return () if page is None else page.files_of(version)

    def _metadata_file(self, name: NormalizedName, version: Version,
                       page: ProjectPage | None = None) -> ProjectFile | None:
        """:func:`metadata_file` of that version's files (of *page*, when given), made once:
        chosen from the page's rows, only the chosen file built."""
        key = (name, version)
        try:
            return self._chosen[key]
        except KeyError:
            page = page if page is not None else self._page(canonicalize_name(name))
            row = None if page is None else metadata_file(page.rows_of(version), self.target)
            found = self._chosen[key] = None if row is None or page is None else page.file_at(row.position)
            return found

    def file_metadata(self, name: NormalizedName, version: Version) -> FileMetadata | None:
        cname = canonicalize_name(name)
        chosen = self._metadata_file(cname, version)
        if chosen is None:
            return None
        try:
            return self.client.metadata(chosen, cname)
        except StackmetaError as exc:
            with self._lock:
                self.errors[f"{cname}=={version}"] = str(exc)
            return None

    def installable(self, name: NormalizedName, version: Version) -> Verdict:
        """Whether the target can install that version (building its sdist if need be)."""
        cname = canonicalize_name(name)
        key = (cname, version)
        found = self._verdicts.get(key)
        if found is None:
            page = self._page(cname)
            found = self._installable(cname, version, page)
            if page is not None:
                self._verdicts[key] = found
        return found

    def _installable(self, cname: NormalizedName, version: Version, page: ProjectPage | None) -> Verdict:
        from stackmeta.index.installable import verdict

        if page is None:
            found = verdict((), self.target, cname, self.builds)
        else:  # judged on the page's rows: a file is built only to be built or run
            found = verdict(page.rows_of(version), self.target, cname, self.builds,
                            full=lambda row: page.file_at(row.position))
        if found.installable and self.target.python_minor >= STRICT_METADATA_PYTHON:
            # pip 24.1 and later refuse a version whose metadata does not parse ("has invalid
            # metadata"), and stop on a requirement marker current packaging cannot evaluate,
            # where older pips read both leniently
            md, known = self._pip_reads(cname, version)
            if md is not None and md.junk:
                return replace(found, installable=False, how="none", reason="pip 24.1 and later ignore "
                               f"this version: its metadata is invalid ({'; '.join(md.junk)})")
            for req in md.requires_dist if md is not None and known else ():
                error = self.target.marker_error(req.marker)
                if error:
                    return replace(found, installable=False, how="none", reason="pip 24.1 and later "
                                   f"stop with an error on this version's requirement {req} ({error})")
        return found

    def _pip_reads(self, name: NormalizedName, version: Version) -> tuple[CoreMetadata | None, bool]:
        """The core metadata pip reads for that version: of the wheel its sdist built, when the
        file pip would take is an sdist built before (this never builds), else of that file;
        and whether its Requires-Dist is authoritative."""
        chosen = self._metadata_file(name, version)
        if chosen is not None and chosen.kind == "sdist" and self.builds is not None:
            from stackmeta.index.installable import built_metadata

            build = self.builds.known(chosen, self.target.python_minor)
            md = built_metadata(build, name) if build is not None and build.pure else None
            if md is not None:
                return md, True
        fm = self.file_metadata(name, version)
        if fm is None or fm.metadata is None:
            return None, False
        return fm.metadata, fm.dependencies_known

    def build_ahead(self, name: NormalizedName, version: Version) -> None:
        """Start building, in the background, the sdist of a version with no wheel for the
        target (:meth:`installable` asks for it soon); nothing without builds."""
        if self.builds is not None:
            from stackmeta.index.installable import build_ahead

            cname = canonicalize_name(name)
            build_ahead(self.files(cname, version), self.target, cname, self.builds)

    def at_hand(self, name: NormalizedName, version: Version) -> bool:
        """Whether :meth:`dependencies` of that version answers without a request (its page
        and metadata were read before, or are in the cache); never reads."""
        cname = canonicalize_name(name)
        known, page = self.client.read_before(cname)
        if not known:
            return False
        chosen = None if page is None else self._metadata_file(cname, version, page)
        if chosen is None:
            return True
        if chosen.kind == "sdist" and self.builds is not None:
            build = self.builds.known(chosen, self.target.python_minor)
            if build is not None and build.pure:
                return True
        return self.client.metadata_at_hand(chosen)

    def dependencies(self, name: NormalizedName, version: Version) -> Sequence[Requirement] | None:
        md, known = self._pip_reads(canonicalize_name(name), version)
        return md.requires_dist if md is not None and known else None

    def prefetch(self, names: Iterable[str], progress: Progress = NO_PROGRESS) -> None:
        """Fetch many pages at once (errors land in :attr:`errors`); those the client read
        before are not asked for again (a hop through the worker threads is not free, and every
        cell of a release asks for the same pages)."""
        todo = [n for n in names if not self.client.read_before(n)[0]]
        self.client.map(lambda n: self._page(canonicalize_name(n)), todo, progress, "pages")

    def prefetch_dependencies(self, pins: Iterable[tuple[str, Version]],
                              progress: Progress = NO_PROGRESS) -> None:
        """Fetch many pages and the metadata of the given versions at once; what the client
        read before is not asked for again (the search asks for every version of a project at
        once, in every cell)."""
        self.client.map(lambda p: self.file_metadata(canonicalize_name(p[0]), p[1]),
                        [p for p in pins if not self._read_before(canonicalize_name(p[0]), p[1])],
                        progress, "metadata")

    def prefetch_at_hand(self, pins: Iterable[tuple[str, Version]]) -> None:
        """:meth:`prefetch_dependencies` of those *pins* whose page the client read and whose
        metadata file is in the disk cache: never a request."""
        todo = []
        for name, version in pins:
            cname = canonicalize_name(name)
            known, page = self.client.read_before(cname)
            chosen = None if page is None else self._metadata_file(cname, version, page)
            if known and chosen is not None and self.client.metadata_at_hand(chosen):
                todo.append((cname, version))
        self.prefetch_dependencies(todo)

    def unread(self, pins: Iterable[tuple[str, Version]], enough: int | None = None) -> int:
        """How many of *pins* have a metadata file here that would need a request: neither
        read by the client before nor in its disk cache (pages are read, not metadata); the
        count stops at *enough* when given (a caller that only compares it with that)."""
        count = 0
        for name, version in pins:
            chosen = self._metadata_file(canonicalize_name(name), version)
            count += chosen is not None and not self.client.metadata_at_hand(chosen)
            if enough is not None and count >= enough:
                break
        return count

    def build_sdists(self, pins: Iterable[tuple[NormalizedName, Version]],
                     progress: Progress = NO_PROGRESS) -> None:
        """With :attr:`builds`: build, two at a time, the sdist of each pin that has no wheel
        for the target, so that the search and the plans find each verdict ready (built, or
        failed) instead of building one at a time."""
        if self.builds is None:
            return
        todo = []
        for name, version in pins:
            if not self.has_wheel(name, version):  # judged on the page's rows
                todo += [(str(name), f) for f in self.files(name, version) if f.kind == "sdist"][:1]
        self.builds.build_many(todo, progress, self.target.python_minor)

    def _read_before(self, name: NormalizedName, version: Version) -> bool:
        """Whether the client read the page of *name* and the metadata file of that version
        (for this target) before, or there is no such file."""
        known, page = self.client.read_before(name)
        if not known:
            return False
        chosen = None if page is None else self._metadata_file(name, version, page)
        return chosen is None or self.client.metadata_read_before(chosen)


def nearest_order(versions: Iterable[Version], release: Version | None, *,
                  pre: bool = False) -> list[Version]:
    """*versions* in the order the resolver tries them for a package the release ships at
    *release*: the release version, then by distance in the ascending list of versions
    (pre-releases left out unless *release* is one, or *pre*), the lower first on equal
    distance. For a package the release does not ship (*release* None): newest first, as pip
    does."""
    allow_pre = pre or (release is not None and release.is_prerelease)
    pool = sorted({v for v in versions if allow_pre or not v.is_prerelease or v == release})
    if release is None:
        return pool[::-1]
    at = bisect.bisect_left(pool, release)
    exact = at < len(pool) and pool[at] == release

    def distance(i: int) -> tuple[int, int]:
        if i < at:
            return (at - i, 0)
        return ((i - at) if exact else (i - at + 1), 1)

    return [pool[i] for i in sorted(range(len(pool)), key=distance)]
