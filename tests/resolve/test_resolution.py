"""FastResolver (stackmeta/resolve/resolution.py) decides exactly as resolvelib's own Resolver:
every resolution of a real search (CMSSW_14_0_0 over the recorded pypi.org snapshot, offline),
each run by both, gives the same pins, or fails with the same causes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from resolvelib import Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from stackmeta import record
from stackmeta.index import IndexClient
from stackmeta.index.source import IndexSource
from stackmeta.resolve import overlay, search
from stackmeta.resolve.resolution import FastResolver
from stackmeta.target import Target

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

    def both(self: FastResolver, requirements: Any, max_rounds: int = 100) -> Any:
        roots = list(requirements)
        reporter = self.reporter
        limit = getattr(reporter, "limit", None)

        def fresh() -> Any:
            return type(reporter)() if limit is None else type(reporter)(limit=limit)

        ours = _outcome(lambda: fast(FastResolver(self.provider, fresh()), roots, max_rounds=max_rounds))
        theirs = _outcome(lambda: Resolver(self.provider, fresh()).resolve(roots, max_rounds=max_rounds))
        seen.append((ours, theirs))
        return fast(self, roots, max_rounds=max_rounds)

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
    assert all(len(ours[1]) > 0 for ours, _ in seen)
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
