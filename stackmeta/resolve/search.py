"""The nearest consistent set: the release's pins, moved as little as pip's rules demand.

A release is not consistent by pip's rules (CMSSW_14_0_0 ships numpy 1.24.3 with
tensorflow 2.12.0, which requires numpy<1.24). The metapackage pins the *nearest*
consistent set, found by ``resolvelib`` (the resolver pip is built on) over a
:class:`~stackmeta.resolve.candidates.CandidateSource`:

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
   numpy stays at 1.24.3, tensorflow moves. Exception: when no version of the requiring
   package accepts the kept pin (every dask requires toolz>=0.8.2, the release ships toolz
   0.7.1), moving it cannot help, so the required package moves instead. When every version
   of a moved package conflicts with some kept pin, it goes to the version that conflicts
   with the fewest kept pins (of those, the one whose conflicting pins fewer of the stack
   depend on, by the same rule; then the nearest) and those pins move too. Conflicts between
   two hard pins are settled this way before the first resolve; conflicts the resolver
   finds later (through moved pins and added dependencies) one at a time, by the same rule.
   Repeat until the set resolves; each released pin is one move. A moved pin that still
   fits nowhere keeps the release's version and the pins it conflicts with move (it is
   *anchored*); failing that it is left out (an omission with the conflict).
3. Improve: single changes of the consistent set are tried, each resolved with resolvelib,
   and kept when the set gets nearer to the release (:func:`_score`): fewer omissions first
   (leaving a shipped package out is worse than moving it), then how far the pins move (each
   moved pin counts one, and one more for every release series, major.minor, that it
   crosses), then fewer moved pins, then (the rule) moved pins fewer of the stack depends on.
   The changes: a left-out package brought back as a moved pin; a moved pin pinned at its
   installable version across the fewest release series (:func:`_nearer`); a moved (or
   anchored-over) pin put back at the release's version. Either of the last two releases the
   hard pins that conflict with the new pin, and those that require a package at versions the
   new pin excludes (:func:`_released_by`). Versions the search passed over when the resolver
   was lost (a dependency's version clashing with a kept pin's requirement) were judged against
   the pins of that moment: the improvement pass may try them again. A change whose resolution
   backtracks more than 150 times is given up. Repeated until no change helps (at most 120
   resolutions). CMSSW_14_0_0 on 3.9: numpy 1.24.3 and awkward-cpp 13 stay;
   tensorflow 2.12.0 -> 2.12.1 (which accepts numpy 1.24.3) with keras, gast, wrapt, pythran,
   beniget: 6 moves across 7 series, where keeping gast (which pythran and beniget require)
   took tensorflow to 2.8.0, with keras, tensorboard, tensorboard-data-server and
   google-auth-oauthlib: 5 moves across 16 series; awkward 2.1.1 -> 2.1.2; dask-awkward
   2023.4.1 -> 2023.4.0 instead of being left out.
4. A released pin is still required, and its candidates are tried *nearest first*:
   "nearest" is the distance in the project's ascending list of installable versions
   (pre-releases only when the release's own version is one) from the release version; the
   release version itself first, then distance 1 below, distance 1 above, distance 2 below,
   ... (on equal distance the lower version wins: an older version is less likely to
   require newer dependencies); versions with a wheel for the target come before
   sdist-only ones (an old sdist may not even build on the target's Python). resolvelib
   tries candidates in that order (skipping versions whose own requirements exclude a hard
   pin), so each moved pin lands on the nearest version consistent with the rest.
5. Dependencies the release does not ship are pinned too (*additions*): the newest version
   consistent with the set, as pip would pick, so pip picks nothing freely.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep

from stackmeta import record
from stackmeta.errors import ResolutionError
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.candidates import CandidateSource
from stackmeta.resolve.gcpace import rare_full_collections
from stackmeta.resolve.nearest import RULE, Addition, Deviation, NearestSet, Omission
from stackmeta.resolve.provider import Cand, Memo, Provider, Req, dependents, series
from stackmeta.resolve.resolution import FastResolver
from stackmeta.target import Target


@dataclass(frozen=True, kw_only=True, slots=True)
class _Move:
    """One pin released from its hard pin, and the conflict that released it."""

    name: NormalizedName
    reason: str


# one change the improvement pass tries: the hard pins, the moves, the packages left out
_Change = tuple[dict[NormalizedName, Version], list[_Move], dict[NormalizedName, str]]


def _describe(info: Any) -> str:
    req: Req = info.requirement
    parent: Cand | None = info.parent
    return f"the release pins {req.text}" if parent is None else f"{parent} requires {req.text}"


def _drop_reason(victim: NormalizedName, causes: Iterable[Any], memo: Memo,
                 preferred: Mapping[NormalizedName, Version], target: Target) -> str:
    """Why *victim* is left out when no version of it fits: the clash when another package's
    requirement takes part in it; else (only the release's own pin in the causes: no candidate
    at all) what is wrong with the release's version in this cell."""
    causes = list(causes)
    clash = sorted({_describe(c) for c in causes})
    if any(c.parent is not None for c in causes):
        return "no version is consistent with the rest of the set: " + "; ".join(clash)
    if victim in memo.excluded:
        return memo.excluded[victim]
    version = preferred.get(victim)
    if version is not None and version in memo.versions(victim):
        ok, why = memo.installable(victim, version, target)
        if not ok:
            return (f"{victim} {version} cannot be installed in this cell: {why}; no other version "
                    "that is installable here fits the rest of the set")
        return (f"{victim} {version} and every other version installable here conflict with the rest of "
                "the set")
    return f"no version of {victim} is installable here that fits the rest of the set"


