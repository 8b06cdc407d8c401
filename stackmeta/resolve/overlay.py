"""The nimble overlay: a release's nearest consistent set with a user's overrides and additions.

``stackmeta env CMSSW_9_3_0 DIR --override Theano==0.9.0 --add coffea`` makes a virtualenv
holding the release's nearest set (the record's "consistent" section) with Theano at 0.9.0
and coffea added. Before anything is installed, :func:`plan` checks by the packages'
metadata that the overrides and additions fit the rest, with resolvelib over a
:class:`~stackmeta.resolve.candidates.CandidateSource`:

- the overrides are *fixed* (``name==version``) and the additions are requirements that
  must hold; neither ever moves;
- every other pin of the nearest set starts as a hard pin. When the set does not resolve,
  the conflict names the pins that exclude a fixed requirement (or that a fixed package
  excludes): one of them is released from its hard pin (of several, the one fewer of the
  set depends on, then the name that sorts first), and the resolver tries its versions
  nearest first from the set's version (:func:`stackmeta.index.source.nearest_order`). Repeat
  until the set resolves. Each pin that ends at another version is a :class:`Move`.
- dependencies of the overrides and additions that the set does not hold are pinned at the
  newest version consistent with the rest, as pip would pick them.

What the environment's cell (its Python and platform) cannot install is settled first, by the
source's judgement (:meth:`~stackmeta.index.source.IndexSource.installable`: a wheel for the
cell, or an sdist that builds into a pure-Python wheel; a source that cannot judge says yes): a
pin whose version the cell cannot install, of which no other version is installable either, is
*left out* up front with the judgement's one-line reason (:class:`LeftOut`, :func:`cell_left_out`),
and so is every pin that requires a package left out; a pin of which another version is
installable is released like any moved pin (a :class:`Move`, whose reason is the judgement's).

This module is pure: it reads a CandidateSource and returns a :class:`Plan`. Creating the
environment is :mod:`stackmeta.resolve.venv`'s work.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep

from stackmeta.errors import ResolutionError, UsageError, quoted
from stackmeta.index.source import nearest_order
from stackmeta.resolve.candidates import CandidateSource
from stackmeta.resolve.nearest import NearestSet, crosses_major, major_flag
from stackmeta.resolve.provider import Cand, Memo, Provider, Req, dependents
from stackmeta.resolve.resolution import FastResolver
from stackmeta.target import Target

ENV_RECORD = "stackmeta-env.json"  # in the environment's folder: what it was made from
ENV_FORMAT = 1


# -- what the user asks for --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Override:
    """``--override NAME==VERSION``: a pin of the set replaced by another version."""

    name: NormalizedName
    version: Version
    text: str  # as the user wrote it: "Theano==0.9.0"


def parse_override(text: str) -> Override:
    """``NAME==VERSION`` or UsageError."""
    try:
        req = Requirement(text)
    except InvalidRequirement:
        req = None
    specs = list(req.specifier) if req is not None else []
    if req is None or req.extras or req.marker or req.url or len(specs) != 1 or specs[0].operator != "==":
        raise UsageError(f"--override {text!r}: write NAME==VERSION, e.g. --override Theano==0.9.0")
    try:
        version = Version(specs[0].version)
    except InvalidVersion:
        raise UsageError(f"--override {text!r}: {specs[0].version!r} is not a version "
                         "(no wildcards): write NAME==VERSION") from None
    return Override(name=canonicalize_name(req.name), version=version, text=text)


def parse_addition(text: str) -> Requirement:
    """``--add REQ`` (any PEP 508 requirement without a URL) or UsageError."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise UsageError(f"--add {text!r} is not a requirement ({quoted(exc)}): write e.g. --add coffea "
                         "or --add 'coffea>=0.7'") from None
    if req.url:
        raise UsageError(f"--add {text!r}: a URL requirement cannot be checked by its metadata: "
                         "put the project on an index and add it by name")
    return req


# -- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Move:
    """A pin of the nearest set the overrides or additions force to another version."""

    name: NormalizedName
    old: Version  # the nearest set's version
    new: Version
    reason: str  # "theano 0.9.0 requires numpy>=1.9.1"

    @property
    def new_major(self) -> bool:
        """The move crosses a major version (keras 2.11.0 -> 3.2.0)."""
        return crosses_major(self.old, self.new)

    def __str__(self) -> str:
        return f"{self.name} {self.old} -> {self.new}{major_flag(self.old, self.new)} ({self.reason})"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewPin:
    """A package the set does not hold: an addition, or a dependency of one."""

    name: NormalizedName
    version: Version
    required_by: tuple[str, ...]  # "--add coffea", "coffea 0.7.0 (awkward>=1)"


