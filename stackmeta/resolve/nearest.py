"""The nearest consistent set of a release: its pins, deviations, additions and omissions, the
rule that chose them (:data:`RULE`; the search is :mod:`stackmeta.resolve.search`), and the
record's ``"consistent"`` section and ``<name>.nearest.txt`` that hold it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta import atomic, record
from stackmeta.errors import RecordError

RULE = (
    "keep the package more of the release's stack depends on (transitively, by the release "
    "versions' metadata) and move the other one; on a tie move the one whose name sorts first; "
    "but when no version of the requiring package accepts the kept pin, move the required one "
    "instead; when every version of a moved package conflicts with a kept pin, it goes to the "
    "version conflicting with the fewest kept pins, those fewer of the stack depends on first, "
    "and those pins move too; a moved pin goes to the nearest version (by position in the "
    "ascending list of installable versions, lower first on a tie; versions with a wheel for the "
    "target before sdist-only ones) that makes the whole set consistent; finally single changes "
    "(a left-out package moved instead; a moved pin put back, or pinned at its version across "
    "the fewest release series, with what conflicts with it moved) are kept when they leave out "
    "fewer packages, move pins less far (a moved pin counts one, and one more for every release "
    "series, major.minor, it crosses), move fewer pins, or move pins fewer of the stack depend on"
)


def crosses_major(old: str | Version, new: Version) -> bool:
    """Whether a move from *old* to *new* crosses a major version (keras 2.11.0 -> 3.2.0): the
    first release number differs. Calendar versions (a first number of 1000 or more: dask
    2023.4.0 -> 2025.9.0) have no major version to cross; an unparsable *old* does not count."""
    try:
        before = old if isinstance(old, Version) else Version(old)
    except InvalidVersion:
        return False
    first, then = before.release[0], new.release[0]
    return first != then and max(first, then) < 1000


def major_flag(old: str | Version, new: Version) -> str:
    """" (NEW MAJOR VERSION)" where a move crosses a major version, else "": the one spelling
    of the flag in resolve's output, .nearest.txt, the record's readers and the overlay plan."""
    return " (NEW MAJOR VERSION)" if crosses_major(old, new) else ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Deviation:
    """A shipped package pinned at another version than the release's."""

    name: NormalizedName
    release_version: str  # as the release writes it (may not be PEP 440)
    version: Version  # the version the nearest set pins
    reason: str  # names the requirement that forced the move

    @property
    def new_major(self) -> bool:
        """The move crosses a major version (another API, likely)."""
        return crosses_major(self.release_version, self.version)

    @property
    def shown(self) -> str:
        """'keras 2.11.0 -> 3.2.0 (NEW MAJOR VERSION)', or without the flag."""
        flag = major_flag(self.release_version, self.version)
        return f"{self.name} {self.release_version} -> {self.version}{flag}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Addition:
    """A dependency the release does not ship, pinned so that pip picks nothing freely."""

    name: NormalizedName
    version: Version
    required_by: tuple[str, ...]  # "tensorflow 2.13.0 (libclang>=13.0.0)"


