"""The release record: what a release ships, as later steps read it from locks/.

A record is one JSON document, ``locks/<lock-name>.json``, with sections:

- ``"release"``: written by ``stackmeta export`` (this module's :class:`Release`);
- ``"check"``: written by ``stackmeta check`` (see :mod:`stackmeta.check.closure`);
- ``"consistent"``: written by the resolver (see :mod:`stackmeta.resolve.search`).

Each step owns its section and replaces it atomically with :func:`update_section`; the
others are kept as they are. A step that reads a record to write it again holds the record's
lock for the whole update (:func:`locked`: ``fcntl.flock`` on ``.<name>.json.lock`` beside
it, removed when released), so a ``check`` saving its section and an ``export`` rewriting
the record at the same time both land. This module owns the paths, the format and the
export section.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta import atomic
from stackmeta.errors import OutputError, RecordError, UsageError

FORMAT = 1


class BuildKind(StrEnum):
    """How CMS built a package."""

    PYPI = "pypi"  # pip from the PyPI source of that version
    VCS = "vcs"  # from a git (or other VCS) repository
    URL = "url"  # from a download that is not PyPI
    OTHER = "other"  # another recipe (no source, a local file, a system build)


@dataclass(frozen=True, kw_only=True, slots=True)
class Package:
    """One Python package the release ships."""

    rpm: str  # py3-numpy; several rpms joined by "+" when two name one project
    name: NormalizedName  # canonical PyPI name
    display_name: str  # the PyPI name as CMS writes it (pip_name, or the rpm name)
    version_written: str  # as in the spec or pin: "3.2.3-2"
    version: Version | None  # PEP 440 form, None when the written form is not PEP 440
    build: BuildKind
    source_url: str | None = None  # the main source, when not plain PyPI
    patches: tuple[str, ...] = ()  # Patch lines and patch sources: bits differ from PyPI
    reasons: tuple[str, ...] = ()  # comments written next to the pin
    requires: tuple[NormalizedName, ...] = ()  # Python packages of the stack it requires
    system_libs: tuple[str, ...] = ()  # non-Python packages it requires
    arches: tuple[str, ...] = ()  # the arches that ship it
    # (rpm, version written) of each rpm when two rpms of one project ship two versions
    rpm_versions: tuple[tuple[str, str], ...] = ()

    @property
    def patched(self) -> bool:
        return bool(self.patches)


@dataclass(frozen=True, kw_only=True, slots=True)
class UnshippedPin:
    """A pin of pip/requirements.txt that nothing the release ships requires."""

    rpm: str
    name: NormalizedName
    version_written: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """Something the reader could not evaluate or had to decide: reported, never hidden."""

    kind: str  # e.g. "unevaluated", "not-pep440", "duplicate-pin", "version-mismatch"
    message: str
    where: str = ""  # file:line, or the rpm name


@dataclass(frozen=True, kw_only=True, slots=True)
class Release:
    """The export section of a release record."""

    release: str  # CMSSW_14_0_0
    metapackage_version: Version | None  # 14.0.0 (of the release a flavour or tag names); None: no CMSSW name
    arches: tuple[str, ...]  # el9_amd64_gcc12
    python: Version  # 3.9.14 (the interpreter CMS builds)
    pythons: Mapping[str, Version] = field(default_factory=dict)  # per arch when they differ
    source: str  # "git <commit> <tag>" or "folder <path>" or "freeze <file>"
    stackmeta_version: str
    packages: tuple[Package, ...]
    unshipped: tuple[UnshippedPin, ...] = ()
    problems: tuple[Problem, ...] = ()
    # the interpreter of the release's other stack (Python 2 beside 3) when it ships packages for it
    other_python: Version | None = None
    # the record's file name (CMSSW_10_6_0-py2 for a release's second stack): where the record
    # lives, not part of its JSON; set by load_release and by the exporter
    lock: str = ""

    @property
    def python_major(self) -> int:
        return self.python.major

    @property
    def lock_name(self) -> str:
        return self.lock or self.release

    @property
    def system_libs(self) -> tuple[str, ...]:
        return tuple(sorted({lib for pkg in self.packages for lib in pkg.system_libs}))

    def package(self, name: str) -> Package:
        wanted = canonicalize_name(name)
        for pkg in self.packages:
            if pkg.name == wanted:
                return pkg
        raise KeyError(name)


# -- names and paths -------------------------------------------------------------------


def lock_name(release: str, python_major: int, *, default_major: int | None) -> str:
    """The lock's base name: the release, plus ``-py2``/``-py3`` when not the default stack.

    ``default_major`` is the Python major of the release's default stack; None means the
    caller exports the default, so the name is the release itself.
    """
    if default_major is None or python_major == default_major:
        return release
    return f"{release}-py{python_major}"


def is_safe_name(name: str) -> bool:
    """Whether *name* can name files in the locks folder: one file name, not hidden."""
    return (bool(name) and not name.startswith(".") and ".." not in name
            and not any(c in "/\\" or ord(c) < 32 for c in name)  # NUL is a control character
            and len(name.encode("utf-8", "surrogateescape")) <= 200)


def check_name(name: str) -> str:
    """*name* when it is a safe lock name (see :func:`is_safe_name`), else one UsageError:
    the files of a record stay inside ``--locks-dir``, whatever a release name holds."""
    if not is_safe_name(name):
        raise UsageError(
            f"release name {name!r} cannot name a file in the locks folder: a lock name is one file "
            "name (no '/', '\\', '..', NUL or control characters, no leading '.', at most 200 bytes), "
            "e.g. CMSSW_14_0_0"
        )
    return name


def lock_file(locks_dir: Path, name: str, suffix: str) -> Path:
    """``<locks_dir>/<name><suffix>``, refused (UsageError) when *name* would leave the folder."""
    return locks_dir / f"{check_name(name)}{suffix}"


def record_path(locks_dir: Path, name: str) -> Path:
    return lock_file(locks_dir, name, ".json")


def constraints_path(locks_dir: Path, name: str) -> Path:
    return lock_file(locks_dir, name, ".txt")


def list_records(locks_dir: Path) -> list[str]:
    """The lock names that have a record in *locks_dir*, sorted."""
    if not locks_dir.is_dir():
        return []
    return sorted(p.stem for p in locks_dir.glob("*.json"))


# -- the document ----------------------------------------------------------------------


def read_document(path: Path) -> dict[str, Any]:
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"--locks-dir {path.parent} is a file, not a folder: give the folder of the records")
    if not path.exists():
        near = difflib.get_close_matches(path.stem, list_records(path.parent), n=5, cutoff=0.5)
        raise RecordError(
            f"no record {path}: run 'stackmeta export' first (or pass --locks-dir where the locks are)"
            + (f"; nearest: {', '.join(near)}" if near else "")
        )
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: not a readable release record ({exc}): export it again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "release" not in doc:
        raise RecordError(f"{path}: not a stackmeta release record of format {FORMAT}: export it again")
    return doc


def dump_document(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def write_document(path: Path, doc: Mapping[str, Any]) -> None:
    atomic.write_text(path, dump_document(doc))


LOCK_TIMEOUT = 120.0  # seconds to wait for another stackmeta's update of one record


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock of the record *path* while the block reads and writes it; another
    stackmeta updating the same record waits (at most *timeout* seconds, LOCK_TIMEOUT by
    default, then a RecordError names the lock and its holder). The lock file is removed on
    release; one a killed process left is removed by the next stackmeta that locks a record
    of that folder."""
    atomic.check_paths([path])
    lock = lock_path(path)
    limit = LOCK_TIMEOUT if timeout is None else timeout
    if lock.parent not in _SWEPT:
        _SWEPT.add(lock.parent)
        for stale in lock.parent.glob(".*.json.lock"):
            with contextlib.suppress(OSError, _Busy):
                fd = _open_locked(stale, time.monotonic(), path)
                _release(stale, fd)
    fd = _open_locked(lock, time.monotonic() + limit, path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        _release(lock, fd)


_SWEPT: set[Path] = set()


class _Busy(RecordError):
    pass


def _open_locked(lock: Path, deadline: float, path: Path) -> int:
    """The descriptor of *lock*, opened (created) and flock'ed; _Busy past *deadline*."""
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot lock {path} ({exc.strerror}: {lock}): check the folder given "
                              "(--locks-dir) and its permissions") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                        raise _Busy(
                            f"{path} is being updated by another stackmeta (pid {holder}) for too long: "
                            f"wait for it to end and run again (if no stackmeta runs, remove {lock})"
                        ) from None
                    time.sleep(0.01)
            try:  # the holder before us may have removed the file: then lock the new one
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