@dataclass(frozen=True, kw_only=True, slots=True)
class LeftOut:
    """A package of the set the environment does not hold, because its cell cannot install it."""

    name: NormalizedName
    version: str  # the set's version (the release's, as written, for the set's own omissions)
    reason: str  # one line: the judgement's own ("... its sdist does not build: ... cuda.h ...")
    by: Literal["resolve", "env"]  # the set's omission ('stackmeta resolve'), or judged for the env

    def __str__(self) -> str:
        return f"{self.name} {self.version}: {self.reason}"


@dataclass(frozen=True, kw_only=True, slots=True)
class FarAddition:
    """An addition that lands far from its newest version (another major version, or years
    older), and what getting the newest would take."""

    name: NormalizedName
    version: Version
    newest: Version
    why: str  # "another major version; 3.4 years older"
    needs: str  # "awkward 2.1.2 -> 2.8.12 (...); ..." or the clash that rules it out

    def __str__(self) -> str:
        return (f"--add {self.name} got {self.name} {self.version}, far from its newest {self.newest} "
                f"({self.why}); {self.name}=={self.newest} needs: {self.needs}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What the environment will hold, and how it differs from the release's nearest set."""

    release: str
    target: Target
    index_url: str
    overrides: tuple[Override, ...]
    additions: tuple[Requirement, ...]
    pins: tuple[tuple[NormalizedName, Version], ...]  # everything to install, sorted by name
    moves: tuple[Move, ...] = ()
    new: tuple[NewPin, ...] = ()
    excluded: tuple[NormalizedName, ...] = ()  # pins of the set left out (--exclude)
    left_out: tuple[LeftOut, ...] = ()  # what the cell cannot install: the set's omissions, then the env's
    unknown: tuple[str, ...] = ()  # "name version" whose dependencies could not be read
    far: tuple[FarAddition, ...] = ()  # additions far from their newest version

    @property
    def pin_map(self) -> dict[NormalizedName, Version]:
        return dict(self.pins)

    @property
    def fits(self) -> bool:
        """The overrides and additions fit the rest of the set without moving any pin."""
        return not self.moves

    @property
    def requested(self) -> str:
        """"Theano==0.9.0, --add coffea" (what the user asked for, as written)."""
        parts = [o.text for o in self.overrides] + [f"--add {a}" for a in self.additions]
        parts += [f"--exclude {name}" for name in self.excluded]
        return ", ".join(parts) or "nothing"

    def moves_message(self) -> str:
        """One line: 'Theano==0.9.0 needs: numpy 1.11.0 -> 1.13.3 (theano 0.9.0 requires ...); ...'."""
        who = self.requested if self.requested != "nothing" else str(self.target)
        return f"{who} needs: " + "; ".join(str(m) for m in self.moves)

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "python": str(self.target.python),
            "platform": self.target.platform,
            "index_url": self.index_url,
            "requested": self.requested,
            "overrides": {o.name: str(o.version) for o in self.overrides},
            "additions": [str(a) for a in self.additions],
            "moves": [{"name": m.name, "from": str(m.old), "to": str(m.new), "reason": m.reason,
                       **({"new_major": True} if m.new_major else {})} for m in self.moves],
            "excluded": list(self.excluded),
            "left_out": [{"name": lo.name, "version": lo.version, "reason": lo.reason, "by": lo.by}
                         for lo in self.left_out],
            "new": [{"name": n.name, "version": str(n.version), "required_by": list(n.required_by)}
                    for n in self.new],
            "unknown_dependencies": list(self.unknown),
            "far_from_newest": [{"name": f.name, "version": str(f.version), "newest": str(f.newest),
                                 "why": f.why, "needs": f.needs} for f in self.far],
            "pins": {name: str(version) for name, version in self.pins},
        }


# -- the resolver's view -------------------------------------------------------------------


def _req(req: Requirement, text: str | None = None) -> Req:
    extras = frozenset(canonicalize_name(e) for e in req.extras)
    name = canonicalize_name(req.name)
    shown = f"{name}[{','.join(sorted(extras))}]" if extras else name
    return Req(name=name, extras=extras, specifier=req.specifier, text=text or f"{shown}{req.specifier}")


# -- planning ------------------------------------------------------------------------------


