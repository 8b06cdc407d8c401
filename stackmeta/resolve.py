"""The nearest consistent set: the release's pins, moved as little as pip's rules demand.

A release is not consistent by pip's rules (CMSSW_14_0_0 ships numpy 1.24.3 with
tensorflow 2.12.0, which requires numpy<1.24). The metapackage pins the *nearest*
consistent set, found by ``resolvelib`` (the resolver pip is built on) over a
:class:`~stackmeta.candidates.CandidateSource`:

1. Every shipped package whose release version pip can install for the target is a
   *hard* pin (``name==version``). Packages whose release version pip cannot install (not
   on the index, a git or URL build at a version the index does not have, no usable wheel or
   sdist, Requires-Python excluding the target) are *omitted*, unless something in the set
   requires them: then they are pinned like any dependency and recorded as deviations.
2. Resolve. When the hard pins conflict, the conflict names the packages involved: the
   constrained package and the pinned packages whose requirements exclude its pin. The
   **rule**: keep the package more of the stack depends on (counted transitively over
   the release versions' metadata) and release the other one from its hard pin; on a tie,
   release the one whose name sorts first. So a dependency stays and its dependent moves:
   numpy stays at 1.24.3, tensorflow moves. Repeat until the set resolves; each
   released pin is one move.
3. A released pin is still required, and its candidates are tried *nearest first*:
   "nearest" is the distance in the project's ascending list of installable versions
   (pre-releases only when the release's own version is one) from the release version; the
   release version itself first, then distance 1 below, distance 1 above, distance 2 below,
   ... (on equal distance the lower version wins: an older version is less likely to
   require newer dependencies). resolvelib tries candidates in that order, so each moved pin
   lands on the nearest version consistent with the rest.
4. Dependencies the release does not ship are pinned too (*additions*): the newest version
   consistent with the set, as pip would pick, so pip picks nothing freely.
"""

from __future__ import annotations

import bisect
import json
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider, BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver

from stackmeta import atomic, record
from stackmeta.candidates import CandidateSource
from stackmeta.errors import RecordError, ResolutionError
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.target import Target

RULE = (
    "keep the package more of the release's stack depends on (transitively, by the release "
    "versions' metadata) and move the other one; on a tie move the one whose name sorts first; "
    "a moved pin goes to the nearest version (by position in the ascending list of installable "
    "versions, lower first on a tie) that makes the whole set consistent"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Deviation:
    """A shipped package pinned at another version than the release's."""

    name: NormalizedName
    release_version: str  # as the release writes it (may not be PEP 440)
    version: Version  # the version the nearest set pins
    reason: str  # names the requirement that forced the move


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
                 "reason": d.reason}
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
    return locks_dir / f"{name}.nearest.txt"


def load_nearest(locks_dir: Path, name: str) -> NearestSet:
    """The nearest set saved in the record *name*, or RecordError saying how to make it."""
    path = record.record_path(locks_dir, name)
    doc = record.read_document(path)
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


def save_nearest(locks_dir: Path, name: str, rel: record.Release, nearest: NearestSet) -> Path:
    """Save *nearest* into the record's "consistent" section and locks/<name>.nearest.txt."""
    record.update_section(record.record_path(locks_dir, name), SECTION, nearest.to_json())
    path = nearest_path(locks_dir, name)
    atomic.write_text(path, nearest_text(rel, nearest))
    return path


def _comment(text: str) -> list[str]:
    return [f"#   {line}" for line in textwrap.wrap(text, 100)] or ["#"]


def nearest_text(rel: record.Release, nearest: NearestSet) -> str:
    """The nearest set as a requirements file, every difference from the release explained."""
    lines = [
        f"# The nearest pip-consistent set of {rel.release} ({', '.join(rel.arches)}, Python {rel.python})",
        f"# resolved for Python {nearest.python} on {nearest.platform} against {nearest.index_url}",
        f"# {len(nearest.pins)} pins: {len(nearest.deviations)} deviations from the release, "
        f"{len(nearest.additions)} additions, {len(nearest.omissions)} omissions",
        "# which pin moves when two conflict:",
        *_comment(nearest.rule),
        "# generated by 'stackmeta resolve'; the release's own pins are in the .txt beside this file",
    ]
    deviations = {d.name: d for d in nearest.deviations}
    additions = {a.name: a for a in nearest.additions}
    for name, version in nearest.pins:
        if name in deviations:
            dev = deviations[name]
            lines.append(f"# DEVIATION: the release ships {name} {dev.release_version}:")
            lines += _comment(dev.reason)
        elif name in additions:
            by = "; ".join(additions[name].required_by)
            lines.append(f"# ADDITION: not shipped by the release, required by {by}")
        lines.append(f"{name}=={version}")
    for om in nearest.omissions:
        lines.append(f"# OMITTED: {om.name} {om.release_version}:")
        lines += _comment(om.reason)
    return "\n".join(lines) + "\n"