def resolve(
    rel: record.Release, source: CandidateSource, target: Target, *, index_url: str,
    progress: Progress = NO_PROGRESS, max_rounds: int = 200_000, memo: Memo | None = None,
    hints: Sequence[NearestSet] | Callable[[], Sequence[NearestSet]] = (), before: NearestSet | None = None,
) -> NearestSet:
    """The nearest consistent set of *rel* for *target* (see the module's docstring). *memo*:
    the source's answers (a fresh :class:`Memo` of *source* by default); it keeps what the
    search asked, so that another cell can tell whether the search would go the same way.
    *hints*: sets found for other targets (other cells); the improvement pass also tries moving
    what each of them moved, and keeps that when it is nearer (see :func:`_improve`); or a
    function that gives them, called once the improvement pass starts (what comes before does
    not use them: a cell's search may start before its hints are known). *before*:
    the set this target had (the record's, resolved before): the improvement pass tries it last,
    so a set found again is never farther than one that still holds. The garbage collector's
    full passes are rare meanwhile (:mod:`stackmeta.resolve.gcpace`)."""
    with rare_full_collections():
        return _search(rel, source, target, index_url=index_url, progress=progress, max_rounds=max_rounds,
                       memo=memo, hints=hints, before=before)


def _search(
    rel: record.Release, source: CandidateSource, target: Target, *, index_url: str,
    progress: Progress, max_rounds: int, memo: Memo | None,
    hints: Sequence[NearestSet] | Callable[[], Sequence[NearestSet]],
    before: NearestSet | None = None,
) -> NearestSet:
    shipped = {p.name: p for p in rel.packages}
    memo = memo if memo is not None else Memo(source)
    omitted: dict[NormalizedName, str] = {}
    hard: dict[NormalizedName, Version] = {}
    unfit: dict[NormalizedName, str] = {}  # release version not installable here, others are: moved
    progress.start("versions", len(shipped))
    for name, pkg in sorted(shipped.items()):
        progress.advance()
        if pkg.version is None:
            omitted[name] = f"{pkg.version_written!r} is not a PEP 440 version: pip cannot install it"
            continue
        available = memo.versions(name)
        how = ""
        if pkg.build is not record.BuildKind.PYPI:
            source_url = f" {pkg.source_url}" if pkg.source_url else ""
            how = f" (CMS builds it from {pkg.build.value}{source_url})"
        if pkg.version in available:
            ok, why = memo.installable(name, pkg.version, target)
            if ok:
                hard[name] = pkg.version
                continue
            why = f"{name} {pkg.version} cannot be installed in this cell: {why}"
        elif not available:
            omitted[name] = f"no version of {name} on the index that pip could install for {target}{how}"
            continue
        elif not memo.on_index(name, pkg.version):
            # not on the index at all (CMS builds it from git, or patches it): left out unless
            # something requires it, then pinned like any dependency
            omitted[name] = (f"{name} {pkg.version} is not on the index in a form pip could install for "
                             f"{target} (absent, yanked, no usable wheel or sdist, or Requires-Python "
                             f"excludes it){how}")
            continue
        else:
            why = (f"{name} {pkg.version} has no file this cell can install (no wheel for it, no sdist, "
                   "or Requires-Python excludes it)")
        first = _first_installable(memo, target, name, pkg.version)
        if first is None:
            omitted[name] = f"{why}; no other version is installable in this cell either"
        else:
            unfit[name] = why
    progress.done()
    preferred = {n: p.version for n, p in shipped.items() if p.version is not None}
    graph: dict[NormalizedName, set[NormalizedName]] = {}
    probe = Provider(memo, target, hard=hard, preferred=preferred, rank={})
    for name, version in hard.items():
        graph[name] = {d.name for d in probe.effective_dependencies(name, version) if d.name in shipped}
    rank = dependents(graph)
    moves = [_Move(name=n, reason=why) for n, why in sorted(unfit.items())]
    moves += _direct_moves(hard, probe, rank)
    moves += _settle_moved(hard, probe, moves, rank)
    dropped: dict[NormalizedName, str] = {}
    anchored: set[NormalizedName] = set()
    forced: set[NormalizedName] = set()  # moved so that an anchored package fits
    escaped: set[NormalizedName] = set()  # moved off a requirement this cell cannot install
    # versions passed over in a lost resolver's clash, and those excluded only for needing them:
    # judged against the pins of that moment, so the improvement pass may try them again
    passed: set[tuple[NormalizedName, Version]] = set()
    # left out while other versions of it are installable (it came back, anchored, after moving
    # off what this cell cannot install): ruled out for the search, not for the improvement pass
    shut: set[NormalizedName] = set()
    progress.start("resolving", None)
    try:
        for _ in range(2 * len(shipped) + 1):
            progress.advance()
            provider = Provider(memo, target, hard=hard, preferred=preferred, rank=rank)
            roots = [memo.root(n, v) for n, v in sorted(hard.items())]
            roots += [memo.root(m.name) for m in moves if m.name not in dropped]
            try:
                result = FastResolver(provider, _Reporter()).resolve(roots, max_rounds=max_rounds)
            except (ResolutionImpossible, _GiveUp) as exc:
                # a shipped package that requires one this cell cannot install at all is left out
                # too (it could not be installed without it), the one fewer depend on first
                blocked = sorted(
                    ((c.parent.name not in shipped, rank.get(c.parent.name, 0), c.parent.name, c.requirement,
                      c.parent.version)
                     for c in exc.causes
                     if c.parent is not None
                     and c.parent.name not in memo.excluded
                     and _uninstallable(memo, target, c.requirement, omitted)),
                    key=lambda b: (b[0], b[1], b[2]))
                if blocked:
                    _, _, who, req, tried = blocked[0]
                    why = (f"it requires {req.text}, which this cell cannot install: "
                           + omitted.get(req.name, memo.excluded.get(
                               req.name, f"no version of {req.name} that it allows is installable here")))
                    # the installable versions of it that require that too (None: all do)
                    bad = _blocked_versions(memo, target, probe, who, req.name, omitted, tried)
                    if who in hard and who not in escaped and bad is not None:
                        escaped.add(who)  # once: if it comes back (anchored), it is left out
                        # another version of it needs no such thing (awkward 2.1.1 requires
                        # awkward-cpp==12, which has no wheel for Python 3.12; a newer awkward
                        # requires a newer awkward-cpp that has): it moves, it is not left out
                        moves.append(_Move(name=who, reason=f"{who} {hard.pop(who)} {why[3:]}"))
                        moves += _settle_moved(hard, probe, moves, rank)
                        continue
                    if who not in hard and bad is not None:
                        # a moved pin or a dependency: only its versions that require what
                        # the cell cannot install are out, when another version is installable
                        memo.excluded_versions.setdefault(who, {}).update(
                            {v: f"{who} {v} {why[3:]}" for v in bad})
                        if any((req.name, v) in passed for v in memo.excluded_versions.get(req.name, ())):
                            passed.update((who, v) for v in bad)
                        moves += _settle_moved(hard, probe, moves, rank)
                        continue
                    # say first why the release's version is out, when no version escapes
                    own = _blocked_release(memo, target, probe, who, req, omitted) if bad is None else None
                    if own is not None:
                        why = own
                    elif bad is not None:
                        shut.add(who)
                    if who in shipped:
                        hard.pop(who, None)
                        dropped[who] = why
                    # no candidate from now on, so what requires it is named (and left out) next
                    memo.excluded[who] = f"{who} {why[3:]}" if why.startswith("it ") else why
                    continue
                if isinstance(exc, _GiveUp):
                    # the resolver was lost, not the set shown impossible: first, a version of
                    # a dependency the release does not ship that requires what another
                    # requirement in the conflict rules out is passed over (CMSSW_12_1_1 on
                    # 3.11: contourpy 1.3.3 requires numpy>=1.25, the tensorflow wrapper
                    # numpy<=1.24.3; resolvelib kept trying the two tensorflows instead)
                    clashing = _clashing_additions(exc.causes, shipped, memo)
                    if clashing:
                        for (name, version), why in clashing.items():
                            memo.excluded_versions.setdefault(name, {})[version] = why
                        passed.update(clashing)
                        continue
                move = _choose_move(exc.causes, hard, rank, preferred, anchored)
                if move is not None:
                    del hard[move.name]
                    moves.append(move)
                    moves += _settle_moved(hard, probe, moves, rank)
                    continue
                widened = _widen(exc.causes, hard, probe, memo, target, rank, anchored)
                if widened:
                    moves += widened
                    moves += _settle_moved(hard, probe, moves, rank)
                    continue
                victim = _choose_drop(exc.causes, moves, dropped, rank, anchored, hard, probe)
                if victim is not None and victim not in anchored and victim in preferred \
                        and preferred[victim] in memo.versions(victim) \
                        and memo.installable(victim, preferred[victim], target)[0]:
                    # no version of the moved package fits: moving it cannot help, so it keeps
                    # the release's version and what conflicts with that moves instead
                    anchored.add(victim)
                    hard[victim] = preferred[victim]
                    changes = _unblock(victim, hard, probe, anchored, forced)
                    back = {victim} | {m.name for m in changes if m.reason == "__unmove__"}
                    moves = [m for m in moves if m.name not in back]
                    moves += [m for m in changes if m.reason != "__unmove__" and m.name not in back]
                    moves += _settle_moved(hard, probe, moves, rank)
                    continue
                if victim is None:
                    raise ResolutionError(
                        f"{rel.release}: no consistent set for {target}: "
                        + "; ".join(sorted({_describe(c) for c in exc.causes}))
                        + ": check the index, or the release's pins"
                    ) from None
                hard.pop(victim, None)
                dropped[victim] = _drop_reason(victim, exc.causes, memo, preferred, target)
                continue
            except ResolutionTooDeep:
                raise ResolutionError(
                    f"{rel.release}: the resolver gave up after {max_rounds} rounds for {target}: "
                    "report it with the record"
                ) from None
            for name, version in passed:
                memo.excluded_versions.get(name, {}).pop(version, None)
            for name in shut:  # the improvement pass may bring it back at a version that escapes
                memo.excluded.pop(name, None)
            better = _improve(rel, memo, target, rank=rank, preferred=preferred, hard=hard, moves=moves,
                              hints=hints() if callable(hints) else hints, before=before,
                              dropped=dropped, result=result, max_rounds=max_rounds, progress=progress)
            if better is not None:
                result, provider, moves, dropped = better
            return _nearest_set(rel, result, provider, target, index_url=index_url,
                                omitted=omitted, moves=moves, dropped=dropped, unfit=unfit)
    finally:
        progress.done()
    raise ResolutionError(f"{rel.release}: no consistent set after moving every pin: report it")