def _check_requests(nearest: NearestSet, source: CandidateSource, target: Target,
                    overrides: Sequence[Override], additions: Sequence[Requirement]) -> None:
    """Bad requests, each with one clear line, before any resolving."""
    pins = nearest.pin_map
    seen: set[NormalizedName] = set()
    for o in overrides:
        if o.name in seen:
            raise UsageError(f"--override {o.text}: {o.name} is overridden twice: give one version")
        seen.add(o.name)
        available = sorted(source.versions(o.name))
        if not available:
            raise UsageError(f"--override {o.text}: no project {o.name} on {nearest.index_url} that "
                             f"pip could install for {target}: check the name")
        if o.name not in pins:
            raise UsageError(f"--override {o.text}: {nearest.release}'s set has no {o.name}: "
                             f"add it with --add {o.text}")
        if o.version not in available:
            near = [str(v) for v in nearest_order(available, o.version)[:5]]
            raise UsageError(f"--override {o.text}: {o.name} {o.version} is not on {nearest.index_url} "
                             f"in a form pip could install for {target}; nearest there: {', '.join(near)}")
        judge = getattr(source, "installable", None)  # an index source judges by building
        found = judge(o.name, o.version) if judge is not None else None
        if found is not None and not found.installable:
            raise UsageError(f"--override {o.text}: {target} cannot install {o.name} {o.version}: "
                             f"{found.reason}: choose another version")
    for a in additions:
        name = canonicalize_name(a.name)
        if name in seen:
            raise UsageError(f"--add {a}: {name} is asked for twice: give it once")
        seen.add(name)
        if name in pins:
            raise UsageError(f"--add {a}: {nearest.release}'s set already pins {name}=={pins[name]}: "
                             f"use --override {name}==VERSION to change it")
        available = sorted(source.versions(name))
        if not available:
            raise UsageError(f"--add {a}: no project {name} on {nearest.index_url} that pip could "
                             f"install for {target}: check the name")
        if not any(a.specifier.contains(v) for v in available):
            raise UsageError(f"--add {a}: no version of {name} on {nearest.index_url} matches "
                             f"{a.specifier} for {target}; there: "
                             + ", ".join(str(v) for v in available[-5:]))


def _movable_in_conflict(causes: Sequence[Any], hard: Mapping[NormalizedName, Version],
                         fixed: Mapping[NormalizedName, Version], rank: Mapping[NormalizedName, int],
                         available: Callable[[NormalizedName], Sequence[Version]],
                         ) -> tuple[NormalizedName, str] | None:
    """Of the hard pins in this conflict (never a fixed one), the one to release, and why: a
    pin whose version a requirement excludes, or a pin whose requirement excludes every
    version the other requirements on that package leave."""
    involved: dict[NormalizedName, str] = {}
    by_name: dict[NormalizedName, list[Any]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, []).append(info)
    for name, infos in sorted(by_name.items()):
        pinned = hard.get(name, fixed.get(name))
        for info in infos:
            req: Req = info.requirement
            parent: Cand | None = info.parent
            if parent is None:
                continue
            if pinned is not None:
                if req.specifier.contains(pinned, prereleases=True):
                    continue
                if name in hard:
                    involved.setdefault(name, f"{parent} requires {req.text}")
                if parent.name in hard:
                    involved.setdefault(parent.name,
                                        f"{parent} requires {req.text}, which excludes {name} {pinned}")
                continue
            if parent.name not in hard:
                continue
            others = [i.requirement.specifier for i in infos if i is not info]
            left = [v for v in available(name) if all(o.contains(v, prereleases=True) for o in others)]
            if left and not any(req.specifier.contains(v, prereleases=True) for v in left):
                involved.setdefault(parent.name, f"{parent} requires {req.text}")
    if not involved:
        return None
    victim = min(involved, key=lambda n: (rank.get(n, 0), n))
    return victim, involved[victim]


def _describe(causes: Sequence[Any], available: Callable[[NormalizedName], Sequence[Version]]) -> str:
    """The requirements of a conflict, leaving out those every version satisfies."""
    out = set()
    for info in causes:
        versions = available(info.requirement.name)
        if versions and all(info.requirement.specifier.contains(v, prereleases=True) for v in versions):
            continue
        parent = info.parent
        out.add(info.requirement.text if parent is None else f"{parent} requires {info.requirement.text}")
    return "; ".join(sorted(out))


