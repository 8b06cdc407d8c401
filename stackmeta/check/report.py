"""What a check found: one :class:`PinResult` per pin, the conflicts, the unpinned
dependencies and Python problems, together a :class:`CheckReport`, and its JSON form (the
record's ``"check"`` section, ``check --json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from stackmeta import __version__
from stackmeta.errors import IndexAccessError, RecordError

# An index that does not know more than this share of the projects a release builds from PyPI
# sources is not the release's index (a typo: https://pypi.org/simpl answers 404 for every project).
MAX_UNKNOWN = 0.5


def require_known(unknown: Sequence[str], total: int, index_url: str, nothing_done: str) -> None:
    """IndexAccessError when the index at *index_url* does not know (404) more than
    :data:`MAX_UNKNOWN` of the *total* projects the release builds from PyPI sources, *unknown*
    among them."""
    if total and len(unknown) > MAX_UNKNOWN * total:
        some = ", ".join(sorted(unknown)[:3]) + (", ..." if len(unknown) > 3 else "")
        raise IndexAccessError(
            f"{index_url} does not know {len(unknown)} of the release's {total} projects from PyPI ({some}): "
            f"it is not the release's index (a typo in --index-url?); {nothing_done}"
        )


def require_reachable(errors: Sequence[str | None], nothing_done: str) -> None:
    """IndexAccessError, in one line, when the index answered none of the release's project
    pages (*errors*: each asked pin's error, None where it answered): an unreachable index or a
    wrong URL, not 300 separate failures."""
    if errors and all(errors):
        raise IndexAccessError(f"the index answered none of the release's {len(errors)} project pages, "
                               f"the first: {errors[0]}; {nothing_done}")


class PinStatus(StrEnum):
    WHEEL = "wheel"  # a wheel usable for the target
    SDIST_ONLY = "sdist-only"  # pip would have to build it
    NO_PROJECT = "no-project"  # the index does not have the project
    NO_VERSION = "no-version"  # ... nor that version
    NO_FILE = "no-usable-file"  # files, but none pip could use for the target
    NOT_PEP440 = "not-pep440"  # the release's version is not a PEP 440 version
    MISSING = "missing"  # the index failed to answer: result missing

    @property
    def installable(self) -> bool:
        return self in (PinStatus.WHEEL, PinStatus.SDIST_ONLY)


@dataclass(frozen=True, kw_only=True, slots=True)
class FileInfo:
    filename: str
    url: str
    sha256: str | None
    size: int | None
    kind: str  # wheel / sdist / other
    usable: bool  # pip could install it for the target
    yanked: bool = False
    requires_python: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PinResult:
    """One package of the closure: a pin of the release, or an unpinned dependency's pick."""

    name: NormalizedName
    version: str  # the pinned (or picked) version, as written when not PEP 440
    status: PinStatus
    pinned: bool = True
    build: str = "pypi"
    url: str = ""  # the project page
    yanked: bool = False
    yanked_reason: str | None = None
    files: tuple[FileInfo, ...] = ()  # the files of this version
    metadata_file: str | None = None
    metadata_source: str | None = None  # pep658 / range / download / pkg-info / unknown
    requires_dist: tuple[str, ...] | None = None  # None: dependencies unknown
    requires_python: str | None = None  # from the metadata
    extras: tuple[str, ...] = ()  # extras the closure requests of it
    notes: tuple[str, ...] = ()
    error: str | None = None  # why a result is missing

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Conflict:
    requirer: NormalizedName
    requirer_version: str
    requirement: str
    dependency: NormalizedName
    pinned: str  # the release's version of the dependency
    requirer_pinned: bool = True

    @property
    def message(self) -> str:
        who = "" if self.requirer_pinned else " (unpinned, as pip would pick it)"
        return (f"{self.requirer}=={self.requirer_version}{who} requires {self.requirement}; "
                f"the release pins {self.dependency}=={self.pinned}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Unpinned:
    """A dependency the release does not pin: pip would pick it freely."""

    name: NormalizedName
    required_by: tuple[str, ...]  # "tensorflow==2.12.0: libclang>=13.0.0"
    specifier: str  # all requirements on it together
    picked: str | None  # what pip would pick from the index, None when nothing fits

    @property
    def message(self) -> str:
        pick = (f"pip would pick {self.picked}" if self.picked and self.picked != "?"
                else "the index failed to answer" if self.picked else "NO version on the index satisfies it")
        by = ", ".join(self.required_by)
        return f"{self.name}{self.specifier or ''} is not pinned ({pick}); required by {by}"


@dataclass(frozen=True, kw_only=True, slots=True)
class PythonProblem:
    name: NormalizedName
    version: str
    requires_python: str
    python: str
    where: str  # "metadata" or the filename

    @property
    def message(self) -> str:
        return (f"{self.name}=={self.version} requires Python {self.requires_python} ({self.where}); "
                f"the release's Python is {self.python}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckReport:
    release: str
    lock_name: str
    python: str
    platform: str
    index_url: str
    pins: tuple[PinResult, ...]
    picks: tuple[PinResult, ...] = ()  # unpinned dependencies as pip would pick them
    conflicts: tuple[Conflict, ...] = ()
    unpinned: tuple[Unpinned, ...] = ()
    python_problems: tuple[PythonProblem, ...] = ()
    stackmeta_version: str = __version__
    seconds: float = 0.0
    requests: int = 0

    # -- groups --------------------------------------------------------------------------

    @property
    def not_installable(self) -> tuple[PinResult, ...]:
        return tuple(p for p in self.pins if p.status in (
            PinStatus.NO_PROJECT, PinStatus.NO_VERSION, PinStatus.NO_FILE, PinStatus.NOT_PEP440))

    @property
    def missing(self) -> tuple[PinResult, ...]:
        """Packages whose results are missing: the index failed (see each ``error``)."""
        return tuple(p for p in (*self.pins, *self.picks) if p.error)

    @property
    def sdist_only(self) -> tuple[PinResult, ...]:
        return tuple(p for p in self.pins if p.status is PinStatus.SDIST_ONLY)

    @property
    def unknown_dependencies(self) -> tuple[PinResult, ...]:
        return tuple(p for p in self.pins if p.status.installable and p.requires_dist is None and not p.error)

    @property
    def yanked(self) -> tuple[PinResult, ...]:
        return tuple(p for p in self.pins if p.yanked)

    @property
    def fine(self) -> tuple[PinResult, ...]:
        bad = ({c.requirer for c in self.conflicts} | {c.dependency for c in self.conflicts}
               | {p.name for p in self.python_problems})
        return tuple(p for p in self.pins if p.status is PinStatus.WHEEL and not p.error and not p.yanked
                     and p.name not in bad and p.requires_dist is not None)

    @property
    def blocking(self) -> bool:
        """Something prevents pip from installing the pins as they are."""
        return bool(self.not_installable or self.conflicts or self.python_problems
                    or self.unsatisfiable)

    @property
    def unsatisfiable(self) -> tuple[Unpinned, ...]:
        """Unpinned dependencies that no version on the index satisfies (or not on it at all)."""
        return tuple(u for u in self.unpinned if u.picked is None)

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)

    @property
    def from_pypi(self) -> tuple[PinResult, ...]:
        """The pins CMS builds from PyPI sources (those from git or elsewhere may not be there)."""
        return tuple(p for p in self.pins if p.build == "pypi")

    @property
    def unknown_projects(self) -> tuple[NormalizedName, ...]:
        """The pins built from PyPI sources whose project the index does not have (404)."""
        return tuple(p.name for p in self.from_pypi if p.status is PinStatus.NO_PROJECT)

    def pin(self, name: str) -> PinResult:
        wanted = canonicalize_name(name)
        for p in (*self.pins, *self.picks):
            if p.name == wanted:
                return p
        raise KeyError(name)

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckReport:
        try:
            return CheckReport(
                **{k: data[k] for k in ("release", "lock_name", "python", "platform", "index_url")},
                pins=tuple(_pin_from_json(p) for p in data["pins"]),
                picks=tuple(_pin_from_json(p) for p in data.get("picks", ())),
                conflicts=tuple(Conflict(**c) for c in data.get("conflicts", ())),
                unpinned=tuple(Unpinned(**{**u, "required_by": tuple(u["required_by"])})
                               for u in data.get("unpinned", ())),
                python_problems=tuple(PythonProblem(**p) for p in data.get("python_problems", ())),
                stackmeta_version=data.get("stackmeta_version", ""),
                seconds=data.get("seconds", 0.0),
                requests=data.get("requests", 0),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # what a damaged section gives
            raise RecordError(f"malformed check section ({exc!r}): run 'stackmeta check' again") from None


_FIELDS: dict[type, tuple[str, ...]] = {}


def _to_json(obj: Any) -> Any:
    """Dataclasses as dicts (fields in order), enums as their values, tuples as lists."""
    t = type(obj)
    if t is str or t is int or t is bool or t is float or obj is None:  # most of a report
        return obj
    names = _FIELDS.get(t)
    if names is None and hasattr(t, "__dataclass_fields__"):
        names = _FIELDS[t] = tuple(f.name for f in fields(t))
    if names is not None:
        return {n: _to_json(getattr(obj, n)) for n in names}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [_to_json(x) for x in obj]
    return obj


def _pin_from_json(d: Mapping[str, Any]) -> PinResult:
    rd = d.get("requires_dist")
    return PinResult(
        name=canonicalize_name(d["name"]), version=d["version"], status=PinStatus(d["status"]),
        pinned=d.get("pinned", True), build=d.get("build", "pypi"), url=d.get("url", ""),
        yanked=d.get("yanked", False), yanked_reason=d.get("yanked_reason"),
        files=tuple(FileInfo(**f) for f in d.get("files", ())),
        metadata_file=d.get("metadata_file"), metadata_source=d.get("metadata_source"),
        requires_dist=None if rd is None else tuple(rd), requires_python=d.get("requires_python"),
        extras=tuple(d.get("extras", ())), notes=tuple(d.get("notes", ())), error=d.get("error"),
    )