# -- the resolver ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Req:
    name: NormalizedName
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written (for reasons)

    @property
    def key(self) -> str:
        return _key(self.name, self.extras)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cand:
    name: NormalizedName
    extras: frozenset[str]
    version: Version

    @property
    def key(self) -> str:
        return _key(self.name, self.extras)

    def __str__(self) -> str:
        return f"{self.key} {self.version}"


def _key(name: str, extras: frozenset[str]) -> str:
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


def nearest_order(versions: Iterable[Version], release: Version | None) -> list[Version]:
    """*versions* in the order the resolver tries them for a package the release ships at
    *release*: the release version, then by distance in the ascending list of versions
    (pre-releases left out unless *release* is one), the lower first on equal distance.
    For a package the release does not ship (*release* None): newest first, as pip does."""
    allow_pre = release is not None and release.is_prerelease
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


class _Provider(AbstractProvider[_Req, _Cand, str]):
    """resolvelib's view of a CandidateSource, for one target, with hard and soft pins."""

    def __init__(self, source: CandidateSource, target: Target, *, hard: Mapping[NormalizedName, Version],
                 preferred: Mapping[NormalizedName, Version], rank: Mapping[NormalizedName, int]) -> None:
        self.source = source
        self.target = target
        self.hard = hard
        self.preferred = preferred
        self.rank = rank
        self.unknown: set[tuple[NormalizedName, Version]] = set()
        self._versions: dict[NormalizedName, list[Version]] = {}

    def versions(self, name: NormalizedName) -> list[Version]:
        if name not in self._versions:
            self._versions[name] = nearest_order(self.source.versions(name), self.preferred.get(name))
        return self._versions[name]

    def identify(self, requirement_or_candidate: _Req | _Cand) -> str:
        return requirement_or_candidate.key

    def get_preference(self, identifier: str, resolutions: Mapping[str, _Cand],
                       candidates: Mapping[str, Iterator[_Cand]], information: Mapping[str, Iterator[Any]],
                       backtrack_causes: Sequence[Any]) -> tuple[int, int, str]:
        name = canonicalize_name(identifier.split("[")[0])
        # hard pins first (one candidate each), then what more of the stack depends on
        return (0 if name in self.hard else 1, -self.rank.get(name, 0), identifier)

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[_Req]],
                     incompatibilities: Mapping[str, Iterator[_Cand]]) -> list[_Cand]:
        reqs = list(requirements[identifier])
        name, extras = reqs[0].name, reqs[0].extras
        bad = {c.version for c in incompatibilities[identifier]}
        pool = [self.hard[name]] if name in self.hard else self.versions(name)
        if name in self.hard and self.hard[name] not in self.source.versions(name):
            pool = []
        return [
            _Cand(name=name, extras=extras, version=v) for v in pool
            if v not in bad and all(r.specifier.contains(v, prereleases=True) for r in reqs)
        ]

    def is_satisfied_by(self, requirement: _Req, candidate: _Cand) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def dependencies_of(self, name: NormalizedName, version: Version,
                        extras: frozenset[str] = frozenset()) -> list[_Req]:
        deps = self.source.dependencies(name, version)
        if deps is None:
            self.unknown.add((name, version))
            return []
        out = []
        for req in deps:
            if not self.target.evaluate(req.marker, extras):
                continue
            dep = canonicalize_name(req.name)
            if dep == name and not req.extras:
                continue
            out.append(_Req(name=dep, extras=frozenset(canonicalize_name(e) for e in req.extras),
                            specifier=req.specifier, text=_req_text(req)))
        return out

    def get_dependencies(self, candidate: _Cand) -> list[_Req]:
        deps = self.dependencies_of(candidate.name, candidate.version, candidate.extras)
        if candidate.extras:
            deps.append(_Req(name=candidate.name, extras=frozenset(),
                             specifier=SpecifierSet(f"=={candidate.version}"),
                             text=f"{candidate.name}=={candidate.version}"))
        return deps


def _req_text(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}"