@dataclass(frozen=True, kw_only=True, slots=True)
class Omission:
    """A shipped package the metapackage leaves out, because pip cannot install it."""

    name: NormalizedName
    release_version: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class NearestSet:
    """The consistent set a metapackage pins, with every difference from the release."""

    release: str
    python: Version  # the target's Python
    platform: str
    index_url: str
    rule: str
    pins: tuple[tuple[NormalizedName, Version], ...]  # sorted by name
    deviations: tuple[Deviation, ...] = ()
    additions: tuple[Addition, ...] = ()
    omissions: tuple[Omission, ...] = ()

    @property
    def pin_map(self) -> dict[NormalizedName, Version]:
        return dict(self.pins)

    def deviation(self, name: str) -> Deviation | None:
        wanted = canonicalize_name(name)
        return next((d for d in self.deviations if d.name == wanted), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "python": str(self.python),
            "platform": self.platform,
            "index_url": self.index_url,
            "rule": self.rule,
            "pins": {name: str(version) for name, version in self.pins},
            "deviations": [
                {"name": d.name, "release_version": d.release_version, "version": str(d.version),
                 "reason": d.reason, **({"new_major": True} if d.new_major else {})}
                for d in self.deviations
            ],
            "additions": [
                {"name": a.name, "version": str(a.version), "required_by": list(a.required_by)}
                for a in self.additions
            ],
            "omissions": [
                {"name": o.name, "release_version": o.release_version, "reason": o.reason}
                for o in self.omissions
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NearestSet:
        return cls(
            release=data["release"],
            python=Version(data["python"]),
            platform=data["platform"],
            index_url=data["index_url"],
            rule=data["rule"],
            pins=tuple(sorted((canonicalize_name(n), Version(v)) for n, v in data["pins"].items())),
            deviations=tuple(
                Deviation(name=canonicalize_name(d["name"]), release_version=d["release_version"],
                          version=Version(d["version"]), reason=d["reason"])
                for d in data.get("deviations", ())
            ),
            additions=tuple(
                Addition(name=canonicalize_name(a["name"]), version=Version(a["version"]),
                         required_by=tuple(a["required_by"]))
                for a in data.get("additions", ())
            ),
            omissions=tuple(
                Omission(name=canonicalize_name(o["name"]), release_version=o["release_version"],
                         reason=o["reason"])
                for o in data.get("omissions", ())
            ),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)


# -- the record's "consistent" section and locks/<name>.nearest.txt ----------------------

SECTION = "consistent"


def nearest_path(locks_dir: Path, name: str) -> Path:
    return record.lock_file(locks_dir, name, ".nearest.txt")


def load_nearest(locks_dir: Path, name: str) -> NearestSet:
    """The nearest set saved in the record *name*, or RecordError saying how to make it."""
    path = record.record_path(locks_dir, name)
    return nearest_of(record.read_document(path), path, name)


def nearest_of(doc: Mapping[str, Any], path: Path, name: str) -> NearestSet:
    """The nearest set in the document read from *path* (the record *name*); RecordError
    saying how to make it when it is missing or malformed."""
    data = doc.get(SECTION)
    if data is None:
        raise RecordError(
            f"{path} has no nearest consistent set: run 'stackmeta resolve {name}' first"
        )
    try:
        return NearestSet.from_json(data)
    except (KeyError, TypeError, ValueError, InvalidVersion) as exc:
        raise RecordError(
            f"{path}: malformed {SECTION!r} section ({exc!r}): run 'stackmeta resolve {name}' again"
        ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedRecord:
    """A record read once: its document (e.g. for the check section), release and nearest set."""

    name: str
    doc: Mapping[str, Any]
    release: record.Release
    nearest: NearestSet


def load_resolved(locks_dir: Path, name: str) -> ResolvedRecord:
    """The record *name* with its nearest set, from one read of the file."""
    doc, rel = record.load(locks_dir, name)
    return ResolvedRecord(name=name, doc=doc, release=rel,
                          nearest=nearest_of(doc, record.record_path(locks_dir, name), name))


def save_nearest(locks_dir: Path, name: str, rel: record.Release, nearest: NearestSet) -> Path:
    """Save *nearest* into the record's "consistent" section and locks/<name>.nearest.txt."""
    record.update_section(record.record_path(locks_dir, name), SECTION, nearest.to_json())
    path = nearest_path(locks_dir, name)
    atomic.write_text(path, nearest_text(rel, nearest))
    return path


def comment_lines(text: str) -> list[str]:
    """*text* as wrapped comment lines of a requirements file."""
    return [f"#   {line}" for line in textwrap.wrap(text, 100)] or ["#"]


def nearest_text(rel: record.Release, nearest: NearestSet) -> str:
    """The nearest set as a requirements file, every difference from the release explained."""
    lines = [
        f"# The nearest pip-consistent set of {rel.release} ({', '.join(rel.arches)}, Python {rel.python})",
        f"# resolved for Python {nearest.python} on {nearest.platform} against {nearest.index_url}",
        f"# {len(nearest.pins)} pins: {len(nearest.deviations)} deviations from the release, "
        f"{len(nearest.additions)} additions, {len(nearest.omissions)} omissions",
        "# which pin moves when two conflict:",
        *comment_lines(nearest.rule),
        "# generated by 'stackmeta resolve'; the release's own pins are in the .txt beside this file",
    ]
    deviations = {d.name: d for d in nearest.deviations}
    additions = {a.name: a for a in nearest.additions}
    for name, version in nearest.pins:
        if name in deviations:
            dev = deviations[name]
            major = major_flag(dev.release_version, dev.version)
            lines.append(f"# DEVIATION{major}: the release ships {name} {dev.release_version}:")
            lines += comment_lines(dev.reason)
        elif name in additions:
            by = "; ".join(additions[name].required_by)
            lines.append(f"# ADDITION: not shipped by the release, required by {by}")
        lines.append(f"{name}=={version}")
    for om in nearest.omissions:
        lines.append(f"# OMITTED: {om.name} {om.release_version}:")
        lines += comment_lines(om.reason)
    return "\n".join(lines) + "\n"


# -- the resolver ----------------------------------------------------------------------