def _release(lock: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock)  # while held: a waiter that opened it sees it gone and starts again
    os.close(fd)


def update_section(path: Path, key: str, value: Any, *, ignore: Collection[str] = ()) -> bool:
    """Replace one section of an existing record atomically, keeping the others, under the
    record's lock (see :func:`locked`). When the section holds the same already but for its
    keys *ignore* (timings), nothing is written (the file keeps its bytes and its time: a
    committed record changes only with its content). Whether it was written."""
    with locked(path):
        doc = read_document(path)
        old = doc.get(key)
        if (isinstance(old, dict) and isinstance(value, dict)
                and _without(old, ignore) == _without(json.loads(json.dumps(value)), ignore)):
            return False
        doc[key] = value
        write_document(path, doc)
        return True


def _without(section: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


def load_release(locks_dir: Path, name: str) -> Release:
    return load(locks_dir, name)[1]


def load(locks_dir: Path, name: str) -> tuple[dict[str, Any], Release]:
    """The record *name*'s document and its release, read once (a record is megabytes: a
    step that needs another section too takes it from the document)."""
    path = record_path(locks_dir, name)
    doc = read_document(path)
    return doc, release_of(doc, path, name)


def release_of(doc: Mapping[str, Any], path: Path, name: str) -> Release:
    """The release section of the document read from *path* (the record *name*)."""
    try:
        return replace(release_from_json(doc["release"]), lock=name)
    except (KeyError, TypeError, ValueError, InvalidVersion) as exc:
        raise RecordError(f"{path}: malformed release section ({exc!r}): export it again") from None


# -- JSON form of the export section ---------------------------------------------------


def _package_to_json(pkg: Package) -> dict[str, Any]:
    return {
        "name": pkg.name,
        "display_name": pkg.display_name,
        "rpm": pkg.rpm,
        "version": None if pkg.version is None else str(pkg.version),
        "version_written": pkg.version_written,
        "build": pkg.build.value,
        "source_url": pkg.source_url,
        "patches": list(pkg.patches),
        "reasons": list(pkg.reasons),
        "requires": list(pkg.requires),
        "system_libs": list(pkg.system_libs),
        "arches": list(pkg.arches),
        **({"rpm_versions": {rpm: v for rpm, v in pkg.rpm_versions}} if pkg.rpm_versions else {}),
    }


def _package_from_json(data: Mapping[str, Any]) -> Package:
    return Package(
        name=canonicalize_name(data["name"]),
        display_name=data["display_name"],
        rpm=data["rpm"],
        version=None if data["version"] is None else Version(data["version"]),
        version_written=data["version_written"],
        build=BuildKind(data["build"]),
        source_url=data.get("source_url"),
        patches=tuple(data.get("patches", ())),
        reasons=tuple(data.get("reasons", ())),
        requires=tuple(canonicalize_name(n) for n in data.get("requires", ())),
        system_libs=tuple(data.get("system_libs", ())),
        arches=tuple(data.get("arches", ())),
        rpm_versions=tuple(data.get("rpm_versions", {}).items()),
    )


def release_to_json(rel: Release) -> dict[str, Any]:
    return {
        "release": rel.release,
        "metapackage_version": None if rel.metapackage_version is None else str(rel.metapackage_version),
        "arches": list(rel.arches),
        "python": str(rel.python),
        "pythons": {arch: str(v) for arch, v in sorted(rel.pythons.items())},
        "source": rel.source,
        "stackmeta_version": rel.stackmeta_version,
        "packages": [_package_to_json(p) for p in sorted(rel.packages, key=lambda p: p.name)],
        "unshipped": [
            {"rpm": u.rpm, "name": u.name, "version_written": u.version_written,
             "reasons": list(u.reasons)}
            for u in sorted(rel.unshipped, key=lambda u: (u.name, u.rpm))
        ],
        "problems": [{"kind": p.kind, "message": p.message, "where": p.where} for p in rel.problems],
        **({"other_python": str(rel.other_python)} if rel.other_python is not None else {}),
    }


def release_from_json(data: Mapping[str, Any]) -> Release:
    return Release(
        release=data["release"],
        metapackage_version=(None if data["metapackage_version"] is None
                             else Version(data["metapackage_version"])),
        arches=tuple(data["arches"]),
        python=Version(data["python"]),
        pythons={arch: Version(v) for arch, v in data.get("pythons", {}).items()},
        source=data["source"],
        stackmeta_version=data["stackmeta_version"],
        packages=tuple(_package_from_json(p) for p in data["packages"]),
        unshipped=tuple(
            UnshippedPin(rpm=u["rpm"], name=canonicalize_name(u["name"]),
                         version_written=u["version_written"], reasons=tuple(u.get("reasons", ())))
            for u in data.get("unshipped", ())
        ),
        problems=tuple(
            Problem(kind=p["kind"], message=p["message"], where=p.get("where", ""))
            for p in data.get("problems", ())
        ),
        other_python=None if data.get("other_python") is None else Version(data["other_python"]),
    )


def new_document(rel: Release, keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A record document for *rel*; sections of *keep* (an older record) that still
    describe the same pins are the caller's to carry over."""
    doc: dict[str, Any] = {"format": FORMAT, "release": release_to_json(rel)}
    if keep:
        for key, value in keep.items():
            if key not in ("format", "release"):
                doc[key] = value
    return doc


def pins(rel: Release) -> Iterable[tuple[NormalizedName, Version]]:
    """The release's pins: every shipped package with a PEP 440 version."""
    for pkg in sorted(rel.packages, key=lambda p: p.name):
        if pkg.version is not None:
            yield pkg.name, pkg.version