def dependents(graph: Mapping[NormalizedName, set[NormalizedName]]) -> dict[NormalizedName, int]:
    """For each package, how many packages of *graph* (name -> its dependencies) depend on it,
    directly or transitively."""
    reverse: dict[NormalizedName, set[NormalizedName]] = {n: set() for n in graph}
    for who, deps in graph.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(who)
    out: dict[NormalizedName, int] = {}
    for node in reverse:
        seen: set[NormalizedName] = set()
        stack = [node]
        while stack:
            for parent in reverse.get(stack.pop(), ()):
                if parent not in seen and parent != node:
                    seen.add(parent)
                    stack.append(parent)
        out[node] = len(seen)
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class _Move:
    """One pin released from its hard pin, and the conflict that released it."""

    name: NormalizedName
    reason: str


def _describe(info: Any) -> str:
    req: _Req = info.requirement
    parent: _Cand | None = info.parent
    return f"the release pins {req.text}" if parent is None else f"{parent} requires {req.text}"


def resolve(
    rel: record.Release, source: CandidateSource, target: Target, *, index_url: str,
    progress: Progress = NO_PROGRESS, max_rounds: int = 200_000,
) -> NearestSet:
    """The nearest consistent set of *rel* for *target* (see the module's docstring)."""
    shipped = {p.name: p for p in rel.packages}
    omitted: dict[NormalizedName, str] = {}
    hard: dict[NormalizedName, Version] = {}
    progress.start("versions", len(shipped))
    for name, pkg in sorted(shipped.items()):
        progress.advance()
        if pkg.version is None:
            omitted[name] = f"{pkg.version_written!r} is not a PEP 440 version: pip cannot install it"
            continue
        available = source.versions(name)
        if pkg.version in available:
            hard[name] = pkg.version
            continue
        how = ""
        if pkg.build is not record.BuildKind.PYPI:
            source_url = f" {pkg.source_url}" if pkg.source_url else ""
            how = f" (CMS builds it from {pkg.build.value}{source_url})"
        if not available:
            omitted[name] = (f"no version of {name} on the index that pip could install for {target}{how}")
        else:
            omitted[name] = (f"{name} {pkg.version} is not on the index in a form pip could install for "
                             f"{target} (absent, yanked, no usable wheel or sdist, or Requires-Python "
                             f"excludes it){how}")
    progress.done()
    preferred = {n: p.version for n, p in shipped.items() if p.version is not None}
    graph: dict[NormalizedName, set[NormalizedName]] = {}
    probe = _Provider(source, target, hard=hard, preferred=preferred, rank={})
    for name, version in hard.items():
        graph[name] = {d.name for d in probe.dependencies_of(name, version) if d.name in shipped}
    rank = dependents(graph)
    moves: list[_Move] = []
    dropped: dict[NormalizedName, str] = {}
    progress.start("resolving", None)
    try:
        for _ in range(len(shipped) + 1):
            progress.advance()
            provider = _Provider(source, target, hard=hard, preferred=preferred, rank=rank)
            roots = [_Req(name=n, extras=frozenset(), specifier=SpecifierSet(f"=={v}"), text=f"{n}=={v}")
                     for n, v in sorted(hard.items())]
            roots += [_Req(name=m.name, extras=frozenset(), specifier=SpecifierSet(), text=m.name)
                      for m in moves if m.name not in dropped]
            try:
                result = Resolver(provider, BaseReporter()).resolve(roots, max_rounds=max_rounds)
            except ResolutionImpossible as exc:
                move = _choose_move(exc.causes, hard, rank, shipped)
                if move is not None:
                    del hard[move.name]
                    moves.append(move)
                    continue
                victim = _choose_drop(exc.causes, moves, dropped, rank)
                if victim is None:
                    raise ResolutionError(
                        f"{rel.release}: no consistent set for {target}: "
                        + "; ".join(sorted({_describe(c) for c in exc.causes}))
                        + ": check the index, or the release's pins"
                    ) from None
                dropped[victim] = ("no version is consistent with the rest of the set: "
                                   + "; ".join(sorted({_describe(c) for c in exc.causes})))
                continue
            except ResolutionTooDeep:
                raise ResolutionError(
                    f"{rel.release}: the resolver gave up after {max_rounds} rounds for {target}: "
                    "report it with the record"
                ) from None
            return _nearest_set(rel, result, provider, target, index_url=index_url,
                                omitted=omitted, moves=moves, dropped=dropped)
    finally:
        progress.done()
    raise ResolutionError(f"{rel.release}: no consistent set after moving every pin: report it")


