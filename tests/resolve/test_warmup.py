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

from stackmeta import record
from stackmeta.cells import home_cell
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.resolve import remote, warmup
from stackmeta.resolve.cells import resolve_cells
from tests.pypiserver_fixture import make_wheel, package, pypiserver, synthetic_release
from tests.resolve.test_cells import CELLS, PLATFORM_TAGS, RELEASE, fill


def _resolve(index: str, cache: Path, builds: Path, threads: int, processes: int = 0) -> Any:
    with IndexClient(index, cache_dir=cache) as client:
        return resolve_cells(RELEASE, client, CELLS, builds=Builds(client, folder=builds), warm_up=threads,
                             processes=processes)


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
            # the hints compared are sets equal to those given (another process's are copies),
            # and one pin otherwise is another hint
            own = IndexSource(client, next(c for c, g in guesses.items() if g is later).target, builds=built)
            copies = [dataclasses.replace(h) for h in later.hints]
            assert later.holds(later.hint_cells, copies, own)
            other_pin = dataclasses.replace(copies[0], pins=copies[0].pins[1:])
            assert not later.holds(later.hint_cells, [other_pin, *copies[1:]], own)
            elsewhere = tuple(c for c in CELLS if c not in later.hint_cells)[:len(copies)]
            assert not later.holds(elsewhere, copies, own)  # the same sets, as other cells' hints
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


# the release with a package at another version on each platform: no cell has another's
# answers, so every cell is searched (in the synthetic release most cells take an earlier one's)
APART = synthetic_release([*RELEASE.packages, package("platish", "1.0")])


def _fill_apart(packages: Path) -> None:
    fill(packages)
    for i, plat in enumerate(PLATFORM_TAGS.values()):
        make_wheel(packages, "platish", f"1.{i}", tag=f"py3-none-{plat}")


def _resolve_apart(index: str, cache: Path, builds: Path, processes: int) -> Any:
    with IndexClient(index, cache_dir=cache) as client:
        return resolve_cells(APART, client, CELLS, builds=Builds(client, folder=builds),
                             warm_up=warmup.THREADS if processes else 0, processes=processes)


def _remote_searches(monkeypatch: pytest.MonkeyPatch, before: Any = None) -> list[tuple[Any, Any]]:
    """The searches the second processes made, as the parent got them: (cell, guess)."""
    made: list[tuple[Any, Any]] = []
    real = remote.Remote.search

    def search(self: Any, cell: Any, *args: Any) -> Any:
        if before is not None:
            before(self)
        guess = real(self, cell, *args)
        made.append((cell, guess))
        return guess

    monkeypatch.setattr(remote.Remote, "search", search)
    return made


def test_warm_cells_searched_in_a_second_process_get_the_sets_they_get_one_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[tuple[Any, bool]] = []
    real_settled = warmup.WarmUp.settled

    def settled(self: Any, cell: Any, nearest: Any, *, guessed: bool = False) -> None:
        taken.append((cell, guessed))
        real_settled(self, cell, nearest, guessed=guessed)

    monkeypatch.setattr(warmup.WarmUp, "settled", settled)
    made = _remote_searches(monkeypatch)
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        one_by_one = _resolve_apart(server.simple, cache, builds, processes=0)
        assert made == [] and all(r.same_as is None for r in one_by_one.results)
        with IndexClient(server.simple, cache_dir=cache) as client, \
                warmup.WarmUp(APART, client, CELLS, processes=1) as warm:
            assert (warm.cells, warm.processes) == (list(CELLS), 1)  # warm: every cell, one process
        taken.clear()
        two = _resolve_apart(server.simple, cache, builds, processes=1)
        assert two.results == one_by_one.results and two.failed == ()
        # the second process searched cells, and the exact run took each of them (the same
        # hints, the same answers); the other cells it searched itself
        from_remote = [c for c, g in made if g is not None]
        assert from_remote and sorted(c for c, guessed in taken if guessed) == sorted(from_remote)
        assert len(taken) == len(CELLS) > len(from_remote)


