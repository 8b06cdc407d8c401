"""A package across the committed history: which version each release ships, which releases ship
a match of a requirement (``stackmeta history numpy``, ``stackmeta which 'awkward>=2'``).

Reads the constraints locks of ``locks/all/`` (every release of the cmsdist history, see the
README), or of the locks folder itself when it has no ``all/``: the header says the release and
its Python, each line a pin and its marker. Pure over the lock texts but for :func:`load`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta.errors import RecordError, UsageError
from stackmeta.release import parse_release, release_order

ALL = "all"  # the subfolder of locks/ with every release's lock


@dataclass(frozen=True, kw_only=True, slots=True)
class Lock:
    """One committed constraints lock, as the history reads it."""

    name: str  # CMSSW_10_6_0-py2
    release: str  # CMSSW_10_6_0
    python: Version  # the release's interpreter for this stack
    pins: dict[NormalizedName, tuple[tuple[Version, str], ...]]  # name -> (version, marker) ...

    @property
    def plain(self) -> bool:
        """A release itself, not a flavour (_HLT) or a tag of its build (-tool-conf)."""
        try:
            parsed = parse_release(self.release)
        except UsageError:
            return True
        return parsed.flavour is None and parsed.kind is None

    def shipped(self, name: NormalizedName) -> str | None:
        """The version(s) of *name* as text: ``1.24.3``, or ``1.24.3 ; platform_machine ...`` per line."""
        found = self.pins.get(name)
        if not found:
            return None
        if len(found) == 1:
            return str(found[0][0])
        return ", ".join(f"{v} ({marker})" if marker else str(v) for v, marker in found)


def parse_lock(name: str, text: str) -> Lock:
    """A lock from its text (the header stackmeta writes, then ``name==version [; marker]`` lines)."""
    release = python = None
    pins: dict[NormalizedName, list[tuple[Version, str]]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if lineno == 1 and line.startswith("# ") and ":" in line:
            release = line[2:].split(":", 1)[0]
        elif line.startswith("# Python: "):
            python = line[len("# Python: "):].split()[0].rstrip(",")
        if not line or line.startswith("#"):
            continue
        pin, _, marker = line.partition(";")
        pkg, sep, version = pin.partition("==")
        try:
            if not sep:
                raise InvalidVersion(pin)
            pinned = Version(version.strip())
        except InvalidVersion:
            raise RecordError(
                f"{name}.txt:{lineno}: not a 'name==version' pin: export the release again") from None
        pins.setdefault(canonicalize_name(pkg.strip()), []).append((pinned, marker.strip()))
    if release is None or python is None:
        raise RecordError(f"{name}.txt: no stackmeta header (release, Python): export the release again")
    try:
        interpreter = Version(python)
    except InvalidVersion:
        raise RecordError(
            f"{name}.txt: Python {python!r} is not a version: export the release again") from None
    return Lock(name=name, release=release, python=interpreter,
                pins={k: tuple(v) for k, v in pins.items()})


def folder(locks_dir: Path) -> Path:
    """Where the history's locks are: ``<locks>/all`` when it exists, else *locks_dir*."""
    return locks_dir / ALL if (locks_dir / ALL).is_dir() else locks_dir


def load(locks_dir: Path) -> list[Lock]:
    """Every constraints lock of the history folder, in release order (I/O edge)."""
    where = folder(locks_dir)
    if not where.is_dir():
        raise UsageError(f"--locks-dir {locks_dir}: no such folder: give the folder of the committed locks")
    paths = [p for p in where.glob("*.txt") if not p.name.endswith((".hashes.txt", ".nearest.txt"))]
    if not paths:
        raise UsageError(f"no constraints locks in {where}: run 'stackmeta export --all' first "
                         "(or pass --locks-dir where the locks are)")
    locks = [parse_lock(p.stem, p.read_text("utf-8")) for p in paths]
    return sorted(locks, key=lambda lock: (release_order(lock.release), lock.release, lock.name))


def select(locks: Iterable[Lock], *, python: int | None = None, everything: bool = False) -> list[Lock]:
    """The locks a question is about: one per release, the stack of Python *python* (default:
    each release's default stack, the lock named after it); flavours and tags of builds only
    with *everything*."""
    out = []
    for lock in locks:
        if not everything and not lock.plain:
            continue
        if python is None:
            if lock.name != lock.release:
                continue
        elif lock.python.major != python:
            continue
        out.append(lock)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Span:
    """A run of consecutive releases that ship one version (or do not ship the package)."""

    version: str | None  # None: not shipped
    first: str
    last: str
    releases: int


def history(locks: Sequence[Lock], package: str) -> list[Span]:
    """The versions of *package* along *locks* (in release order), a span per change."""
    name = canonicalize_name(package)
    spans: list[Span] = []
    for lock in locks:
        version = lock.shipped(name)
        if spans and spans[-1].version == version:
            last = spans[-1]
            spans[-1] = Span(version=version, first=last.first, last=lock.release, releases=last.releases + 1)
        else:
            spans.append(Span(version=version, first=lock.release, last=lock.release, releases=1))
    if not any(span.version is not None for span in spans):
        return []
    return spans


@dataclass(frozen=True, kw_only=True, slots=True)
class Match:
    release: str
    lock: str
    version: Version
    python: Version


def parse_requirement(text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise UsageError(f"{text!r} is not a requirement ({exc}): give e.g. 'awkward>=2'") from None
    if req.url or req.extras or req.marker:
        raise UsageError(f"{text!r}: give a name and a version specifier only, e.g. 'awkward>=2'")
    return req


def which(locks: Sequence[Lock], requirement: Requirement) -> list[Match]:
    """The locks that pin a version of *requirement*'s project that its specifier admits
    (pre-releases included: a release ships what it ships)."""
    name = canonicalize_name(requirement.name)
    out = []
    for lock in locks:
        for version, _marker in lock.pins.get(name, ()):
            if requirement.specifier.contains(version, prereleases=True):
                out.append(Match(release=lock.release, lock=lock.name, version=version, python=lock.python))
                break
    return out