def _choose_move(causes: Iterable[Any], hard: Mapping[NormalizedName, Version],
                 rank: Mapping[NormalizedName, int], shipped: Mapping[NormalizedName, Any]) -> _Move | None:
    """The hard pin to release for this conflict: of the packages in it, the one fewer of
    the stack depends on (then the one whose name sorts first)."""
    involved: dict[NormalizedName, str] = {}
    for info in causes:
        req: _Req = info.requirement
        parent: _Cand | None = info.parent
        if parent is None:
            continue
        pinned = hard.get(req.name)
        if pinned is not None and req.specifier.contains(pinned, prereleases=True):
            continue  # this requirement is not part of the conflict
        if parent.name in hard:
            kept = f", which excludes the release's {req.name} {pinned}" if pinned is not None else ""
            involved.setdefault(parent.name, f"{parent} requires {req.text}{kept}")
        if pinned is not None:
            involved.setdefault(req.name, f"{parent} requires {req.text}")
    candidates = [n for n in involved if n in hard]
    if not candidates:
        return None
    # keep what more of the stack depends on: move the one with the fewest dependents
    victim = min(candidates, key=lambda n: (rank.get(n, 0), n))
    return _Move(name=victim, reason=involved[victim])


def _choose_drop(causes: Iterable[Any], moves: Sequence[_Move], dropped: Mapping[NormalizedName, str],
                 rank: Mapping[NormalizedName, int]) -> NormalizedName | None:
    causes = list(causes)
    moved = {m.name for m in moves} - set(dropped)
    involved = {c.requirement.name for c in causes} | {c.parent.name for c in causes if c.parent is not None}
    candidates = sorted(moved & involved, key=lambda n: (rank.get(n, 0), n))
    return candidates[0] if candidates else None


def _nearest_set(
    rel: record.Release, result: Any, provider: _Provider, target: Target, *, index_url: str,
    omitted: Mapping[NormalizedName, str], moves: Sequence[_Move], dropped: Mapping[NormalizedName, str],
) -> NearestSet:
    pins: dict[NormalizedName, Version] = {}
    for cand in result.mapping.values():
        pins[cand.name] = cand.version
    parents: dict[NormalizedName, set[tuple[str, str, SpecifierSet]]] = {}
    for criterion in result.criteria.values():
        for info in criterion.information:
            if info.parent is not None:
                req = info.requirement
                parents.setdefault(req.name, set()).add((str(info.parent), req.text, req.specifier))
    shipped = {p.name: p for p in rel.packages}
    move_reason = {m.name: m.reason for m in moves}
    deviations: list[Deviation] = []
    additions: list[Addition] = []
    for name, version in sorted(pins.items()):
        pkg = shipped.get(name)
        required_by = sorted(f"{who} ({text})" for who, text, _ in parents.get(name, ()))
        if pkg is None:
            additions.append(Addition(name=name, version=version, required_by=tuple(required_by)))
            continue
        if pkg.version == version:
            continue
        if name in omitted:
            reason = f"{omitted[name]}; pinned because {'; '.join(required_by)}"
        else:
            why = sorted(f"{who} requires {text}" for who, text, spec in parents.get(name, ())
                         if pkg.version is not None and not spec.contains(pkg.version, prereleases=True))
            assert pkg.version is not None
            for dep in provider.dependencies_of(name, pkg.version):
                have = pins.get(dep.name)
                if have is not None and not dep.specifier.contains(have, prereleases=True):
                    kept = shipped.get(dep.name)
                    whose = "the release's " if kept is not None and kept.version == have else ""
                    why.append(
                        f"{name} {pkg.version} requires {dep.text}, but {whose}{dep.name} {have} "
                        "is kept (more of the stack depends on it)" if whose else
                        f"{name} {pkg.version} requires {dep.text}, but {dep.name} is pinned at {have}"
                    )
            reason = "; ".join(why) or move_reason.get(name, "moved with the packages it depends on")
        deviations.append(Deviation(name=name, release_version=pkg.version_written, version=version,
                                    reason=reason))
    omissions = [Omission(name=n, release_version=shipped[n].version_written, reason=why)
                 for n, why in sorted({**omitted, **dropped}.items()) if n not in pins]
    return NearestSet(
        release=rel.release, python=target.python, platform=target.platform, index_url=index_url,
        rule=RULE, pins=tuple(sorted(pins.items())), deviations=tuple(deviations),
        additions=tuple(additions), omissions=tuple(omissions),
    )