def plan(nearest: NearestSet, source: CandidateSource, target: Target, *,
         overrides: Sequence[Override] = (), additions: Sequence[Requirement] = (),
         exclude: Sequence[str] = (), max_rounds: int = 200_000, newest: bool = True) -> Plan:
    """The environment *nearest* + *overrides* + *additions* - *exclude* for *target* (see the
    module's docstring). Raises UsageError for a request that cannot be looked up (or a
    package left out that the rest requires), ResolutionError when no set holds the
    overrides and additions together. With *newest*, an addition that lands far from its
    newest version is told in :attr:`Plan.far`, with what its newest version would need."""
    keep = {o.name for o in overrides} | {canonicalize_name(n) for n in exclude}
    cannot = cell_left_out(nearest, source, target, keep=keep)
    gone = {lo.name for lo in cannot}
    whole = nearest
    nearest = replace(nearest, pins=tuple(pin for pin in nearest.pins if pin[0] not in gone))
    found = _plan(nearest, source, target, overrides=overrides, additions=additions, exclude=exclude,
                  max_rounds=max_rounds)
    # a package left out that an override or addition brings back (at a version the cell can
    # install) is a new pin, not left out
    left_out = [LeftOut(name=o.name, version=o.release_version, reason=o.reason, by="resolve")
                for o in whole.omissions]
    left_out += [lo for lo in cannot if lo.name not in found.pin_map]
    found = replace(found, left_out=tuple(left_out))
    if not newest:
        return found
    far = []
    for add in found.additions:
        name = canonicalize_name(add.name)
        version = found.pin_map.get(name)
        available = sorted(v for v in source.versions(name) if not v.is_prerelease)
        if version is None or not available or available[-1] <= version:
            continue
        why = far_from(source, name, version, available[-1])
        if why is None:
            continue
        others = [a for a in found.additions if a is not add]
        try:
            there = _plan(nearest, source, target, overrides=overrides, exclude=exclude,
                          additions=[*others, Requirement(f"{name}=={available[-1]}")], max_rounds=max_rounds)
            needs = "; ".join(str(m) for m in there.moves) or "nothing else moves"
        except ResolutionError as exc:
            needs = f"no set holds it ({exc})"
        far.append(FarAddition(name=name, version=version, newest=available[-1], why=why, needs=needs))
    return replace(found, far=tuple(far))


def cell_left_out(nearest: NearestSet, source: CandidateSource, target: Target, *,
                  keep: Collection[NormalizedName] = ()) -> tuple[LeftOut, ...]:
    """The pins of *nearest* (but those in *keep*: overridden, excluded) that *target* cannot
    install, by the source's judgement: those with no version on the index for it, and those
    whose version it cannot install when no other version is installable either (one with
    another is moved by the plan); then every pin that requires a package left out. Sorted by
    name, each with its reason."""
    memo = Memo(source)
    out: dict[NormalizedName, LeftOut] = {}
    for name, version in nearest.pins:
        if name in keep:
            continue
        available = memo.versions(name)
        if not available:
            out[name] = LeftOut(name=name, version=str(version), by="env", reason=(
                f"no version of {name} on {nearest.index_url} that pip could install for {target}"))
            continue
        if version not in available:
            continue  # another version is: the plan moves it
        ok, why = memo.installable(name, version, target)
        if ok or any(memo.installable(name, v, target)[0]
                     for v in nearest_order(sorted(available), version) if v != version):
            continue
        out[name] = LeftOut(name=name, version=str(version), by="env", reason=why)
    probe = Provider(memo, target, hard={}, preferred={}, rank={})
    while out:
        needs = {}
        for name, version in nearest.pins:
            if name in out or name in keep:
                continue
            dep = next((d for d in probe.dependencies_of(name, version) if d.name in out), None)
            if dep is not None:
                needs[name] = LeftOut(name=name, version=str(version), by="env", reason=(
                    f"it requires {dep.text}, and {dep.name} is left out ({target} cannot install it)"))
        if not needs:
            break
        out.update(needs)
    return tuple(out[n] for n in sorted(out))


YEARS_FAR = 2.0  # an addition this many years older than its newest version is far from it


def far_from(source: CandidateSource, name: NormalizedName, version: Version, newest: Version) -> str | None:
    """Why *version* is far from *newest* ('another major version', 'N years older' by the
    index's PEP 691 upload times when it gives them), or None when it is not."""
    reasons = []
    calendar = (version.release[0] >= 1000, newest.release[0] >= 1000)
    if crosses_major(version, newest) or calendar[0] != calendar[1]:  # coffea 0.7.8 -> 2025.1.0
        reasons.append("another major version")
    files = getattr(source, "files", None)
    if files is not None:
        def uploaded(v: Version) -> datetime | None:
            times = [datetime.fromisoformat(f.upload_time) for f in files(name, v) if f.upload_time]
            return min(times) if times else None
        try:
            then, now = uploaded(version), uploaded(newest)
        except ValueError:
            then = now = None
        if then is not None and now is not None:
            years = (now - then).days / 365.25
            if years >= YEARS_FAR:
                reasons.append(f"{years:.1f} years older")
    return "; ".join(reasons) or None


