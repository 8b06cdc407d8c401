"""FastResolver (stackmeta/resolve/resolution.py) decides exactly as resolvelib's own Resolver:
every resolution of a real search (CMSSW_14_0_0 over the recorded pypi.org snapshot, offline),
each run by both, gives the same pins, or fails with the same causes (or, where the caller asks
for none, fails); and small cases of the paths a real search rarely takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib import Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from stackmeta import record
from stackmeta.index import IndexClient
from stackmeta.index.source import IndexSource
from stackmeta.resolve import overlay, search
from stackmeta.resolve.provider import Memo, Provider
from stackmeta.resolve.resolution import FastResolution, FastResolver
from stackmeta.target import Target
from tests.resolve.test_resolve import TARGET, MemorySource

ROOT = Path(__file__).parents[2]
SNAPSHOT = ROOT / "tests" / "data" / "snapshots" / "CMSSW_14_0_0"


def _outcome(run: Any) -> tuple[str, tuple[Any, ...]]:
    try:
        result = run()
    except (ResolutionImpossible, search._GiveUp) as exc:
        return "impossible", tuple(sorted((c.requirement.text, str(c.parent)) for c in exc.causes))
    except ResolutionTooDeep:
        return "too deep", ()
    return "resolved", tuple(sorted((k, str(c.version)) for k, c in result.mapping.items()))


Outcome = tuple[str, tuple[Any, ...]]


def _both(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Outcome, Outcome]]:
    """Every FastResolver resolution from now on also run by resolvelib's own Resolver (with a
    new reporter of the same kind and limit); the outcomes of both, in order."""
    fast = FastResolver.resolve
    seen: list[tuple[Outcome, Outcome]] = []

    def both(self: FastResolver, requirements: Any, max_rounds: int = 100, causes: bool = True) -> Any:
        roots = list(requirements)
        reporter = self.reporter
        limit = getattr(reporter, "limit", None)

        def fresh() -> Any:
            return type(reporter)() if limit is None else type(reporter)(limit=limit)

        ours = _outcome(lambda: fast(FastResolver(self.provider, fresh()), roots, max_rounds=max_rounds,
                                     causes=causes))
        theirs = _outcome(lambda: Resolver(self.provider, fresh()).resolve(roots, max_rounds=max_rounds))
        if not causes and ours == ("impossible", ()):  # no causes asked for: the outcome alone
            theirs = (theirs[0], ())
        seen.append((ours, theirs))
        return fast(self, roots, max_rounds=max_rounds, causes=causes)

    monkeypatch.setattr(FastResolver, "resolve", both)
    return seen


def test_every_resolution_of_a_real_search_is_resolvelibs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _both(monkeypatch)
    rel = record.load_release(ROOT / "locks", "CMSSW_14_0_0")
    target = Target(python=Version("3.9.14"))
    with IndexClient(SNAPSHOT.as_uri(), False, retries=0) as client:
        nearest = search.resolve(rel, IndexSource(client, target), target, index_url=client.index_url)
    kinds = [ours[0] for ours, _ in seen]
    # the search's resolutions: conflicts found one at a time, then the improvement pass,
    # whose changes may not resolve at all
    assert kinds.count("impossible") >= 1 and kinds.count("resolved") >= 3
    assert all(len(ours[1]) > 0 for ours, _ in seen if ours != ("impossible", ()))
    assert [ours for ours, _ in seen] == [theirs for _, theirs in seen]
    assert {d.name for d in nearest.deviations} >= {"tensorflow", "awkward"}


def test_every_resolution_of_a_groups_plan_is_resolvelibs(monkeypatch: pytest.MonkeyPatch) -> None:
    # the plan of an override on a release's set (stackmeta env, build --base): its resolutions
    # stop at a limit of backtracks (overlay._Patience), which both resolvers count alike
    rel = record.load_release(ROOT / "locks", "CMSSW_14_0_0")
    target = Target(python=Version("3.9.14"))
    with IndexClient(SNAPSHOT.as_uri(), False, retries=0) as client:
        source = IndexSource(client, target)
        nearest = search.resolve(rel, source, target, index_url=client.index_url)
        seen = _both(monkeypatch)
        # the release's own tensorflow over the set, which moved it for numpy 1.24.3
        found = overlay.plan(nearest, source, target,
                             overrides=[overlay.parse_override("tensorflow==2.12.0")])
    kinds = [ours[0] for ours, _ in seen]
    assert kinds.count("impossible") >= 1 and kinds.count("resolved") >= 1
    assert [ours for ours, _ in seen] == [theirs for _, theirs in seen]
    assert "numpy" in {m.name for m in found.moves}


def _small(projects: dict[str, dict[str, list[str]]], hard: dict[str, str], free: list[str],
           rank: dict[str, int]) -> tuple[Any, list[Any]]:
    """A provider over *projects* (MemorySource) with *hard* pinned and *free* moved pins (the
    release's version: their first), and the roots of a resolution."""
    memo = Memo(MemorySource(projects))
    pins = {canonicalize_name(n): Version(v) for n, v in hard.items()}
    preferred = {**pins, **{canonicalize_name(n): Version(sorted(projects[n])[0]) for n in free}}
    provider = Provider(memo, TARGET, hard=pins, preferred=preferred,
                        rank={canonicalize_name(n): r for n, r in rank.items()})
    roots = [memo.root(n, v) for n, v in sorted(pins.items())]
    roots += [memo.root(canonicalize_name(n)) for n in free]
    return provider, roots


def test_a_backjump_through_the_hard_pins_fails_as_resolvelibs(monkeypatch: pytest.MonkeyPatch) -> None:
    # z (pinned first: more depends on it) at 1; y 1 requires z>=3, which no z is: the
    # optimistic backjump pops z (named by the conflict, nothing in common with it) and reaches
    # the hard pins before saving anything; resolvelib saves at the hard pin a, fails, rolls
    # back, pins again and fails for good, with the same causes
    projects = {"a": {"1": []}, "z": {"1": [], "2": []}, "y": {"1": ["z>=3"]}}
    provider, roots = _small(projects, {"a": "1"}, ["z", "y"], {"z": 1})
    saved: list[object] = []
    keep = FastResolution._save_at_hard_pins

    def spy(self: FastResolution, state: Any) -> None:
        saved.append(state)
        keep(self, state)

    monkeypatch.setattr(FastResolution, "_save_at_hard_pins", spy)
    ours = _outcome(lambda: FastResolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    theirs = _outcome(lambda: Resolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    assert saved, "the backjump did not reach the hard pins before saving"
    assert ours == theirs
    assert ours == ("impossible", (("z", "None"), ("z>=3", "y 1")))


def test_hard_pins_that_conflict_among_themselves_have_no_resolution() -> None:
    # a 1 requires c<2 and b 1 requires c>=2: no set, found while pinning the hard pins; with
    # causes, resolvelib's own (the resolution run its way); without, none
    projects = {"a": {"1": ["c<2"]}, "b": {"1": ["c>=2"]}, "c": {"1": [], "2": []}}
    provider, roots = _small(projects, {"a": "1", "b": "1"}, [], {})
    theirs = _outcome(lambda: Resolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    assert theirs[0] == "impossible" and theirs[1]
    fast = FastResolver(provider, search._Reporter())
    assert _outcome(lambda: fast.resolve(roots, max_rounds=100)) == theirs
    fast = FastResolver(provider, search._Reporter())
    assert _outcome(lambda: fast.resolve(roots, max_rounds=100, causes=False)) == ("impossible", ())


def test_a_hard_pins_root_made_once_is_asked_again_when_the_search_rules_it_out() -> None:
    # the root criterion of a hard pin is kept for the search's next resolutions; once the
    # search rules that version out (excluded_versions) or another provider pins another
    # version, the next resolution asks the provider again, as resolvelib does
    projects = {"a": {"1": ["b"], "2": ["b"]}, "b": {"1": []}}
    provider, roots = _small(projects, {"a": "1"}, [], {})
    first = _outcome(lambda: FastResolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    assert first == ("resolved", (("a", "1"), ("b", "1")))
    assert provider.source.hard_roots, "the hard pin's root was not kept"
    again = _outcome(lambda: FastResolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    assert again == first
    provider.source.excluded_versions[canonicalize_name("a")] = {Version("1"): "ruled out"}
    theirs = _outcome(lambda: Resolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    ours = _outcome(lambda: FastResolver(provider, search._Reporter()).resolve(roots, max_rounds=100))
    assert ours == theirs == ("impossible", (("a==1", "None"),))
    provider.source.excluded_versions.clear()
    other = Provider(provider.source, TARGET, hard={canonicalize_name("a"): Version("2")},
                     preferred=provider.preferred, rank={})
    # the same root requirement (a==1) under a provider that pins a at 2: no candidate
    assert _outcome(lambda: FastResolver(other, search._Reporter()).resolve(roots, max_rounds=100)) \
        == _outcome(lambda: Resolver(other, search._Reporter()).resolve(roots, max_rounds=100))
