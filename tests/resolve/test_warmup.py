"""Cold cells warmed up (stackmeta.resolve.warmup): searched at once in threads before the exact
run, on the synthetic release of test_cells (real sdists built through PEP 517, a real
pypiserver on loopback). A warm-up changes what is fetched when, never a cell's set."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.resolve import warmup
from stackmeta.resolve.cells import resolve_cells
from tests.pypiserver_fixture import pypiserver
from tests.resolve.test_cells import CELLS, RELEASE, fill


def _resolve(index: str, cache: Path, builds: Path, threads: int) -> Any:
    with IndexClient(index, cache_dir=cache) as client:
        return resolve_cells(RELEASE, client, CELLS, builds=Builds(client, folder=builds), warm_up=threads)


def test_cells_warmed_up_get_the_sets_they_get_one_by_one(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bool] = []
    guesses: dict[Any, Any] = {}
    real_settled, real_guess = warmup.WarmUp.settled, warmup.WarmUp.guess

    def settled(self: Any, cell: Any, nearest: Any, *, guessed: bool = False) -> None:
        taken.append(guessed)
        real_settled(self, cell, nearest, guessed=guessed)

    def guess(self: Any, cell: Any) -> Any:
        found = guesses[cell] = real_guess(self, cell)
        return found

    monkeypatch.setattr(warmup.WarmUp, "settled", settled)
    monkeypatch.setattr(warmup.WarmUp, "guess", guess)
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        # each run builds its sdists (the searches ahead wait for builds, as a first cold run does)
        one_by_one = _resolve(server.simple, tmp_path / "cache1", tmp_path / "builds1", threads=0)
        builds = tmp_path / "builds2"
        assert not any(taken) and set(guesses.values()) == {None}
        taken.clear()
        with IndexClient(server.simple, cache_dir=tmp_path / "cache2") as client:
            cold = warmup.cold_cells(RELEASE, client, CELLS)
        assert cold == list(CELLS)  # an empty cache: every cell is cold
        at_once = _resolve(server.simple, tmp_path / "cache2", builds, threads=4)
        assert at_once.results == one_by_one.results
        assert at_once.failed == ()
        # the cells searched (not taken from an earlier cell) took their search run ahead
        searched = [r for r in at_once.results if r.same_as is None]
        assert sum(taken) == len(searched) >= 2
        # a guess holds only with the very hints it was given, and the same answers
        home = next(r.cell for r in searched if not guesses[r.cell].hint_cells)
        later = next(g for g in guesses.values() if g.hint_cells and g.hints)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache2") as client:
            built = Builds(client, folder=builds)  # the verdicts of the sdists' builds, as in the runs
            source = IndexSource(client, home.target, builds=built)
            assert guesses[home].holds((), [], source)
            assert not guesses[home].holds(later.hint_cells, list(later.hints), source)
            # an equal set is not the same one: the exact run compares the very objects it gave
            copies = [dataclasses.replace(h) for h in later.hints]
            assert copies == list(later.hints)
            assert not later.holds(later.hint_cells, copies, source)
            # another cell's source answers otherwise (its Python's wheels)
            other = next(c for c in CELLS if c.python != home.python)
            assert not guesses[home].holds((), [], IndexSource(client, other.target, builds=built))
            # without builds, the source answers otherwise whether an sdist-only version installs
            assert not guesses[home].holds((), [], IndexSource(client, home.target))
        # the cache is warm now: nothing is warmed up
        with IndexClient(server.simple, cache_dir=tmp_path / "cache2") as client:
            assert warmup.cold_cells(RELEASE, client, CELLS) == []
            assert warmup.WarmUp(RELEASE, client, CELLS).cells == []


def _stuck(*_a: Any, progress: Any, **_k: Any) -> None:
    """A search that never ends but reports progress (as a real one does at every step)."""
    while True:
        progress.advance()
        time.sleep(0.01)


def _warmup_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stackmeta-warmup-")]


def test_leaving_stops_the_threads_and_a_bug_in_one_is_raised(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            monkeypatch.setattr(warmup, "resolve", _stuck)
            with warmup.WarmUp(RELEASE, client, CELLS, threads=3) as reading:
                assert len(reading.cells) == len(CELLS)
                time.sleep(0.3)
                assert len(_warmup_threads()) == 3
            # the run ended (here: early, as on Ctrl-C): each thread stops at its next step
            deadline = time.monotonic() + 5
            while _warmup_threads() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _warmup_threads() == []

            def broken(*_a: Any, **_k: Any) -> None:
                raise ZeroDivisionError("a bug in the search")

            monkeypatch.setattr(warmup, "resolve", broken)
            with pytest.raises(ZeroDivisionError, match="a bug in the search"), \
                    warmup.WarmUp(RELEASE, client, CELLS, threads=2) as reading:
                reading.guess(CELLS[-1])
