"""Check a release against a package index: availability, files, hashes, closure, conflicts.

The analysis is pure: :func:`plan` says which pages and metadata are still needed to close
the release's dependency graph for a target, :func:`analyse` turns what the index returned
into a :class:`CheckReport`. :func:`run_check` is the thin driver that fetches what
:func:`plan` asks for (concurrently, through an :class:`IndexClient`) until nothing is missing.

The closure starts at the release's pins (the packages it ships with a PEP 440 version, for
the target's platform), follows every Requires-Dist whose marker holds for the target (extras
requested by a requirement, ``foo[bar]``, are followed), and, for a dependency the release
does not pin, the version pip would pick (the newest installable one matching every
requirement on it), whose own dependencies are followed in turn.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta.check.report import (
    CheckReport,
    Conflict,
    FileInfo,
    PinResult,
    PinStatus,
    PythonProblem,
    Unpinned,
)
from stackmeta.errors import StackmetaError, UsageError
from stackmeta.index.client import FileMetadata, IndexClient
from stackmeta.index.metadata import BROKEN_HEADERS
from stackmeta.index.simple import ProjectPage
from stackmeta.index.source import file_usable, installable_list, metadata_file, python_ok
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.record import BuildKind, Package, Release, update_section
from stackmeta.target import Target, platform_for_arch

SECTION = "check"
MAX_ROUNDS = 30

Pages = Mapping[NormalizedName, "ProjectPage | StackmetaError | None"]
Metas = Mapping[tuple[NormalizedName, Version], "FileMetadata | StackmetaError | None"]


# -- the closure (pure) ----------------------------------------------------------------


def shipped_pins(release: Release, target: Target) -> list[Package]:
    """The release's packages that ship for the target's platform."""
    out = []
    for pkg in release.packages:
        plats = set()
        for arch in pkg.arches:
            try:
                plats.add(platform_for_arch(arch))
            except UsageError:
                continue
        if pkg.arches and plats and target.platform not in plats:
            continue
        out.append(pkg)
    return sorted(out, key=lambda p: p.name)


@dataclass(kw_only=True, slots=True)
class _Walk:
    nodes: dict[NormalizedName, Version] = field(default_factory=dict)  # pins + picks
    extras: dict[NormalizedName, set[str]] = field(default_factory=dict)
    wants: dict[NormalizedName, list[tuple[str, Requirement]]] = field(default_factory=dict)  # unpinned
    specs: dict[NormalizedName, SpecifierSet] = field(default_factory=dict)  # wants' requirements, together
    picks: dict[NormalizedName, Version | None] = field(default_factory=dict)


@lru_cache(maxsize=1 << 16)
def _holds(target: Target, marker: Marker | None, extras: frozenset[str]) -> bool:
    """``target.evaluate(marker, extras)``, remembered: the closure asks the same again and again."""
    return target.evaluate(marker, extras)


_Active = tuple[tuple[NormalizedName, Requirement], ...]
_ACTIVE: dict[tuple[int, frozenset[str], Target], tuple[object, _Active]] = {}


def _active(target: Target, meta: FileMetadata | StackmetaError | None, extras: frozenset[str]
            ) -> _Active | None:
    """The (dependency name, requirement) pairs of *meta* whose markers hold for the target with
    these extras; None when the dependencies are unknown. Remembered by the metadata object."""
    deps = _known_deps(meta)
    if deps is None:
        return None
    key = (id(deps), extras, target)
    hit = _ACTIVE.get(key)
    if hit is not None and hit[0] is deps:
        return hit[1]
    out = tuple((canonicalize_name(r.name), r) for r in deps if _holds(target, r.marker, extras))
    if len(_ACTIVE) > 100_000:
        _ACTIVE.clear()
    _ACTIVE[key] = (deps, out)
    return out


def _known_deps(meta: FileMetadata | StackmetaError | None) -> tuple[Requirement, ...] | None:
    if isinstance(meta, FileMetadata) and meta.metadata is not None and meta.dependencies_known:
        return meta.metadata.requires_dist
    return None


_INSTALLABLE: dict[tuple[int, Target], tuple[ProjectPage, list[Version]]] = {}


def _installable_sorted(page: ProjectPage, target: Target) -> list[Version]:
    """``installable_list(page, target)``, remembered by the page object (each
    round of the closure asks again for the same pages)."""
    key = (id(page), target)
    hit = _INSTALLABLE.get(key)
    if hit is not None and hit[0] is page:
        return hit[1]
    out = installable_list(page, target)
    if len(_INSTALLABLE) > 4096:
        _INSTALLABLE.clear()
    _INSTALLABLE[key] = (page, out)
    return out


_REQ_TEXT: dict[int, tuple[Requirement, str]] = {}


def _req_text(req: Requirement) -> str:
    """``str(req)``, remembered by the (shared, parsed once) requirement object."""
    hit = _REQ_TEXT.get(id(req))
    if hit is not None and hit[0] is req:
        return hit[1]
    text = str(req)
    if len(_REQ_TEXT) > 100_000:
        _REQ_TEXT.clear()
    _REQ_TEXT[id(req)] = (req, text)
    return text


def pick_version(page: ProjectPage, target: Target, specifier: SpecifierSet,
                 memo: dict[NormalizedName, list[Version]] | None = None) -> Version | None:
    """The version pip would pick: the newest installable one (not yanked) matching."""
    memo = {} if memo is None else memo
    if page.name not in memo:
        memo[page.name] = _installable_sorted(page, target)
    candidates = list(specifier.filter(memo[page.name]))
    return max(candidates) if candidates else None


def _walk(release: Release, target: Target, pages: Pages, metas: Metas) -> _Walk:
    pins = {p.name: p.version for p in shipped_pins(release, target) if p.version is not None}
    w = _Walk()
    memo: dict[NormalizedName, list[Version]] = {}
    for _ in range(MAX_ROUNDS):
        nodes: dict[NormalizedName, Version] = dict(pins)
        nodes.update({n: v for n, v in w.picks.items() if v is not None})
        extras: dict[NormalizedName, set[str]] = {}
        wants: dict[NormalizedName, list[tuple[str, Requirement]]] = {}
        for name, version in nodes.items():
            active = _active(target, metas.get((name, version)), frozenset(w.extras.get(name, ())))
            for dep, req in active or ():
                if req.extras:
                    extras.setdefault(dep, set()).update(req.extras)
                if dep not in pins:
                    wants.setdefault(dep, []).append((f"{name}=={version}", req))
        specs: dict[NormalizedName, SpecifierSet] = {}
        for dep, reqs in wants.items():
            spec = SpecifierSet()
            for _, r in reqs:
                spec &= r.specifier
            specs[dep] = spec
        picks = {dep: pick_version(page, target, specs[dep], memo)
                 for dep in wants if isinstance(page := pages.get(dep), ProjectPage)}
        extras = {n: e for n, e in extras.items() if e}
        stable = picks == w.picks and extras == w.extras
        w = _Walk(nodes=nodes, extras=extras, wants=wants, specs=specs, picks=picks)
        if stable:
            break
    return w


@dataclass(frozen=True, kw_only=True, slots=True)
class Needs:
    pages: tuple[NormalizedName, ...]
    metadata: tuple[tuple[NormalizedName, Version], ...]
    # the requirements, together, on each unpinned dependency among *pages*: once its page is
    # read, the version pip would pick (whose metadata comes next) is known at once
    wanted: Mapping[NormalizedName, SpecifierSet] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pages or self.metadata)


def plan(release: Release, target: Target, pages: Pages, metas: Metas) -> Needs:
    """What is still to be fetched to close the graph (pages first, then metadata)."""
    w = _walk(release, target, pages, metas)
    names = {p.name for p in shipped_pins(release, target) if p.version is not None} | set(w.wants)
    need_pages = sorted(n for n in names if n not in pages)
    need_md = []
    nodes = dict(w.nodes)
    nodes.update({n: v for n, v in w.picks.items() if v is not None})
    for name, version in nodes.items():
        page = pages.get(name)
        if (isinstance(page, ProjectPage) and (name, version) not in metas
                and metadata_file(page.files_of(version), target) is not None):
            need_md.append((name, version))
    wanted = {name: w.specs[name] for name in need_pages if name in w.specs}
    return Needs(pages=tuple(need_pages), metadata=tuple(sorted(need_md)), wanted=wanted)


_FILE_INFO: dict[tuple[int, Version, Target], tuple[ProjectPage, tuple[FileInfo, ...]]] = {}


def file_infos(page: ProjectPage, version: Version, target: Target) -> tuple[FileInfo, ...]:
    """The files of *version* as the report lists them; remembered by the page object (the
    fetch computes them while other requests are in flight, the analysis reuses them)."""
    key = (id(page), version, target)
    hit = _FILE_INFO.get(key)
    if hit is not None and hit[0] is page:
        return hit[1]
    out = tuple(
        FileInfo(filename=f.filename, url=f.url, sha256=f.sha256, size=f.size, kind=f.kind,
                 usable=file_usable(f, target), yanked=f.yanked,
                 requires_python=None if f.requires_python is None else str(f.requires_python))
        for f in sorted(page.files_of(version), key=lambda f: f.filename)
    )
    if len(_FILE_INFO) > 16_384:
        _FILE_INFO.clear()
    _FILE_INFO[key] = (page, out)
    return out


def _prepare(page: ProjectPage, version: Version, meta: FileMetadata | StackmetaError | None,
             target: Target) -> None:
    """Do ahead the analysis' work on one package (all of it remembered): run by the fetch as
    soon as the package's page and metadata are in, while other requests are in flight."""
    file_infos(page, version, target)
    deps = _known_deps(meta)
    if deps is not None:
        _active(target, meta, frozenset())
        for r in deps:
            _req_text(r)