def _uninstallable(memo: Memo, target: Target, req: Req, omitted: Mapping[NormalizedName, str]) -> bool:
    """No version of *req* can be installed in this cell (a shipped package left out for it, a
    dependency found uninstallable, or no installable version that *req* allows)."""
    if req.name in omitted or req.name in memo.excluded:
        return True
    probe = Provider(memo, target, hard={}, preferred={}, rank={})
    out = memo.excluded_versions.get(req.name, {})
    return not any(v not in out and memo.installable(req.name, v, target)[0]
                   for v in memo.ahead(req.name, probe.allowed(req.name, [req])))


def _blocked_versions(memo: Memo, target: Target, probe: Provider, who: NormalizedName,
                      dep_name: NormalizedName, omitted: Mapping[NormalizedName, str], tried: Version,
                      ) -> list[Version] | None:
    """The installable versions of *who* that require *dep_name* only at versions this cell
    cannot install, *tried* (the one the conflict tried: a hard pin's, or a pre-release maybe)
    among them; None when that is every installable version (none escapes it)."""
    out = memo.excluded_versions.get(who, {})
    bad, good = [tried], False
    for version in memo.ahead(who, probe.versions(who)):
        if version == tried or version in out or not memo.installable(who, version, target)[0]:
            continue
        reqs = [d for d in probe.dependencies_of(who, version) if d.name == dep_name]
        if reqs and any(_uninstallable(memo, target, d, omitted) for d in reqs):
            bad.append(version)
        else:
            good = True
    return bad if bad and good else None