def _plan(nearest: NearestSet, source: CandidateSource, target: Target, *,
          overrides: Sequence[Override] = (), additions: Sequence[Requirement] = (),
          exclude: Sequence[str] = (), max_rounds: int = 200_000) -> Plan:
    excluded = tuple(sorted({canonicalize_name(n) for n in exclude}))
    for name in excluded:
        if name not in nearest.pin_map:
            raise UsageError(f"--exclude {name}: {nearest.release}'s set has no {name}: nothing to leave out")
        if name in {o.name for o in overrides}:
            raise UsageError(f"--exclude {name}: {name} is overridden too: give one of the two")
    if excluded:
        p = _plan(replace(nearest, pins=tuple(pin for pin in nearest.pins if pin[0] not in excluded)),
                  source, target, overrides=overrides, additions=additions, max_rounds=max_rounds)
        for name in excluded:
            needed = next((n for n in p.new if n.name == name), None)
            if needed is not None:
                raise UsageError(f"--exclude {name}: {'; '.join(needed.required_by)} requires it: it cannot "
                                 "be left out without those")
        return replace(p, excluded=excluded)
    _check_requests(nearest, source, target, overrides, additions)
    fixed = {o.name: o.version for o in overrides}
    pins = nearest.pin_map
    hard: dict[NormalizedName, Version] = {n: v for n, v in pins.items() if n not in fixed}
    preferred = {**pins, **fixed}
    memo = Memo(source)
    probe = Provider(memo, target, hard={}, preferred={}, rank={})

    def available(name: NormalizedName) -> list[Version]:
        return sorted(memo.versions(name))

    graph = {n: {d.name for d in probe.dependencies_of(n, v)} for n, v in pins.items()}
    rank = dependents(graph)
    active = [a for a in additions if target.evaluate(a.marker)]
    released: dict[NormalizedName, str] = {}
    for name, version in sorted(hard.items()):  # resolved for another Python, or gone from the index
        if version not in memo.versions(name):
            del hard[name]
            released[name] = (f"{name} {version} is not on {nearest.index_url} in a form pip could "
                              f"install for {target}")
            continue
        ok, why = memo.installable(name, version, target)
        if not ok:  # another version is (else cell_left_out has left it out)
            del hard[name]
            released[name] = f"{target} cannot install {name} {version}: {why}"
    for _ in range(len(pins) + 1):
        provider = Provider(memo, target, hard={**hard, **fixed}, preferred=preferred, rank=rank)
        roots = [Req(name=n, extras=frozenset(), specifier=SpecifierSet(f"=={v}"),
                      text=f"the set's {n}=={v}") for n, v in sorted(hard.items())]
        roots += [Req(name=o.name, extras=frozenset(), specifier=SpecifierSet(f"=={o.version}"),
                       text=f"--override {o.text}") for o in overrides]
        roots += [Req(name=n, extras=frozenset(), specifier=SpecifierSet(), text=f"the set's {n}")
                  for n in sorted(released)]
        roots += [_req(a, text=f"--add {a}") for a in active]
        try:
            result = FastResolver(provider, _Patience(limit=_RULE_PATIENCE)).resolve(roots,
                                                                                     max_rounds=max_rounds)
        except (ResolutionImpossible, _GiveUp) as exc:
            # a resolution that backtracks long is settled by the rule, on its last conflict
            causes = list(exc.causes)
            chosen = _movable_in_conflict(causes, hard, fixed, rank, available)
            if chosen is not None:
                name, reason = chosen
                del hard[name]
                released[name] = reason
                continue
            blockers = _blockers(causes, hard, fixed, provider)
            if blockers:
                for name, reason in blockers:
                    del hard[name]
                    released[name] = reason
                continue
            break  # the rule has nothing left to move: search every set (below)
        except ResolutionTooDeep:
            break
        return _plan_from(nearest, result, provider, target, overrides=overrides, additions=active,
                          released=released)
    return _complete_plan(nearest, memo, target, overrides=overrides, additions=active, rank=rank,
                          released=released, max_rounds=max_rounds)