def _result(name: NormalizedName, version: Version | None, written: str, *, pinned: bool, pkg: Package | None,
            target: Target, pages: Pages, metas: Metas, extras: set[str], url: str) -> PinResult:
    notes: list[str] = []
    build = pkg.build.value if pkg else "pypi"
    if pkg is not None:
        if pkg.build is not BuildKind.PYPI:
            where = f" {pkg.source_url}" if pkg.source_url else ""
            notes.append(f"CMS builds it from {pkg.build.value}{where}")
        if pkg.patches:
            notes.append(f"CMS patches it ({len(pkg.patches)} patch{'es' * (len(pkg.patches) > 1)}): "
                         "the index's files are not the same bits")
    base: dict[str, Any] = {"name": name, "version": written, "pinned": pinned, "build": build, "url": url,
                            "extras": tuple(sorted(extras))}
    if version is None:
        return PinResult(status=PinStatus.NOT_PEP440, notes=(*notes, f"{written!r} is not a PEP 440 version"),
                         **base)
    page = pages.get(name)
    if isinstance(page, StackmetaError):
        return PinResult(status=PinStatus.MISSING, error=str(page), notes=tuple(notes), **base)
    if page is None:
        return PinResult(status=PinStatus.NO_PROJECT, notes=(*notes, "the index has no such project"), **base)
    notes.extend(page.notes)  # files the page lists of another project, skipped
    files = page.files_of(version)
    if not files:
        return PinResult(status=PinStatus.NO_VERSION, notes=(*notes, f"the index has no files of {version}"),
                         **base)
    infos = file_infos(page, version, target)
    usable_wheels = [f for f in infos if f.usable and f.kind == "wheel"]
    usable_sdists = [f for f in infos if f.usable and f.kind == "sdist"]
    status = (PinStatus.WHEEL if usable_wheels
              else PinStatus.SDIST_ONLY if usable_sdists else PinStatus.NO_FILE)
    if status is PinStatus.NO_FILE:
        notes.append("no wheel for this Python and platform, and no sdist")
    yanked = all(f.yanked for f in files)
    reasons = {f.yanked_reason for f in files if f.yanked and f.yanked_reason}
    md = metas.get((name, version))
    chosen = metadata_file(files, target)
    error = str(md) if isinstance(md, StackmetaError) else None
    rd: tuple[str, ...] | None = None
    rp: str | None = None
    source: str | None = None
    if isinstance(md, FileMetadata):
        source = md.source
        if md.note:
            notes.append(md.note)
        if md.source == "pep517":
            notes.append(f"dependencies from a PEP 517 metadata build of {md.file.filename} with Python "
                         f"{sys.version_info[0]}.{sys.version_info[1]}")
        if md.metadata is not None:
            rp = None if md.metadata.requires_python is None else str(md.metadata.requires_python)
            notes.extend(f"metadata junk skipped: {j}" for j in md.metadata.junk)
            if md.metadata.broken_headers:
                notes.append(BROKEN_HEADERS)
            if md.dependencies_known:
                rd = tuple(_req_text(r) for r in md.metadata.requires_dist)
            else:
                source = "unknown"
                dyn = " with dynamic Requires-Dist" if "requires-dist" in md.metadata.dynamic else ""
                notes.append(f"dependencies unknown: {md.file.filename} has Metadata-Version "
                             f"{md.metadata.metadata_version}{dyn}")
        else:
            source = "unknown"
            notes.append(f"dependencies unknown: no metadata in {md.file.filename}")
    elif chosen is not None and md is None and error is None:
        source = "unknown"
    return PinResult(status=status, yanked=yanked, yanked_reason="; ".join(sorted(reasons)) or None,
                     files=infos, metadata_file=chosen.filename if chosen else None, metadata_source=source,
                     requires_dist=rd, requires_python=rp, notes=tuple(notes), error=error, **base)