def _blocked_release(memo: Memo, target: Target, probe: Provider, who: NormalizedName, req: Req,
                     omitted: Mapping[NormalizedName, str]) -> str | None:
    """Why *who* is left out when its release's version (installable here) requires what the
    cell cannot install, as every other version does (rep 0.6.6 requires matplotlib==1.5.1,
    an older rep matplotlib==1.4.3); None when the release's version is not such a one."""
    release = probe.preferred.get(who)
    if release is None or release not in memo.versions(who) or not memo.installable(who, release, target)[0]:
        return None
    for dep in probe.dependencies_of(who, release):
        if not _uninstallable(memo, target, dep, omitted):
            continue
        last = "" if dep.text == req.text else f" (the last one tried: {req.text})"
        return (f"{who} {release} requires {dep.text}, which this cell cannot install, and every "
                f"other version installable here requires something it cannot install too{last}")
    return None


def _clashing_additions(causes: Iterable[Any], shipped: Collection[NormalizedName], memo: Memo,
                        ) -> dict[tuple[NormalizedName, Version], str]:
    """The versions of dependencies the release does not ship that, in *causes*, require
    something no version of which another requirement there allows; name, version -> why."""
    causes = list(causes)
    out: dict[tuple[NormalizedName, Version], str] = {}
    for c in causes:
        parent: Cand | None = c.parent
        if parent is None or parent.name in shipped:
            continue
        known = memo.excluded_versions.get(parent.name, {})
        if parent.version in known:
            continue
        for other in causes:
            if other.requirement.name != c.requirement.name \
                    or (other.parent is not None and other.parent.name == parent.name):
                continue
            both = [v for v in memo.versions(c.requirement.name)
                    if c.requirement.allows(v) and other.requirement.allows(v)]
            if not both:
                out[(parent.name, parent.version)] = (
                    f"{parent.name} {parent.version} requires {c.requirement.text}, which "
                    f"{_describe(other)} rules out")
                break
    return out


def _first_installable(memo: Memo, target: Target, name: NormalizedName, release: Version) -> Version | None:
    """The nearest version of *name* the target can install (wheels first), or None."""
    probe = Provider(memo, target, hard={}, preferred={name: release}, rank={})
    for version in memo.ahead(name, probe.versions(name)):
        if version != release and memo.installable(name, version, target)[0]:
            return version
    return None


def _attempt(memo: Memo, target: Target, *, hard: Mapping[NormalizedName, Version],
             free: Iterable[NormalizedName], preferred: Mapping[NormalizedName, Version],
             rank: Mapping[NormalizedName, int], max_rounds: int) -> tuple[Any, Provider] | None:
    """Resolve with *hard* pinned and *free* required at any version (nearest first); None
    when that set has no consistent resolution (or the resolver gives up on it, after
    :attr:`_Reporter.CHANGE_LIMIT` backtracks)."""
    provider = Provider(memo, target, hard=hard, preferred=preferred, rank=rank)
    roots = [memo.root(n, v) for n, v in sorted(hard.items())]
    roots += [memo.root(n) for n in sorted(set(free))]
    resolver = FastResolver(provider, _Reporter(_Reporter.CHANGE_LIMIT))
    try:
        return resolver.resolve(roots, max_rounds=max_rounds, causes=False), provider
    except (ResolutionImpossible, ResolutionTooDeep, _GiveUp):
        return None


def _series_crossed(memo: Memo, name: NormalizedName, release: Version, version: Version) -> int:
    """How many release series a move from *release* to *version* crosses: the series of
    *name*'s versions on the index after the nearer end's, up to the farther one's
    (tensorflow 2.12.0 -> 2.12.1: 0; -> 2.8.0: 4, through 2.11, 2.10, 2.9 and 2.8)."""
    low, high = sorted((series(release), series(version)))
    if low == high:
        return 0
    known = memo.series(name)
    return max(bisect_left(known, high) - bisect_right(known, low), 0) + 1


def _score(rel: record.Release, result: Any, rank: Mapping[NormalizedName, int],
           memo: Memo) -> tuple[int, int, int, tuple[int, ...]]:
    """How far a consistent set is from the release, smaller is nearer: the omissions first
    (leaving a shipped package out is worse than moving it), then how far the moved pins go
    (each counts one, and one more for every release series it crosses: tensorflow 2.12.0 ->
    2.12.1 counts 1, -> 2.8.0 counts 5), then the moved pins, then (the rule) how much of the
    stack depends on the moved pins, the most depended-on first."""
    pins = {c.name: c.version for c in result.mapping.values()}
    omitted = moved = far = 0
    ranks: list[int] = []
    for pkg in rel.packages:
        if pkg.version is None:
            continue
        have = pins.get(pkg.name)
        if have is None:
            omitted += 1
        elif have != pkg.version:
            moved += 1
            far += 1 + _series_crossed(memo, pkg.name, pkg.version, have)
            ranks.append(rank.get(pkg.name, 0))
    return omitted, far, moved, tuple(sorted(ranks, reverse=True))