def _plan_from(nearest: NearestSet, result: Any, provider: Provider, target: Target, *,
               overrides: Sequence[Override], additions: Sequence[Requirement],
               released: Mapping[NormalizedName, str]) -> Plan:
    chosen: dict[NormalizedName, Version] = {c.name: c.version for c in result.mapping.values()}
    parents: dict[NormalizedName, list[tuple[str | None, Req]]] = {}  # None: asked for by the user
    for criterion in result.criteria.values():
        for info in criterion.information:
            who = None if info.parent is None else str(info.parent)
            parents.setdefault(info.requirement.name, []).append((who, info.requirement))
    pins = nearest.pin_map
    moves: list[Move] = []
    for name, old in sorted(pins.items()):
        new = chosen.get(name)
        if new is None or new == old or name in {o.name for o in overrides}:
            continue
        why = sorted({f"{who} requires {req.text}" for who, req in parents.get(name, ())
                      if who is not None and not req.specifier.contains(old, prereleases=True)})
        for dep in provider.dependencies_of(name, old):
            have = chosen.get(dep.name)
            if have is not None and not dep.specifier.contains(have, prereleases=True):
                why.append(f"{name} {old} requires {dep.text}, but {dep.name} is {have} here")
        moves.append(Move(name=name, old=old, new=new,
                          reason="; ".join(why) or released.get(name, "moved with what it depends on")))
    new_pins = [
        NewPin(name=name, version=version,
               required_by=tuple(sorted({req.text if who is None else f"{who} ({req.text})"
                                         for who, req in parents.get(name, ())})))
        for name, version in sorted(chosen.items()) if name not in pins
    ]
    return Plan(
        release=nearest.release, target=target, index_url=nearest.index_url,
        overrides=tuple(overrides), additions=tuple(additions),
        pins=tuple(sorted(chosen.items())), moves=tuple(moves), new=tuple(new_pins),
        unknown=tuple(sorted(f"{n} {v}" for n, v in provider.source.unknown)),
    )


def pins_text(p: Plan) -> str:
    """The requirements file pip installs from (``--no-deps``): every pin, exact."""
    lines = [f"# {p.release}'s nearest set with {p.requested}, for {p.target} (stackmeta env)"]
    lines += [f"{name}=={version}" for name, version in p.pins]
    return "\n".join(lines) + "\n"


def deviation_lines(p: Plan, nearest: NearestSet) -> list[str]:
    """The differences from the release an environment holds, one line each, in the form of
    :func:`stackmeta.locks.sides.deviation_lines`: the nearest set's own, then the overrides
    and the moves they forced (so a diff against the release shows the overlay's as new)."""
    pins = nearest.pin_map
    lines = [f"{d.name} {d.release_version} -> {d.version}" for d in nearest.deviations]
    lines += [f"{o.name} left out" for o in nearest.omissions]
    lines += [f"{o.name} {pins[o.name]} -> {o.version}: {o.text}" for o in p.overrides]
    lines += [f"{name} left out: --exclude {name}" for name in p.excluded]
    lines += [f"{lo.name} left out: {p.target} cannot install it" for lo in p.left_out if lo.by == "env"]
    why = f" for {p.requested}" if p.requested != "nothing" else ""  # else the cell moved it
    lines += [f"{m.name} {m.old} -> {m.new}{major_flag(m.old, m.new)}: moved{why} ({m.reason})"
              for m in p.moves]
    return lines


def env_record(p: Plan, nearest: NearestSet, *, record: Mapping[str, str], interpreter: str,
               allow_moves: bool) -> dict[str, Any]:
    """The content of ``DIR/stackmeta-env.json``: what the environment was made from.
    *record*: where the release record was read (path, sha256, its export source)."""
    return {"format": ENV_FORMAT, "made_by": "stackmeta env", "record": dict(record),
            "interpreter": interpreter, "allow_moves": allow_moves,
            "deviations": deviation_lines(p, nearest), **p.to_json()}


# -- when the rule finds nothing to move: every set, searched -------------------------------


def _blockers(causes: Sequence[Any], hard: Mapping[NormalizedName, Version],
              fixed: Mapping[NormalizedName, Version],
              provider: Provider) -> list[tuple[NormalizedName, str]]:
    """A package of the conflict that is neither a hard pin nor fixed (a released pin, or a
    new one) is only tried at versions that accept every hard pin; when each version the
    conflict's requirements leave it is shut out that way, the hard pins shutting out its
    nearest such version with the fewest of them are released (with why)."""
    by_name: dict[NormalizedName, list[Req]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, []).append(info.requirement)
    for name, reqs in sorted(by_name.items()):
        if name in hard or name in fixed:
            continue
        def allowed(version: Version, reqs: list[Req] = reqs) -> bool:
            return all(r.allows(version) for r in reqs)

        best = _fewest_blocking(provider, name, hard, fixed, allowed=allowed)
        if best:
            return best
    # a released requirer in the conflict: its versions whose requirement on the conflicted
    # package the others' leave room for, each shut out by hard pins
    for info in causes:
        parent: Cand | None = info.parent
        if parent is None or parent.name in hard or parent.name in fixed:
            continue
        wanted = info.requirement.name
        others = [i.requirement for i in causes if i.requirement.name == wanted and i.parent != parent]
        targets = [v for v in provider.source.versions(wanted) if all(o.allows(v) for o in others)]
        def leaves_room(deps: Sequence[Req], wanted: str = wanted, targets: list[Version] = targets) -> bool:
            on = [d for d in deps if d.name == wanted]
            return any(all(d.allows(v) for d in on) for v in targets)

        best = _fewest_blocking(provider, parent.name, hard, fixed, leaves_room=leaves_room)
        if best:
            return best
    return []