def analyse(release: Release, target: Target, index_url: str, pages: Pages, metas: Metas, *,
            seconds: float = 0.0, requests: int = 0) -> CheckReport:
    """The report, from what the index returned (pure)."""
    url_of = f"{index_url.rstrip('/')}/{{}}/"
    w = _walk(release, target, pages, metas)
    shipped = shipped_pins(release, target)
    pinned = {p.name: p.version for p in shipped if p.version is not None}
    pins = tuple(
        _result(p.name, p.version, p.version_written if p.version is None else str(p.version),
                pinned=True, pkg=p, target=target, pages=pages, metas=metas,
                extras=w.extras.get(p.name, set()),
                url=url_of.format(p.name))
        for p in shipped
    )
    picks = tuple(
        _result(n, v, str(v), pinned=False, pkg=None, target=target, pages=pages, metas=metas,
                extras=w.extras.get(n, set()), url=url_of.format(n))
        for n, v in sorted(w.picks.items()) if v is not None
    )
    conflicts = []
    for name, version in sorted(w.nodes.items()):
        for dep, req in _active(target, metas.get((name, version)), frozenset(w.extras.get(name, ()))) or ():
            have = pinned.get(dep)
            if have is not None and not req.specifier.contains(have, prereleases=True):
                conflicts.append(Conflict(requirer=name, requirer_version=str(version),
                                          requirement=_req_text(req), dependency=dep, pinned=str(have),
                                          requirer_pinned=name in pinned))
    unpinned = []
    for dep, reqs in sorted(w.wants.items()):
        page = pages.get(dep)
        picked = w.picks.get(dep)
        if picked is not None:
            shown: str | None = str(picked)
        else:  # None: no version fits (or no such project); "?": the index failed to say
            shown = "?" if isinstance(page, StackmetaError) else None
        unpinned.append(Unpinned(name=dep, required_by=tuple(sorted({f"{who}: {r}" for who, r in reqs})),
                                 specifier=str(w.specs[dep]), picked=shown))
    pyprobs = []
    python = target.python_full
    for p in (*pins, *picks):
        if p.requires_python and not SpecifierSet(p.requires_python).contains(python, prereleases=True):
            pyprobs.append(PythonProblem(name=p.name, version=p.version, requires_python=p.requires_python,
                                         python=python, where="metadata"))
        elif p.status.installable or p.status is PinStatus.NO_FILE:
            page = pages.get(p.name)
            if isinstance(page, ProjectPage) and p.status is PinStatus.NO_FILE:
                for f in page.files_of(Version(p.version)):
                    if not python_ok(f, target):
                        pyprobs.append(PythonProblem(
                            name=p.name, version=p.version, python=python,
                            requires_python=str(f.requires_python), where=f.filename))
                        break
    return CheckReport(
        release=release.release, lock_name=release.lock_name, python=python, platform=target.platform,
        index_url=index_url, pins=pins, picks=picks, conflicts=tuple(conflicts), unpinned=tuple(unpinned),
        python_problems=tuple(pyprobs), seconds=round(seconds, 3), requests=requests,
    )