def _improve(
    rel: record.Release, memo: Memo, target: Target, *, rank: Mapping[NormalizedName, int],
    preferred: Mapping[NormalizedName, Version], hard: Mapping[NormalizedName, Version],
    moves: Sequence[_Move], dropped: Mapping[NormalizedName, str], result: Any, max_rounds: int,
    progress: Progress = NO_PROGRESS, budget: int = 120, hints: Sequence[NearestSet] = (),
    before: NearestSet | None = None,
) -> tuple[Any, Provider, list[_Move], dict[NormalizedName, str]] | None:
    """Improve a consistent set by single changes, each tried with resolvelib, kept when the
    set gets nearer to the release (:func:`_score`): a left-out package brought back as a
    moved pin; a moved pin pinned at its version across the fewest release series
    (:func:`_nearer`), or put back at the release's version, the hard pins that cannot stay
    with it released instead (:func:`_released_by`; each to its nearest version that fits);
    and, for each set of
    *hints* (another cell's), what it moved moved here too and what it kept that this set left
    out brought back (a wrapper package can tie several moves together: tensorflow 2.12.0 on
    Windows is tensorflow-intel 2.12.0, which no single change frees). Repeated until no change
    helps, at most *budget* resolutions; the last changes (:func:`_held_back`, and *before*,
    the set this target had, :func:`_previous`) get their turn after that too. None when
    nothing helped."""
    hard = dict(hard)
    moves = list(moves)
    dropped = dict(dropped)
    best = _score(rel, result, rank, memo)
    current = result
    improved: tuple[Any, Provider] | None = None
    tried: set[tuple[frozenset[tuple[NormalizedName, Version]], frozenset[NormalizedName]]] = set()
    previous = _previous(before, hard, moves, dropped, preferred, memo, target)
    probe = Provider(memo, target, hard=hard, preferred=preferred, rank=rank)

    def attempt(change: _Change) -> bool | None:
        """Resolve *change* and keep it when the set gets nearer (True); None when it was tried
        before, or cannot resolve (:func:`_hopeless`)."""
        nonlocal best, improved, hard, moves, dropped, current, probe
        new_hard, new_moves, new_dropped = change
        key = (frozenset(new_hard.items()), frozenset(new_dropped))
        if key in tried:
            return None
        tried.add(key)
        free = [m.name for m in new_moves if m.name not in new_dropped]
        if _hopeless(new_hard, free, probe):
            return None
        progress.advance()
        found = _attempt(memo, target, hard=new_hard, free=free, preferred=preferred, rank=rank,
                         max_rounds=max_rounds)
        if found is None or (score := _score(rel, found[0], rank, memo)) >= best:
            return False
        best = score
        improved, hard, moves, dropped = found, new_hard, new_moves, dict(new_dropped)
        current = found[0]
        probe = Provider(memo, target, hard=hard, preferred=preferred, rank=rank)
        return True

    while budget > 0:
        free = [m.name for m in moves if m.name not in dropped]
        options: list[_Change] = []
        for hint in hints:
            pinned = {n for n, _ in hint.pins}
            hint_moved = {d.name for d in hint.deviations} - set(dropped)
            back = {n for n in dropped if n in pinned}
            if not back:
                continue
            why = f"moved as in the {hint.python} {hint.platform} set, which keeps more of the release"
            extra = [_Move(name=n, reason=why) for n in sorted((hint_moved | back) - set(free))]
            # at the hint's versions (free, the resolver may backtrack for long over them)
            at = {n: v for n, v in hint.pins if n in hint_moved | back and v in memo.versions(n)
                  and memo.installable(n, v, target)[0]}
            kept = {n: v for n, v in hard.items() if n not in hint_moved}
            options.append(({**kept, **at}, [*moves, *extra],
                            {n: r for n, r in dropped.items() if n not in back}))
        options += _brought_back(hard, moves, dropped, rank)
        pins = {c.name: c.version for c in current.mapping.values()}
        for name in sorted(set(free), key=lambda n: (-rank.get(n, 0), n)):
            nearer = _nearer(name, pins.get(name), preferred.get(name), probe, memo, target)
            if nearer is not None:
                new_hard, released = _pinned(name, nearer, hard, probe, memo)
                options.append((new_hard, [*moves, *released], dropped))
        for name in sorted(set(free), key=lambda n: (-rank.get(n, 0), n)):
            version = preferred.get(name)
            if version is None or version not in memo.versions(name) \
                    or not memo.installable(name, version, target)[0]:
                continue
            new_hard, released = _pinned(name, version, hard, probe, memo)
            options.append((new_hard, [*[m for m in moves if m.name != name], *released], dropped))
        options += _held_back(hard, moves, dropped, pins, rank) + previous  # last: see _held_back
        for change in options:
            got_nearer = attempt(change)
            if got_nearer is None:
                continue
            budget -= 1
            if got_nearer or budget <= 0:
                break
        else:
            break
    while budget <= 0:  # spent: the last changes still get their turn
        pins = {c.name: c.version for c in current.mapping.values()}
        if not any(attempt(change) for change in _held_back(hard, moves, dropped, pins, rank) + previous):
            break
    if improved is None:
        return None
    return improved[0], improved[1], moves, dropped


def _previous(before: NearestSet | None, hard: Mapping[NormalizedName, Version], moves: Sequence[_Move],
              dropped: Mapping[NormalizedName, str], preferred: Mapping[NormalizedName, Version], memo: Memo,
              target: Target) -> list[_Change]:
    """The set this target had (*before*, resolved earlier) as one change of the improvement
    pass: each package in play (kept, moved or left out now) pinned where that set pins it, or
    left out where it left it out, with its reason then. Tried last, it is kept only when it is
    still consistent and installable and nearer than the set found: a search again, with
    another order of conflicts, can settle on a set farther than one that still holds. None
    (an empty list) when *before* does not cover every package in play, or pins a version
    that is gone or not installable here."""
    if before is None:
        return []
    pinned, left_out = before.pin_map, {o.name: o.reason for o in before.omissions}
    new_hard: dict[NormalizedName, Version] = {}
    new_dropped: dict[NormalizedName, str] = {}
    for name in sorted({*hard, *(m.name for m in moves), *dropped}):
        version = pinned.get(name)
        if version is not None:
            if version not in memo.versions(name) or not memo.installable(name, version, target)[0]:
                return []
            new_hard[name] = version
        elif name in left_out:
            new_dropped[name] = left_out[name]
        else:
            return []
    why = f"as in the set for {before.python} {before.platform} resolved before"
    moving = {m.name for m in moves}
    new_moves = [*moves, *(_Move(name=n, reason=why) for n, v in sorted(new_hard.items())
                           if n not in moving and v != preferred.get(n))]
    return [(new_hard, new_moves, new_dropped)]