def _fewest_blocking(provider: Provider, name: NormalizedName, hard: Mapping[NormalizedName, Version],
                     fixed: Mapping[NormalizedName, Version], *,
                     allowed: Callable[[Version], bool] = lambda version: True,
                     leaves_room: Callable[[Sequence[Req]], bool] = lambda deps: True,
                     ) -> list[tuple[NormalizedName, str]]:
    """Of *name*'s versions (nearest first) that are *allowed*, whose requirements *leave room*
    and fit the fixed pins: the hard pins shutting out the one shut out by the fewest (with
    why); none when a version is shut out by none (nothing to release)."""
    best: list[tuple[NormalizedName, str]] | None = None
    # the metadata of the versions to go through is read in batches just before they are reached
    # (a package with hundreds of versions is otherwise one request after another)
    for version in provider.source.ahead(name, [v for v in provider.versions(name) if allowed(v)]):
        deps = provider.dependencies_of(name, version)
        if not leaves_room(deps):
            continue
        if any(d.name in fixed and not d.allows(fixed[d.name]) for d in deps):
            continue
        blocking = [(d.name, f"{name} {version} requires {d.text}") for d in deps
                    if d.name in hard and d.name != name and not d.allows(hard[d.name])]
        if not blocking:
            return []
        if best is None or len(blocking) < len(best):
            best = blocking
    return list(dict(best).items()) if best else []


# backtracks of a resolution of the rule's loop before its last conflict is settled by the rule
_RULE_PATIENCE = 300


class _Patience(BaseReporter):  # type: ignore[type-arg]
    """Stops a search that backtracks without end (every wait has a limit)."""

    LIMIT = 5000

    def __init__(self, limit: int = LIMIT) -> None:
        self.backtracks = 0
        self.limit = limit
        self.conflicts: list[list[Any]] = []  # the first ones met, for naming a clash

    def resolving_conflicts(self, causes: Any) -> None:
        self.backtracks += 1
        if len(self.conflicts) < 100:
            self.conflicts.append(list(causes))
        if self.backtracks > self.limit:
            raise _GiveUp(list(causes))


class _GiveUp(Exception):
    """The resolver backtracked past its limit; *causes* is the conflict it was on."""

    def __init__(self, causes: Sequence[Any]) -> None:
        super().__init__("too many backtracks")
        self.causes = causes


def _who(info: Any) -> str:
    return info.requirement.text if info.parent is None else str(info.parent)


def clash(causes: Sequence[Any], available: Callable[[NormalizedName], Sequence[Version]],
          met: Sequence[Sequence[Any]] = ()) -> str:
    """The actual clash of a failed resolution in one phrase: two requirements on one package
    that no version satisfies together, with who requires them ('typing-extensions:
    dask-awkward 2024.3.0 requires >=4.8.0, tensorflow 2.12.1 requires <4.6.0'), looked for
    in the final conflict *causes*, then in the conflicts *met* on the way (the resolver's
    last conflict is often a consequence); else a requirement no version satisfies; else
    every requirement of the final conflict that excludes some version."""
    for conflict in (causes, *met):
        found = _pair(conflict, available)
        if found is not None:
            return found
    by_name: dict[NormalizedName, list[Any]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, []).append(info)
    for name, infos in sorted(by_name.items()):
        for info in infos:
            if not any(info.requirement.allows(v) for v in available(name)):
                return (f"{name}: {_who(info)} requires {info.requirement.specifier}, which no version "
                        f"of {name} on the index satisfies for this Python and platform")
    return _describe(causes, available)


def _pair(causes: Sequence[Any], available: Callable[[NormalizedName], Sequence[Version]]) -> str | None:
    by_name: dict[NormalizedName, list[Any]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, []).append(info)
    for name, infos in sorted(by_name.items()):
        versions = available(name)
        for i, a in enumerate(infos):
            for b in infos[i + 1:]:
                if _who(a) == _who(b):
                    continue
                if not any(a.requirement.allows(v) and b.requirement.allows(v) for v in versions):
                    first, second = sorted((a, b), key=_who)
                    return (f"{name}: {_who(first)} requires {first.requirement.specifier or 'any version'}, "
                            f"{_who(second)} requires {second.requirement.specifier or 'any version'}")
    return None