def test_a_second_process_reads_what_is_at_hand_before_its_first_search(tmp_path: Path) -> None:
    # started before the parent looks at the cache, it reads the release's pages and its pins'
    # metadata from the disk cache meanwhile, and never asks the index (here: gone)
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        _resolve_apart(server.simple, cache, builds, processes=0)
        index = server.simple
    with IndexClient(index, cache_dir=cache, retries=0, timeout=2) as client:
        asked: list[str] = []
        real_get = client.transport.get
        client.transport.get = lambda url, **kw: asked.append(url) or real_get(url, **kw)  # type: ignore[method-assign]
        warmup.preload(APART, client, list(record.pins(APART)))
        source = IndexSource(client, home_cell(APART.python).target)  # its pins' files, as pip picks there
        for name, version in record.pins(APART):
            assert client.read_before(name)[0]
            chosen = source._metadata_file(name, version)
            assert chosen is None or client.metadata_read_before(chosen)
        # a stale page is not at hand: nothing read, and still no request (the index is gone)
        client.page_max_age = 1e-9
        assert client.projects_at_hand(["platish", "alpha"]) == []
        assert asked == []


def test_a_cold_cache_stops_the_second_processes_started_before_it_was_looked_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[remote.Remote] = []
    real_init = remote.Remote.__init__

    def init(self: remote.Remote, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(remote.Remote, "__init__", init)
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client, \
                warmup.WarmUp(APART, client, CELLS, processes=1) as cold:
            # the process was started, then stopped once the cache was found cold: the cold
            # cells are searched in threads
            assert len(started) == 1 and not started[0].alive and started[0]._proc.returncode is not None
            assert cold.processes == 0 and cold._remotes == [] and cold.cells == list(CELLS)


def test_a_second_process_gone_leaves_its_cells_to_the_exact_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        one_by_one = _resolve_apart(server.simple, cache, builds, processes=0)
        made = _remote_searches(monkeypatch, before=lambda r: r._proc.kill())  # killed (say, out of memory)
        gone = _resolve_apart(server.simple, cache, builds, processes=1)
        assert gone.results == one_by_one.results
        assert [g for _, g in made] == [None]  # it asked once, got nothing, and took no more cells


def _site(tmp_path: Path, body: str) -> Path:
    """A folder with a sitecustomize.py that the child process imports at startup: *body*
    given the child's stackmeta.resolve.search as ``s``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import stackmeta.resolve.search as s\n" + body)
    return site


def test_a_second_process_that_hangs_is_stopped_and_its_cells_searched_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _site(tmp_path, "import time\ndef stuck(*a, **k):\n    time.sleep(3600)\ns.resolve = stuck\n")
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        one_by_one = _resolve_apart(server.simple, cache, builds, processes=0)
        made = _remote_searches(monkeypatch)
        monkeypatch.setenv("PYTHONPATH", str(site))
        monkeypatch.setattr(remote, "SEARCH_LIMIT", 2.0)
        start = time.monotonic()
        stopped = _resolve_apart(server.simple, cache, builds, processes=1)
        assert stopped.results == one_by_one.results
        assert [g for _, g in made] == [None] and time.monotonic() - start < 60


def test_a_bug_in_the_second_process_is_raised_and_leaving_stops_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    site = _site(tmp_path, "def broken(*a, **k):\n    raise ZeroDivisionError('a bug in the search')\n"
                           "s.resolve = broken\n")
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        _resolve_apart(server.simple, cache, builds, processes=0)
        monkeypatch.setenv("PYTHONPATH", str(site))
        with pytest.raises(remote.RemoteBug, match="ZeroDivisionError: a bug in the search"):
            _resolve_apart(server.simple, cache, builds, processes=1)
        with IndexClient(server.simple, cache_dir=cache) as client:
            with warmup.WarmUp(APART, client, CELLS, processes=1) as warming:
                child = warming._remotes[0]._proc
                assert child.poll() is None
            # gone once the run is (it ignores Ctrl-C: the parent stops it)
            assert child.returncode is not None


def test_a_bug_in_the_second_processs_reading_ahead_is_raised(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # it reads before its first search: a bug there is the run's bug, not a process quietly gone
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import stackmeta.resolve.warmup as w\n"
        "def broken(*a, **k):\n    raise ZeroDivisionError('a bug in reading ahead')\n"
        "w.preload = broken\n")
    with pypiserver(tmp_path / "server") as server:
        _fill_apart(server.packages)
        cache, builds = tmp_path / "cache", tmp_path / "builds"
        _resolve_apart(server.simple, cache, builds, processes=0)
        monkeypatch.setenv("PYTHONPATH", str(site))
        with pytest.raises(remote.RemoteBug, match="ZeroDivisionError: a bug in reading ahead"):
            _resolve_apart(server.simple, cache, builds, processes=1)


class _Labels:
    """A progress that keeps the labels it was started with."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def start(self, what: str, total: int | None) -> None:
        self.labels.append(what)

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


def test_the_bar_says_when_the_searches_ahead_wait_for_sdist_builds(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            builds = Builds(client, folder=tmp_path / "builds")

            def building(*_a: Any, progress: Any, **_k: Any) -> None:
                # a search whose sdists build for a while (as Builds counts them), then ends
                with builds._counted():
                    time.sleep(3 * warmup.WAIT_STEP)
                from stackmeta.errors import ResolutionError
                raise ResolutionError("no consistent set")

            monkeypatch.setattr(warmup, "resolve", building)
            shown = _Labels()
            with warmup.WarmUp(RELEASE, client, CELLS, builds=builds, threads=2, progress=shown) as reading:
                assert len(reading.cells) == len(CELLS)  # an empty cache: all cold
                guess = reading.guess(CELLS[0])
            assert guess is not None and guess.failure == "no consistent set"
            assert "cold cells searched ahead, building sdists" in shown.labels


def test_a_release_that_cannot_be_sent_leaves_the_cells_here(tmp_path: Path) -> None:
    with IndexClient("https://pypi.org/simple", cache_dir=tmp_path / "cache") as client:
        spec = remote.ClientSpec.of(client, None)
    assert spec is not None
    unsendable = dataclasses.replace(RELEASE, packages=(*RELEASE.packages, lambda: None))  # type: ignore[arg-type]
    child = remote.Remote(unsendable, spec)
    assert not child.alive  # closed at once: the release could not be pickled
    assert child._proc.returncode is not None
    assert child.search(CELLS[0], None, lambda: ((), ())) is None  # its cells are searched here


def test_answers_from_another_process_are_made_of_the_answers_seen_before() -> None:
    # a second process's answers arrive as new objects (unpickled): interned as they arrive,
    # each collection of versions equal to one seen before is that one, and a new one is made
    # of the versions seen before (40,000 versions a cell, kept by every guess waiting)
    from packaging.version import Version

    from stackmeta.resolve.provider import Answers

    def answers(versions: list[str], asked: list[str]) -> Answers:
        key = (Version(versions[0]), frozenset[str]())
        return Answers(versions=(("numpy", frozenset(Version(v) for v in versions)),),
                       wheels=(("numpy", tuple(Version(v) for v in asked), frozenset([Version(asked[0])])),),
                       installable=(("numpy", Version(asked[0]), True),),
                       evaluated=((("numpy", *key), ("six>=1",)),))

    shared: dict[object, object] = {}
    first = answers(["1.0", "1.1"], ["1.1"]).interned(shared)
    same = answers(["1.0", "1.1"], ["1.1"]).interned(shared)
    assert same == first and same.versions[0][1] is first.versions[0][1]
    assert same.wheels[0][1] is first.wheels[0][1] and same.evaluated[0][1] is first.evaluated[0][1]
    other = answers(["1.0", "1.1", "1.2"], ["1.2", "1.1"]).interned(shared)
    assert other.versions[0][1] == frozenset({Version("1.0"), Version("1.1"), Version("1.2")})
    seen = {id(v) for v in first.versions[0][1]}
    assert {id(v) for v in other.versions[0][1]} & seen == seen  # 1.0 and 1.1: the objects seen before
    assert other.wheels[0][1][1] is next(v for v in first.versions[0][1] if v == Version("1.1"))