def _held_back(hard: Mapping[NormalizedName, Version], moves: Sequence[_Move],
               dropped: Mapping[NormalizedName, str], pins: Mapping[NormalizedName, Version],
               rank: Mapping[NormalizedName, int],
               ) -> list[_Change]:
    """The improvement pass's last changes, tried only when nothing else helped (so what helped
    before still wins), and after its budget is spent: each left-out package brought back with
    every moved pin held at its version in the set (*pins*). With them free, the resolver may
    go through their versions again and give up, though the set they found takes the package
    back (pythran 0.9.11, left out during a clash over numpy, fits the gast 0.4.0 and beniget
    0.3.0 the set ends with)."""
    held = {m.name: pins[m.name] for m in moves if m.name not in dropped and m.name in pins}
    return _brought_back({**hard, **held}, moves, dropped, rank) if held else []


def _brought_back(hard: Mapping[NormalizedName, Version], moves: Sequence[_Move],
                  dropped: Mapping[NormalizedName, str], rank: Mapping[NormalizedName, int]) -> list[_Change]:
    """Each left-out package brought back as a moved pin, with *hard* pinned, the one more of
    the stack depends on first."""
    return [(dict(hard), [*moves, _Move(name=name, reason=f"{why}; an older or newer version fits")],
             {n: r for n, r in dropped.items() if n != name})
            for name, why in sorted(dropped.items(), key=lambda d: (-rank.get(d[0], 0), d[0]))]


def _nearer(name: NormalizedName, have: Version | None, release: Version | None, probe: Provider,
            memo: Memo, target: Target) -> Version | None:
    """For a moved pin at *have* across release series from *release*: its installable version
    (not the release's, not one the search passed over) across the fewest series, fewer than
    *have* crosses, the nearest of those first; None when there is none. Tensorflow moved from
    2.12.0 to 2.8.0 (the newest that accepts the release's gast 0.5.3): 2.12.1, which moves gast
    instead, crosses no series."""
    if have is None or release is None or have == release:
        return None
    far = _series_crossed(memo, name, release, have)
    if far == 0:
        return None
    out = memo.excluded_versions.get(name, {})
    order = [v for v in probe.versions(name, pre=release.is_prerelease) if v != release and v not in out]
    crossed = {v: _series_crossed(memo, name, release, v) for v in order}
    # installability is asked last, in this order (it may build an sdist)
    for version in sorted((v for v in order if crossed[v] < far), key=crossed.__getitem__):
        if memo.installable(name, version, target)[0]:
            return version
    return None


def _pinned(name: NormalizedName, version: Version, hard: Mapping[NormalizedName, Version], probe: Provider,
            memo: Memo) -> tuple[dict[NormalizedName, Version], list[_Move]]:
    """*hard* with *name* pinned at *version*, without the pins that then cannot stay
    (:func:`_released_by`), and those."""
    released = _released_by(name, version, hard, probe, memo)
    new_hard = {**hard, name: version}
    for move in released:
        new_hard.pop(move.name, None)
    return new_hard, released


def _released_by(name: NormalizedName, version: Version, hard: Mapping[NormalizedName, Version],
                 probe: Provider, memo: Memo) -> list[_Move]:
    """The hard pins that cannot stay when *name* is pinned at *version*: those its
    requirements exclude, those whose own requirements exclude it, and those that require a
    package at versions none of which *name* *version* allows (pythran 0.12.1 requires
    gast~=0.5.0: with tensorflow 2.12.1, which requires gast<=0.4.0, pythran cannot stay,
    whether gast was kept or had moved already)."""
    released: list[_Move] = []
    narrowed: dict[NormalizedName, list[Req]] = {}
    for dep in probe.effective_dependencies(name, version):
        if dep.name == name:
            continue
        narrowed.setdefault(dep.name, []).append(dep)
        if dep.name in hard and not dep.allows(hard[dep.name]):
            released.append(_Move(name=dep.name, reason=f"{name} {version} requires {dep.text}"))
    gone = {m.name for m in released}
    for other, other_version in sorted(hard.items()):
        if other == name or other in gone:
            continue
        for dep in probe.effective_dependencies(other, other_version):
            if dep.name == name and not dep.allows(version):
                whose = "the release's " if probe.preferred.get(name) == version else ""
                released.append(_Move(name=other, reason=(
                    f"{other} {other_version} requires {dep.text}, which excludes {whose}{name} {version}")))
                break
            narrow = narrowed.get(dep.name, [])
            if narrow and not any(dep.allows(v) and all(n.allows(v) for n in narrow)
                                  for v in memo.versions(dep.name)):
                released.append(_Move(name=other, reason=(
                    f"{other} {other_version} requires {dep.text}, which no version of {dep.name} that "
                    f"{name} {version} allows ({', '.join(n.text for n in narrow)}) meets")))
                break
    return released


def _direct_moves(hard: dict[NormalizedName, Version], probe: Provider,
                  rank: Mapping[NormalizedName, int]) -> list[_Move]:
    """Settle the conflicts between two hard pins by the rule before resolving (what the
    resolver would report one at a time): release the one fewer of the stack depends on."""
    moves: list[_Move] = []
    while True:
        found = None
        for name in sorted(hard):
            for dep in probe.effective_dependencies(name, hard[name]):
                pinned = hard.get(dep.name)
                if pinned is not None and dep.name != name and not dep.allows(pinned):
                    found = (name, dep, pinned)
                    break
            if found:
                break
        if found is None:
            return moves
        name, dep, pinned = found
        why = f"{name} {hard[name]} requires {dep.text}"
        move_name = (rank.get(name, 0), name) <= (rank.get(dep.name, 0), dep.name)
        if move_name and not _can_move(probe, name, {dep.name: pinned}):
            # no version of the requirer accepts the pin that stays: move the other one
            move_name = False
        if move_name:
            moves.append(_Move(name=name, reason=f"{why}, which excludes the release's {dep.name} {pinned}"))
            del hard[name]
        else:
            moves.append(_Move(name=dep.name, reason=why))
            del hard[dep.name]


