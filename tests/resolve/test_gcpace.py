"""The garbage collector during a search: full passes rare, and nothing the search makes left
to them (a provider is freed as soon as its resolution is done)."""

from __future__ import annotations

import gc
import weakref

from stackmeta.resolve import search
from stackmeta.resolve.gcpace import FULL_EVERY, rare_full_collections
from stackmeta.resolve.resolution import FastResolver
from tests.resolve.test_resolution import _small


def test_full_collections_are_rare_within_and_as_before_after() -> None:
    before = gc.get_threshold()
    with rare_full_collections():
        inside = gc.get_threshold()
        with rare_full_collections(every=5):  # nested: never lowers what the outer asked
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert inside == (before[0], before[1], max(before[2], FULL_EVERY))
    assert gc.get_threshold() == before


def test_the_thresholds_come_back_when_the_search_fails() -> None:
    before = gc.get_threshold()
    try:
        with rare_full_collections():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_threshold() == before


def test_a_provider_and_what_it_found_go_with_their_last_reference() -> None:
    # the provider is asked through a resolution (its order of identifiers filled in); once
    # dropped it must be freed by its reference count, not wait for a full collection
    projects = {"a": {"1": ["b>=1"]}, "b": {"1": [], "2": ["c"]}, "c": {"1": []}}
    provider, roots = _small(projects, {"a": "1"}, ["b"], {"b": 1})
    result = FastResolver(provider, search._Reporter()).resolve(roots, max_rounds=100)
    assert {c.name: str(c.version) for c in result.mapping.values()} == {"a": "1", "b": "1"}
    assert provider.order_of("b")[2] == "b"
    gone = weakref.ref(provider)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del provider, result
        assert gone() is None, "the provider is kept alive by a reference cycle"
    finally:
        if enabled:
            gc.enable()


def test_blocks_that_overlap_in_threads_leave_the_thresholds_as_they_were() -> None:
    # two searches in threads: the first ends while the second runs, then the second ends
    import threading

    before = gc.get_threshold()
    first, second = rare_full_collections(), rare_full_collections()
    first.__enter__()
    thread = threading.Thread(target=second.__enter__)
    thread.start()
    thread.join(5)
    first.__exit__(None, None, None)
    assert gc.get_threshold()[2] == max(before[2], FULL_EVERY)  # the second still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
