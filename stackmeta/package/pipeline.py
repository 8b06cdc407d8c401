"""The maintainer's pipeline over every record: publish what the index does not have yet.

:func:`publish_new` builds each record's metapackage (offline, byte-reproducible: the same
bytes as ``stackmeta build``), reads the project's page on the index once, and publishes with
:func:`stackmeta.package.publish.publish` only the releases whose files are not all there; a file
there with another sha256 is that release's failure, the others go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from stackmeta import credentials, record
from stackmeta.errors import PublishError, StackmetaError, UsageError
from stackmeta.index import IndexClient, ProjectPage
from stackmeta.package import builder, metapackage, publish
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.record import Release
from stackmeta.release import parse_release, release_order
from stackmeta.resolve.matrix import CELLS_SECTION, CellMatrix
from stackmeta.resolve.nearest import ResolvedRecord, load_resolved


@dataclass(frozen=True, kw_only=True, slots=True)
class NewPublished:
    """What :func:`publish_new` did, by lock name."""

    index_url: str
    published: tuple[tuple[str, publish.Published], ...]
    already: tuple[str, ...]  # every file already on the index with the same sha256
    failed: tuple[tuple[str, str], ...]  # (lock name, one-line reason)
    skipped: tuple[tuple[str, str], ...] = ()  # (lock name, why: see :func:`skipped`)


def build_record(
    locks_dir: Path, name: str, options: metapackage.Options, out: Path, build_dir: Path, *,
    force: bool = False,
) -> builder.Built:
    """Build the metapackage of the record *name* (as ``stackmeta build NAME`` does)."""
    return build_loaded(load_resolved(locks_dir, name), options, out, build_dir, force=force)


def build_loaded(loaded: ResolvedRecord, options: metapackage.Options, out: Path, build_dir: Path, *,
                 force: bool = False) -> builder.Built:
    """The record's metapackage, built; one that leaves out too much of the release is refused
    unless *force* (:func:`stackmeta.package.metapackage.refuse_thin`)."""
    matrix = CellMatrix.from_json(loaded.doc[CELLS_SECTION]) if CELLS_SECTION in loaded.doc else None
    if not force:
        judged = loaded.nearest
        if matrix is not None:  # over cells: left out means left out in every cell
            pins = {n: v for r in matrix.resolved if r.nearest is not None for n, v in r.nearest.pins}
            judged = dataclasses.replace(judged, pins=tuple(sorted(pins.items())))
        metapackage.refuse_thin(loaded.release, judged, loaded.name)
    project = metapackage.project(loaded.release, loaded.nearest, options, matrix)
    return builder.build(project, out, work_dir=build_dir / loaded.name,
                         sdist=(loaded.name == loaded.release.release))


def same_stack(a: Release, b: Release) -> bool:
    """Whether two records ship one Python stack: the same interpreter (major.minor) and the
    same pins (whichever arches ship them: a flavour is often built for fewer arches)."""
    return (a.python.major, a.python.minor) == (b.python.major, b.python.minor) and \
        set(record.pins(a)) == set(record.pins(b))


def skipped(locks_dir: Path, name: str) -> str | None:
    """Why a batch (``build --all``, ``publish --new``) does not build the record *name*, or None.

    - a flavour of a release (CMSSW_13_0_7_TOTEM) with the same Python stack as the release's
      own record (CMSSW_13_0_7) is skipped: ``cms-analysis-stack==13.0.7`` already is that
      stack. One that differs, or whose release has no record, is built under its own
      distribution (``cms-analysis-stack-totem==13.0.7``).
    - a tag of a release's build (CMSSW_11_1_0-tool-conf) reads like the release it names: it
      is skipped when that release has its own record (the release's tag wins), and built as
      the release (``cms-analysis-stack==11.1.0``) when it has none.
    """
    doc_release = record.load_release(locks_dir, name)
    try:
        parsed = parse_release(doc_release.release)
    except UsageError:
        return None
    if parsed.kind is None and parsed.flavour is None:
        return None
    other = parsed.plain if parsed.kind is not None else parsed.base
    other_lock = other + name[len(doc_release.release):]  # the same stack: -py2 stays
    if not record.record_path(locks_dir, other_lock).exists():
        return None
    theirs = record.load_release(locks_dir, other_lock)
    same = same_stack(doc_release, theirs)
    if parsed.kind is not None:
        return (f"a tag of {other}'s {parsed.kind} build: {other_lock} has its own record"
                + ("" if same else " (their Python stacks differ: the release's own tag wins)"))
    if same:
        return f"the same Python stack as {other_lock}: published as that release"
    return None


def _order(name: str) -> tuple[tuple[int, ...], str]:
    """Lock names (CMSSW_10_6_0-py2) in release order, then by name."""
    return release_order(name.split("-py")[0].split("__")[0]), name


def publish_new(
    locks_dir: Path,
    *,
    repository_url: str,
    index_url: str | None = None,
    options: metapackage.Options,
    out: Path,
    build_dir: Path,
    names: Sequence[str] = (),
    force: bool = False,
    repository: str | None = None,
    progress: Progress = NO_PROGRESS,
) -> NewPublished:
    """Publish every record of *locks_dir* (or *names*) whose files the index does not have yet."""
    if options.version is not None:
        raise UsageError("--version needs a RELEASE: each release has its own version")
    names = sorted(names or record.list_records(locks_dir), key=_order)
    if not names:
        raise UsageError(f"no release records in {locks_dir}: run 'stackmeta export' first")
    repository_url = credentials.without(repository_url)  # a password in it: for the requests only
    index_url = credentials.without(index_url) if index_url else None
    index = publish.index_for(repository_url, index_url).rstrip("/")
    client = IndexClient(index, cache_dir=False, page_max_age=0, retries=2)
    pages: dict[str, ProjectPage | None] = {}

    def page_of(distribution: str) -> ProjectPage | None:
        # each distribution's page is read once (a flavour's is its own project)
        if distribution not in pages:
            try:
                pages[distribution] = client.project(canonicalize_name(distribution))
            except StackmetaError as exc:
                raise PublishError(f"cannot read {index}/{distribution}/ before publishing ({exc})") from None
        return pages[distribution]

    try:
        page_of(options.name)
        published: list[tuple[str, publish.Published]] = []
        already: list[str] = []
        failed: list[tuple[str, str]] = []
        passed: list[tuple[str, str]] = []
        progress.start(f"publishing {len(names)} records", len(names))
        try:
            for name in names:
                try:
                    why = skipped(locks_dir, name)
                    if why is not None:
                        passed.append((name, why))
                        progress.advance()
                        continue
                    rel = record.load_release(locks_dir, name)
                    page = page_of(metapackage.distribution_name(rel.release, options.name))
                    done = _one(locks_dir, name, page, client, repository_url=repository_url, index=index,
                                options=options, out=out, build_dir=build_dir, force=force,
                                repository=repository)
                except StackmetaError as exc:
                    failed.append((name, str(exc)))
                else:
                    if done is None:
                        already.append(name)
                    else:
                        published.append((name, done))
                progress.advance()
        finally:
            progress.done()
    finally:
        client.close()
    return NewPublished(index_url=index, published=tuple(published), already=tuple(already),
                        failed=tuple(failed), skipped=tuple(passed))


def _one(
    locks_dir: Path, name: str, page: ProjectPage | None, client: IndexClient, *, repository_url: str,
    index: str, options: metapackage.Options, out: Path, build_dir: Path, force: bool,
    repository: str | None,
) -> publish.Published | None:
    loaded = load_resolved(locks_dir, name)
    built = build_loaded(loaded, options, out, build_dir, force=force)
    files = publish.built_files(built)
    upload, _ = publish.plan(files, page, fetch_sha256=lambda url: publish.download_sha256(client, url))
    if not upload:
        return None
    return publish.publish(files, loaded.nearest, repository_url=repository_url, index_url=index,
                           check=loaded.doc.get("check"), force=force, repository=repository,
                           expected=built.project.dependencies)