# -- the driver (I/O through the client) -----------------------------------------------


def default_target(release: Release, python: str | None = None, platform: str | None = None) -> Target:
    """The platform of the release's first arch and the Python CMS builds there, unless given
    (with ``platform`` only: the Python of the first arch on that platform)."""
    def plat_of(arch: str) -> str | None:
        try:
            return platform_for_arch(arch)
        except UsageError:
            return None

    plat = platform or (plat_of(release.arches[0]) if release.arches else None) or "linux-x86_64"
    arch = next((a for a in release.arches if plat_of(a) == plat), None)
    try:
        py = Version(python) if python else release.pythons.get(arch or "", release.python)
    except ValueError:
        raise UsageError(f"--python {python!r} is not a version: use e.g. 3.9") from None
    return Target(python=py, platform=plat)


def fetch(release: Release, target: Target, client: IndexClient, progress: Progress = NO_PROGRESS, *,
          pages: dict[NormalizedName, ProjectPage | StackmetaError | None] | None = None,
          metas: dict[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None] | None = None,
          build_metadata: bool = False,
          ) -> tuple[dict[NormalizedName, ProjectPage | StackmetaError | None],
                     dict[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None]]:
    """Fetch, round by round, every page and metadata file the closure needs. Given *pages*
    and *metas* (what an earlier fetch returned), only what they lack is fetched, into them.
    With *build_metadata*, an sdist whose PKG-INFO leaves the dependencies unknown has its
    metadata built through PEP 517 (:meth:`IndexClient.built_metadata`; runs its build code);
    a build that fails leaves them unknown, with the reason as the metadata's note."""
    pages = {} if pages is None else pages
    metas = {} if metas is None else metas
    pins = {p.name: p.version for p in shipped_pins(release, target) if p.version is not None}

    def page_then_metadata(name: NormalizedName) -> None:
        # one task a project: its page, then at once the metadata of the pinned version
        try:
            page = client.project(name)
        except StackmetaError as exc:
            pages[name] = exc
            return
        pages[name] = page
        version = pins.get(name)
        if version is None and page is not None and name in wanted:
            # an unpinned dependency: the metadata of its pick now, not in another round (should
            # the next plan pick otherwise, it asks for that version's metadata)
            version = pick_version(page, target, wanted[name])
        if page is not None and version is not None:
            metadata_of(name, version)

    def metadata_of(name: NormalizedName, version: Version) -> None:
        page = pages.get(name)
        chosen = metadata_file(page.files_of(version), target) if isinstance(page, ProjectPage) else None
        if chosen is None:
            metas[(name, version)] = None
            return
        try:
            md = metas[(name, version)] = client.metadata(chosen, name)
        except StackmetaError as exc:
            metas[(name, version)] = exc
        else:
            if build_metadata and chosen.kind == "sdist" and not md.dependencies_known:
                try:
                    metas[(name, version)] = client.built_metadata(chosen, name)
                except StackmetaError as exc:
                    metas[(name, version)] = replace(md, note=f"metadata build failed: {exc}")
        if isinstance(page, ProjectPage):
            _prepare(page, version, metas[(name, version)], target)

    first = True
    wanted: Mapping[NormalizedName, SpecifierSet] = {}
    for _ in range(MAX_ROUNDS):
        needs = plan(release, target, pages, metas)
        if not needs:
            break
        wanted = needs.wanted
        items: list[tuple[str, Any]] = [("page", n) for n in needs.pages]
        items += [("md", nv) for nv in needs.metadata if nv[0] not in needs.pages]
        progress.start("checking pins" if first else "following dependencies", len(items))
        first = False

        def run(item: tuple[str, Any]) -> None:
            kind, arg = item
            if kind == "page":
                page_then_metadata(arg)
            else:
                metadata_of(*arg)

        try:
            client.transport.map(run, items, lambda _i, _r: progress.advance())
        finally:
            progress.done()
    return pages, metas