def _settle_moved(hard: dict[NormalizedName, Version], probe: Provider, moves: Sequence[_Move],
                  rank: Mapping[NormalizedName, int]) -> list[_Move]:
    """Make sure every moved pin has an installable version that accepts every hard pin: when
    none does, its version that conflicts with the fewest hard pins is the target (of those,
    the one whose conflicting pins fewer of the stack depend on, by the rule; then the
    nearest), and those pins move too (they could not stay whatever the moved package does)."""
    out: list[_Move] = []
    done: set[NormalizedName] = set()
    while True:
        todo = sorted({m.name for m in (*moves, *out)} - done - set(hard))
        if not todo:
            return out
        for name in todo:
            done.add(name)
            best = _fewest_blockers(name, hard, probe, rank)
            if best is None:
                continue
            version, blockers = best
            for dep_name, text in blockers:
                if dep_name in hard:
                    out.append(_Move(name=dep_name, reason=(
                        f"every version of the moved {name} conflicts with a kept pin; its nearest "
                        f"version with the fewest conflicts, {name} {version}, requires {text}")))
                    del hard[dep_name]


def _fewest_blockers(name: NormalizedName, hard: Mapping[NormalizedName, Version], probe: Provider,
                    rank: Mapping[NormalizedName, int], *, avoid: Collection[NormalizedName] = (),
                    allowed: Callable[[Version], bool] | None = None
                    ) -> tuple[Version, list[tuple[NormalizedName, str]]] | None:
    """Of *name*'s installable versions (those *allowed*; none the search excluded), the one
    whose requirements conflict with the fewest hard pins (of those, the one whose conflicting
    pins fewer of the stack depend on, by the rule; then the nearest), and those conflicting
    requirements (name, text); a version whose conflicts touch *avoid* is passed over. None
    when such a version conflicts with no hard pin (nothing needs to move), or none qualifies.
    Installability is asked last (it may build an sdist): of a version that would count."""
    avoided = set(avoid)
    out = probe.source.excluded_versions.get(name, {})
    best: tuple[tuple[int, tuple[int, ...], int], Version, list[tuple[NormalizedName, str]]] | None = None

    def usable(version: Version) -> bool:
        return probe.source.installable(name, version, probe.target)[0]

    for i, version in enumerate(probe.source.ahead(name, probe.versions(name))):
        if version in out or (allowed is not None and not allowed(version)):
            continue
        blockers = [(d.name, d.text) for d in probe.effective_dependencies(name, version)
                    if d.name in hard and d.name != name and not d.allows(hard[d.name])]
        if not blockers:
            if usable(version):
                return None
            continue
        names = {n for n, _ in blockers}
        if names & avoided:
            continue
        cost = (len(names), tuple(sorted((rank.get(n, 0) for n in names), reverse=True)), i)
        if (best is None or cost < best[0]) and usable(version):
            best = (cost, version, blockers)
    return None if best is None else (best[1], best[2])


def _widen(causes: Iterable[Any], hard: dict[NormalizedName, Version], probe: Provider, memo: Memo,
           target: Target, rank: Mapping[NormalizedName, int], anchored: set[NormalizedName]) -> list[_Move]:
    """Release the hard pins that keep a moved package from the versions the conflict asks of
    it. A moved package is tried only at versions whose own requirements accept every kept pin;
    when what requires it (tensorflow-macos 2.13.1: tensorboard<2.14,>=2.13) allows only
    versions that conflict with kept pins, no candidate is left and nothing in the conflict is
    hard-pinned to move. Then, of the installable versions the conflict allows, the one that
    conflicts with the fewest kept pins (the rule's order, then the nearest) is made possible:
    those pins move (none that is anchored). Empty when no such version helps."""
    causes = list(causes)
    out: list[_Move] = []
    for name in sorted({c.requirement.name for c in causes if c.parent is not None}):
        if name in hard or name not in probe.preferred:
            continue
        reqs = [c for c in causes if c.requirement.name == name]

        def asked_for(version: Version, name: NormalizedName = name, reqs: list[Any] = reqs) -> bool:
            return (all(c.requirement.allows(version) for c in reqs)
                    and memo.installable(name, version, target)[0])

        best = _fewest_blockers(name, hard, probe, rank, avoid=anchored, allowed=asked_for)
        if best is None:
            continue
        version, blockers = best
        asked = "; ".join(sorted({_describe(c) for c in reqs}))
        for dep_name, text in blockers:
            if dep_name in hard:
                out.append(_Move(name=dep_name, reason=(
                    f"{asked}; of the versions that allows, {name} {version} conflicts with the fewest "
                    f"kept pins: it requires {text}")))
                del hard[dep_name]
    return out


def _unblock(name: NormalizedName, hard: dict[NormalizedName, Version], probe: Provider,
             anchored: set[NormalizedName], forced: set[NormalizedName]) -> list[_Move]:
    """Release the hard pins that conflict with *name* at its (hard) release version."""
    version = hard[name]
    why = f"no version of {name} fits the rest, so it keeps the release's {version}"
    out: list[_Move] = []
    for dep in probe.dependencies_of(name, version):
        if dep.name in hard and dep.name != name and dep.name not in anchored \
                and not dep.allows(hard[dep.name]):
            out.append(_Move(name=dep.name, reason=f"{name} {version} requires {dep.text} ({why})"))
    for other, other_version in sorted(hard.items()):
        if other in anchored or other == name:
            continue
        for dep in probe.dependencies_of(other, other_version):
            if dep.name == name and not dep.allows(version):
                out.append(_Move(name=other, reason=f"{other} {other_version} requires {dep.text} ({why})"))
                break
    for move in out:
        hard.pop(move.name, None)
        forced.add(move.name)
    for dep in probe.dependencies_of(name, version):
        wanted = probe.preferred.get(dep.name)
        if (dep.name not in hard and dep.name not in anchored and dep.name not in forced
                and wanted is not None and dep.allows(wanted)
                and wanted in probe.source.versions(dep.name)
                and probe.source.installable(dep.name, wanted, probe.target)[0]):
            # a moved dependency whose release version this one accepts: it goes back too
            anchored.add(dep.name)
            hard[dep.name] = wanted
            out.append(_Move(name=dep.name, reason="__unmove__"))
            out += _unblock(dep.name, hard, probe, anchored, forced)
    return out