def _roots(hard: Mapping[NormalizedName, Version], free: Iterable[NormalizedName],
           overrides: Sequence[Override], additions: Sequence[Requirement]) -> list[Req]:
    roots = [Req(name=n, extras=frozenset(), specifier=SpecifierSet(f"=={v}"), text=f"the set's {n}=={v}")
             for n, v in sorted(hard.items())]
    roots += [Req(name=o.name, extras=frozenset(), specifier=SpecifierSet(f"=={o.version}"),
                  text=f"--override {o.text}") for o in overrides]
    roots += [Req(name=n, extras=frozenset(), specifier=SpecifierSet(), text=f"the set's {n}")
              for n in sorted(set(free))]
    roots += [_req(a, text=f"--add {a}") for a in additions]
    return roots


def _complete_plan(nearest: NearestSet, memo: Memo, target: Target, *, overrides: Sequence[Override],
                   additions: Sequence[Requirement], rank: Mapping[NormalizedName, int],
                   released: Mapping[NormalizedName, str], max_rounds: int) -> Plan:
    """Every pin of the set free (tried nearest first from the set's version), the overrides
    and additions fixed: resolvelib finds a set whenever one exists, or the conflict that
    rules every set out. The set found is then brought nearer: its moved pins are resolved
    again against the pins that stayed (each to its nearest version that fits), and each put
    back at the set's version when the rest still resolves with fewer moves."""
    fixed = {o.name: o.version for o in overrides}
    pins = nearest.pin_map
    preferred = {**pins, **fixed}
    free = [n for n in pins if n not in fixed]
    provider = Provider(memo, target, hard=fixed, preferred=preferred, rank=rank)
    asked = ", ".join([o.text for o in overrides] + [f"--add {a}" for a in additions])
    def no_set(causes: Sequence[Any], met: Sequence[Sequence[Any]]) -> ResolutionError:
        why = clash(list(causes), lambda n: sorted(memo.versions(n)), met)
        return ResolutionError(f"{nearest.release}: no set holds {asked} for {target}: {why}: "
                               "change the overrides or additions")

    def gave_up(reporter: _Patience) -> ResolutionError:
        first = next((found for found in (_pair(c, lambda n: sorted(memo.versions(n)))
                                          for c in reporter.conflicts) if found), None)
        met = f"; the first clash it met: {first}" if first else ""
        return ResolutionError(
            f"{nearest.release}: the resolver gave up looking for a set that holds {asked} for {target} "
            f"(more than {reporter.limit} backtracks){met}: pin more of what you add "
            "(--add NAME==VERSION), or change the overrides")

    # first the requests alone, without the set: when they clash with each other, that is
    # the clash (found fast, and named directly)
    alone = _Patience(limit=1000)
    try:
        FastResolver(Provider(memo, target, hard=fixed, preferred=fixed, rank=rank), alone).resolve(
            _roots({}, (), overrides, additions), max_rounds=max_rounds)
    except ResolutionImpossible as exc:
        raise no_set(list(exc.causes), alone.conflicts) from None
    except (ResolutionTooDeep, _GiveUp):
        # the requests alone do not resolve in reasonable time: the whole set will not either
        raise gave_up(alone) from None
    patience = _Patience()
    try:
        result = FastResolver(provider, patience).resolve(_roots({}, free, overrides, additions),
                                                          max_rounds=max_rounds)
    except ResolutionImpossible as exc:
        raise no_set(list(exc.causes), patience.conflicts) from None
    except (ResolutionTooDeep, _GiveUp):
        raise gave_up(patience) from None
    chosen = {c.name: c.version for c in result.mapping.values()}
    moved = {n for n in free if chosen.get(n) != pins[n]}
    for candidate in [None, *sorted(moved, key=lambda n: (-rank.get(n, 0), n))]:
        trial = moved - {candidate} if candidate is not None else moved
        if candidate is not None and candidate not in moved:
            continue
        hard = {n: pins[n] for n in free if n not in trial}
        attempt = Provider(memo, target, hard={**hard, **fixed}, preferred=preferred, rank=rank)
        try:
            better = FastResolver(attempt, _Patience()).resolve(
                _roots(hard, trial, overrides, additions), max_rounds=max_rounds)
        except (ResolutionImpossible, ResolutionTooDeep, _GiveUp):
            continue
        now = {c.name: c.version for c in better.mapping.values()}
        count = sum(now.get(n) != pins[n] for n in free)
        if count < len(moved) or (candidate is None and count == len(moved)):
            result, provider = better, attempt
            moved = {n for n in free if now.get(n) != pins[n]}
    reasons = {n: released.get(n, f"no set holds {asked} with {n} at the set's version") for n in moved}
    return _plan_from(nearest, result, provider, target, overrides=overrides, additions=additions,
                      released=reasons)