def run_check(release: Release, target: Target, client: IndexClient, progress: Progress = NO_PROGRESS, *,
              build_metadata: bool = False) -> CheckReport:
    """Check *release* for *target* against the client's index."""
    return fetch_and_check(release, target, client, progress, build_metadata=build_metadata)[0]


def fetch_and_check(release: Release, target: Target, client: IndexClient, progress: Progress = NO_PROGRESS,
                    *, build_metadata: bool = False,
                    ) -> tuple[CheckReport, dict[NormalizedName, ProjectPage | StackmetaError | None],
                               dict[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None]]:
    """:func:`run_check`, with the pages and metadata it read (for a report that needs more)."""
    start = time.perf_counter()
    before = len(client.transport.log)
    with _no_cyclic_gc():
        pages, metas = fetch(release, target, client, progress, build_metadata=build_metadata)
        client.cache.flush_soon()  # the cache is written while the analysis runs
        report = analyse(release, target, client.index_url, pages, metas,
                         seconds=time.perf_counter() - start, requests=len(client.transport.log) - before)
        return report, pages, metas


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: a check allocates a few hundred thousand objects
    (the pages' JSON, which stay alive until the end) and would otherwise spend ~10% of its CPU
    traversing them again and again; what it leaves as garbage is freed by reference counting.
    The collector's state is restored after, with what the check made moved straight to the
    oldest generation (freeze, then unfreeze: no traversal; otherwise the first collection after
    would go through the ~100,000 young objects, ~25 ms, to find them alive)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


# what changes from one check to the next when nothing else does: not a reason to rewrite a record
TIMING = ("seconds", "requests")


def save(report: CheckReport, record: Path) -> bool:
    """Write the report as the record's "check" section (the other sections are kept), unless
    the section says the same already but for its timings; whether it was written."""
    return update_section(record, SECTION, report.to_json(), ignore=TIMING)