class _GiveUp(Exception):
    """The resolver backtracked too long on one conflict: settle it by the rule instead."""

    def __init__(self, causes: Sequence[Any]) -> None:
        super().__init__("too many backtracks")
        self.causes = causes


class _Reporter(BaseReporter):  # type: ignore[type-arg]
    """Gives a resolution up after *limit* backtracks: the search's own after :attr:`LIMIT`
    (then the rule settles the conflict), a change of the improvement pass after
    :attr:`CHANGE_LIMIT` (a change that resolves only after so many is as good as none: on
    CMSSW_14_0_0's 25 cells the changes kept took at most 95; one given up costs in proportion)."""

    LIMIT = 300
    CHANGE_LIMIT = 150

    def __init__(self, limit: int | None = None) -> None:
        self.backtracks = 0
        self.limit = self.LIMIT if limit is None else limit

    def resolving_conflicts(self, causes: Any) -> None:
        self.backtracks += 1
        if self.backtracks > self.limit:
            raise _GiveUp(list(causes))


def _hopeless(hard: Mapping[NormalizedName, Version], free: Iterable[NormalizedName],
              probe: Provider) -> bool:
    """Whether a moved pin of *free* has no version whose requirements accept every pin of
    *hard*: the resolver takes only such versions of a moved pin, so that set cannot
    resolve (pre-releases count too, as a requirement may ask for one)."""
    return any(name in probe.preferred and name not in hard and not _can_move(probe, name, hard, pre=True)
               for name in free)


def _can_move(probe: Provider, name: NormalizedName, keep: Mapping[NormalizedName, Version],
              pre: bool = False) -> bool:
    """Whether some version of *name* (pre-releases too when *pre*) accepts the pins of *keep*."""
    return any(probe.fits(name, v, keep) for v in probe.source.ahead(name, probe.versions(name, pre=pre)))


def _choose_move(causes: Iterable[Any], hard: Mapping[NormalizedName, Version],
                 rank: Mapping[NormalizedName, int], preferred: Mapping[NormalizedName, Version],
                 anchored: set[NormalizedName] | frozenset[NormalizedName] = frozenset()) -> _Move | None:
    """The hard pin to release for this conflict: of the packages in it, the one fewer of
    the stack depends on (then the one whose name sorts first). For a package that is not
    hard-pinned (moved or added), the requirements in the conflict are those that exclude
    its release version (the ones that pushed it away), or all of them for an addition."""
    causes = list(causes)
    for use_pushes in (True, False):
        involved: dict[NormalizedName, str] = {}
        for info in causes:
            req: Req = info.requirement
            parent: Cand | None = info.parent
            if parent is None:
                continue
            pinned = hard.get(req.name)
            if pinned is not None and req.allows(pinned):
                continue  # this requirement is not part of the conflict
            if pinned is None and use_pushes:
                wanted = preferred.get(req.name)
                pushes = [c for c in causes if c.parent is not None and c.requirement.name == req.name
                          and wanted is not None and not c.requirement.allows(wanted)]
                if pushes and info not in pushes:
                    continue
            if parent.name in hard:
                kept = f", which excludes the release's {req.name} {pinned}" if pinned is not None else ""
                involved.setdefault(parent.name, f"{parent} requires {req.text}{kept}")
            if pinned is not None:
                involved.setdefault(req.name, f"{parent} requires {req.text}")
        candidates = [n for n in involved if n in hard and n not in anchored]
        if candidates:
            # keep what more of the stack depends on: move the one with the fewest dependents
            victim = min(candidates, key=lambda n: (rank.get(n, 0), n))
            return _Move(name=victim, reason=involved[victim])
    return None


def _choose_drop(causes: Iterable[Any], moves: Sequence[_Move], dropped: Mapping[NormalizedName, str],
                 rank: Mapping[NormalizedName, int], anchored: set[NormalizedName],
                 hard: Mapping[NormalizedName, Version], probe: Provider | None = None
                 ) -> NormalizedName | None:
    """The moved (or anchored) package of the conflict fewer of the stack depends on. A package
    the release does not ship that excludes a kept pin (tensorflow-intel 2.12.0 on Windows) is
    the fault of the kept pins that require it (tensorflow 2.12.0), when *probe* can tell them."""
    causes = list(causes)
    moved = ({m.name for m in moves} | anchored) - set(dropped)
    guilty = {c.parent.name for c in causes if c.parent is not None and c.requirement.name in hard
              and not c.requirement.allows(hard[c.requirement.name])}
    if probe is not None and not guilty & moved:
        added = guilty - set(hard) - moved
        guilty |= {name for name, version in hard.items()
                   if any(d.name in added for d in probe.dependencies_of(name, version))}
    involved = guilty or (
        {c.requirement.name for c in causes} | {c.parent.name for c in causes if c.parent is not None})
    candidates = sorted(moved & involved, key=lambda n: (rank.get(n, 0), n))
    return candidates[0] if candidates else None


def _nearest_set(
    rel: record.Release, result: Any, provider: Provider, target: Target, *, index_url: str,
    omitted: Mapping[NormalizedName, str], moves: Sequence[_Move], dropped: Mapping[NormalizedName, str],
    unfit: Mapping[NormalizedName, str] | None = None,
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
        elif unfit and name in unfit:
            reason = f"{unfit[name]}; the nearest version that is and fits the set instead"
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
