"""Cells searched ahead of the exact run, each as the exact run would: from a cold cache
several at once in threads (they wait on the index), from a warm one in a second process (they
are CPU-bound, and one process runs one search at a time).

A search learns which versions it needs only as it goes, so from a cold cache it reads their
metadata in small batches one after another and waits on the index most of its time (a cell of
CMSSW_14_0_0 from pypi.org: about 60 batches, 25 s, of which 4 s CPU). The exact run of a
release's cells (:func:`stackmeta.resolve.cells.resolve_cells`) goes cell by cell: a cell's
search takes as hints the sets of the (at most two) nearest cells searched before it, and a cell
whose source answers alike an earlier cell's search is not searched at all.

:class:`WarmUp` runs the searches of the cold cells a few at once in threads, in the exact
run's order, each with the hints the exact run will give it if every cell before it is searched
(its improvement pass, the only part that uses them, waits for the sets of those cells). Each
search's set and what it asked (:class:`~stackmeta.resolve.provider.Answers`) are kept as a
:class:`Guess`. The exact run takes a guess as the cell's set only when it would have searched
that cell with the same hints and set before, and the cell's source answers every question of
the guess alike (asked again, on a fresh memo): the search is a function of these, so it would
find that set. Else it searches, finding at hand what the guess read. So the sets are the same
as cell by cell; only when things are fetched, and by which thread, changes.

A cell is cold when the metadata of many of its release pins needs a request (neither read by
the client nor in its disk cache). With a warm cache the cells are searched by turns by the
exact run itself and by second processes (:mod:`stackmeta.resolve.remote`: started before the
cache is looked at, each reading meanwhile what is at hand, :func:`preload`), a process taking
first a cell whose hints are known: the exact run's sets, or a guess's set not yet settled (a
guess given a set the exact run does not settle on has other hints than the exact run's, and
is not taken). Ctrl-C stops the threads at their next step (they are daemons: the process does
not wait for them) and the processes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import record
from stackmeta.cells import Cell, home_cell
from stackmeta.errors import ResolutionError, StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.nearest import NearestSet
from stackmeta.resolve.provider import Answers, Memo
from stackmeta.resolve.remote import ClientSpec, Remote
from stackmeta.resolve.search import resolve

THREADS = 12  # cold cells searched at once (they share the client's requests in flight)
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
PROCESSES = min(3, _CORES - 1)  # warm cells: searched in this many more processes, by turns with this one
COLD_SHARE = 0.1  # a cell is cold when more than this share of its pins' metadata needs a request
WAIT_STEP = 0.5  # seconds between looks at the threads (Ctrl-C is seen at once anyway)


class _Stopped(Exception):
    """Raised in a warm-up thread when the run stops (not a StackmetaError: nothing
    catches it on the way up)."""


class _Stopper:
    """The progress of a warm-up thread: shows nothing, raises :class:`_Stopped` once
    *stop* is set (a search reports progress at every resolution it tries)."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def start(self, what: str, total: int | None) -> None:
        self.advance()

    def advance(self, n: int = 1) -> None:
        if self._stop.is_set():
            raise _Stopped

    def done(self) -> None:
        pass


def cold_cells(rel: record.Release, client: IndexClient, cells: Sequence[Cell], *,
               builds: Builds | None = None, progress: Progress = NO_PROGRESS) -> list[Cell]:
    """The *cells* whose pins' metadata needs more than :data:`COLD_SHARE` requests (the
    release's pages read first, all at once, those the client read before not again)."""
    if not cells:
        return []
    pins = list(record.pins(rel))
    names = sorted(p.name for p in rel.packages)
    IndexSource(client, cells[0].target, builds=builds).prefetch(names, progress)
    enough = int(COLD_SHARE * len(pins)) + 1
    return [cell for cell in cells
            if IndexSource(client, cell.target, builds=builds).unread(pins, enough) >= enough]


def nearby(earlier: Sequence[Cell], cell: Cell) -> list[Cell]:
    """*earlier* (cells searched before *cell*, in order) as *cell*'s search looks at them: those
    of its Python first (their sets are the likeliest alike); the first two give its hints."""
    return sorted(earlier, key=lambda c: c.python != cell.python)


@dataclass(frozen=True, kw_only=True, slots=True)
class Guess:
    """A cell's search run ahead: the hints it was given (their cells, and the sets as the
    exact run had them; None when it ended before it asked for them), and its set (or the
    search's one-line failure) and what it asked."""

    hint_cells: tuple[Cell, ...]
    hints: tuple[NearestSet, ...] | None
    nearest: NearestSet | None
    failure: str | None
    answers: Answers

    def holds(self, hint_cells: Sequence[Cell], hints: Sequence[NearestSet], source: IndexSource) -> bool:
        """Whether the exact run's search of the cell would find this: given the same hints
        (the same cells, and sets equal to the exact run's: a search reads nothing else of
        them), and every question asked again on a fresh memo of *source* answered alike
        (:meth:`Answers.same`)."""
        return (self.hints is None or (self.hint_cells == tuple(hint_cells) and self.hints == tuple(hints))) \
            and self.answers.same(Memo(source), source.target)


def search_ahead(rel: record.Release, client: IndexClient, cell: Cell, *, builds: Builds | None,
                 pins: Sequence[tuple[NormalizedName, Version]], before: NearestSet | None,
                 hints: Callable[[], tuple[Sequence[Cell], Sequence[NearestSet]]],
                 progress: Progress = NO_PROGRESS) -> Guess:
    """*cell*'s search, as the exact run would make it, kept as a :class:`Guess`: *hints* gives
    the hint cells and their sets when the improvement pass asks for them (it may wait); the
    search's one-line failure is a guess too. In a warm-up thread and in a second process
    (:mod:`stackmeta.resolve.remote`)."""
    source = IndexSource(client, cell.target, builds=builds)
    source.prefetch_dependencies(pins, progress)
    source.build_sdists(pins, progress)
    memo = Memo(source)
    given: tuple[Sequence[Cell], Sequence[NearestSet]] | None = None

    def hint_sets() -> list[NearestSet]:
        nonlocal given
        given = hints()
        return list(given[1])

    nearest, failure = None, None
    try:
        nearest = resolve(rel, source, cell.target, index_url=client.index_url, progress=progress, memo=memo,
                          hints=hint_sets, before=before)
    except ResolutionError as exc:
        failure = str(exc)
    return Guess(hint_cells=() if given is None else tuple(given[0]),
                 hints=None if given is None else tuple(given[1]),
                 nearest=nearest, failure=failure, answers=memo.answers())


def preload(rel: record.Release, client: IndexClient, pins: Sequence[tuple[NormalizedName, Version]]) -> None:
    """Read what a second process's first search needs and the disk cache holds: the release's
    pages and its pins' metadata (for its home cell; most files serve every cell). Never a
    request: it runs while the parent looks whether the cache is warm at all (when it is not,
    the parent stops the process), and what is not at hand is read when a search asks."""
    client.projects_at_hand(sorted(p.name for p in rel.packages))
    IndexSource(client, home_cell(rel.python).target).prefetch_at_hand(pins)


class WarmUp:
    """The cells of *order* (the exact run's) searched ahead, in order (see the module's
    docstring): from a cold cache the cold ones (:func:`cold_cells`; at least two, one cell
    alone waits as long either way) in *threads* threads at once; else, from a warm cache,
    the cells are searched by turns by the exact run and *processes* second processes
    (:class:`~stackmeta.resolve.remote.Remote`), the searches being CPU-bound (nothing ahead
    with no process, or no disk cache the processes could share). Used as a context manager
    around the exact run, which asks :meth:`guess` for a cell when it would search it and tells
    :meth:`settled` each cell's outcome; leaving it stops the threads and the processes. An
    error of a search is a guess like a set; a bug in a thread or a process is raised by
    :meth:`guess` or on leaving."""

    def __init__(self, rel: record.Release, client: IndexClient, order: Sequence[Cell], *,
                 builds: Builds | None = None,
                 before: Callable[[Cell], NearestSet | None] = lambda _: None,
                 threads: int = THREADS, processes: int = 0, progress: Progress = NO_PROGRESS,
                 shared: dict[object, object] | None = None) -> None:
        self.rel, self.client, self.builds, self.before = rel, client, builds, before
        # the exact run's answers alike in several cells (Memo.answers): each guess is made of
        # them as it arrives, and kept so when taken (a guess may wait a while to be taken;
        # several did, each a second process's copy of every answer: the parent's peak). Used by
        # the exact run's thread too: dict.setdefault at once from two threads keeps at worst an
        # equal object twice
        self._shared: dict[object, object] = {} if shared is None else shared
        self.progress = progress
        spec = ClientSpec.of(client, builds) if processes > 0 and len(order) >= 2 else None
        # the processes start before the cache is looked at: each reads meanwhile what its first
        # search needs and is at hand (:func:`preload`); a cold cache stops them
        self._remotes = [] if spec is None else self._start(spec, processes)
        try:
            cold = cold_cells(rel, client, order, builds=builds, progress=progress) if threads > 0 else []
        except BaseException:
            self._close()
            raise
        self.cells: list[Cell] = []
        self.processes = 0  # second processes searching
        if len(cold) >= 2:
            self._close()
            self.cells = cold
        elif self._remotes:
            self.cells, self.processes, threads = list(order), len(self._remotes), 0
        self._order = list(order)
        self._position = {c: i for i, c in enumerate(order)}
        # each cell's hint cells if every cell before it is searched (see _hints)
        self._hint_cells = {c: tuple(nearby(order[:self._position[c]], c)[:2]) for c in self.cells}
        self._pins = list(record.pins(rel))
        # who searches each cell: True, a searcher ahead; False, the exact run itself. Cold
        # cells are all searched ahead, in order. Warm, each search costs CPU wherever it runs:
        # the exact run searches a cell itself unless a process took it, and a process leaves
        # the exact run the first cell not yet taken from where it is (its next), so that the
        # two take turns rather than wait for each other (see _next)
        self._claims: dict[Cell, bool] = {}
        self._at = 0  # the position in *order* of the exact run
        self._lead = 1 if self.processes else 0
        self._guesses: dict[Cell, Guess | None] = {}  # None: stopped, or a bug (until settled)
        self._made = 0  # searches ahead ended (the bar's count)
        self._settled: dict[Cell, NearestSet | None] = {}  # the exact run's sets (None: not searched)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._failures: list[BaseException] = []
        self._stopper = _Stopper(self._stop)
        self._threads = min(threads, len(self.cells))
        self.taken = 0  # guesses the exact run took

    def _start(self, spec: ClientSpec, processes: int) -> list[Remote]:
        """Up to *processes* second processes (fewer when no more can be had: a limit reached)."""
        # what this client read and has not written yet is what the processes read first
        self.client.cache.flush()
        remotes: list[Remote] = []
        for _ in range(processes):
            try:
                remotes.append(Remote(self.rel, spec))
            except OSError:
                break
        return remotes

    def _close(self) -> None:
        for remote in self._remotes:
            remote.close()
        self._remotes = []

    def __enter__(self) -> WarmUp:
        if self.processes:
            self.client.cache.flush()  # what the cache check read: the processes read it next
        searchers: list[Remote | None] = [None] * self._threads
        searchers.extend(self._remotes)
        for i, remote in enumerate(searchers):
            threading.Thread(target=self._work, args=(remote,), name=f"stackmeta-warmup-{i}",
                             daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._close()
        if exc[0] is None:
            self._raise()

    def guess(self, cell: Cell) -> Guess | None:
        """*cell*'s search run ahead, once it ended; None at once for a cell not searched
        ahead: the exact run searches it (and no process takes it then)."""
        if cell not in self.cells:
            return None
        with self._cond:
            self._at = max(self._at, self._position[cell])
            if self._lead and not self._claims.setdefault(cell, False):
                return None
            if cell not in self._guesses:
                shown = None
                try:
                    while cell not in self._guesses and not self._failures:
                        # the bar says so while sdists build (a search waits for them)
                        what = self._what()
                        if what != shown:
                            self.progress.start(what, len(self.cells))
                            self.progress.advance(self._made)
                            shown, count = what, self._made
                        self._cond.wait(WAIT_STEP)
                        if self._made > count:
                            self.progress.advance(self._made - count)
                            count = self._made
                finally:
                    self.progress.done()
        self._raise()
        return self._guesses.get(cell)

    def _what(self) -> str:
        """The progress bar's label while the exact run waits for a search ahead."""
        what = f"cells searched ahead in {self.processes + 1} processes" if self.processes \
            else "cold cells searched ahead"
        return f"{what}, building sdists" if self.builds is not None and self.builds.building else what

    def settled(self, cell: Cell, nearest: NearestSet | None, *, guessed: bool = False) -> None:
        """The exact run's outcome for *cell*: its set when it was searched, else None (a set
        taken from an earlier cell, or no set): what the searches waiting for it as a hint get;
        *guessed*: the exact run took its guess (counted in :attr:`taken`)."""
        with self._cond:
            self._settled[cell] = nearest
            self._guesses.pop(cell, None)  # kept by the exact run when taken
            self._at = max(self._at, self._position[cell] + 1)
            self.taken += guessed
            self._cond.notify_all()

    def _raise(self) -> None:
        with self._cond:
            if self._failures:
                raise self._failures[0]

    def _ready(self, cell: Cell) -> bool:
        """Whether *cell*'s set is known as a hint (:meth:`_set_of`)."""
        return cell in self._settled or (self._lead > 0 and self._guesses.get(cell) is not None)

    def _set_of(self, cell: Cell) -> NearestSet | None:
        """*cell*'s set as a hint: the exact run's once settled; before that, from a warm cache,
        its guess's (the exact run's set when the guess is taken; a guess given another set
        than the exact run settles on does not have the exact run's hints, and is not taken)."""
        if cell in self._settled:
            return self._settled[cell]
        guess = self._guesses.get(cell) if self._lead else None
        return None if guess is None else guess.nearest

    def _hints(self, cell: Cell) -> tuple[tuple[Cell, ...], list[NearestSet]]:
        """*cell*'s hint cells and their sets (:meth:`_set_of`), once known: the cells foreseen
        when each was searched; else (one was not: its set came from an earlier cell, or it had
        none) the nearest of the cells searched before, once the exact run settled every cell
        before this one."""
        with self._cond:
            foreseen = self._hint_cells[cell]
            self._wait(lambda: all(self._ready(c) for c in foreseen))
            sets = [n for c in foreseen if (n := self._set_of(c)) is not None]
            if len(sets) == len(foreseen):
                return foreseen, sets
            earlier = self._order[:self._order.index(cell)]
            self._wait(lambda: all(c in self._settled for c in earlier))
            chosen = tuple(nearby([c for c in earlier if self._settled[c] is not None], cell)[:2])
            return chosen, [n for c in chosen if (n := self._settled[c]) is not None]

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Wait (holding the condition) until *ready*, or raise :class:`_Stopped`."""
        while not ready():
            if self._stop.is_set():
                raise _Stopped
            self._cond.wait(WAIT_STEP)

    def _search(self, cell: Cell) -> Guess:
        return search_ahead(self.rel, self.client, cell, builds=self.builds, pins=self._pins,
                            before=self.before(cell), hints=functools.partial(self._hints, cell),
                            progress=self._stopper)

    def _next(self) -> Cell | None:
        """The next cell a searcher ahead takes (see ``_claims``), None when there is none."""
        with self._cond:
            if self._stop.is_set():
                return None
            free = [c for c in self.cells if c not in self._claims and self._position[c] >= self._at]
            free = free[self._lead:]
            if not free:
                return None
            # a process takes first a cell whose hints are known (it will not wait for them)
            cell = next((c for c in free if all(self._ready(h) for h in self._hint_cells[c])), free[0]) \
                if self._lead else free[0]
            self._claims[cell] = True
            return cell

    def _work(self, remote: Remote | None) -> None:
        """Search cells (here, or in *remote*) until none is left to take."""
        while (cell := self._next()) is not None:
            guess: Guess | None = None
            try:
                if remote is None:
                    guess = self._search(cell)
                else:
                    guess = remote.search(cell, self.before(cell), functools.partial(self._hints, cell))
                if guess is not None:  # made of the answers kept already (the exact run keeps it so)
                    guess = dataclasses.replace(guess, answers=guess.answers.interned(self._shared))
            except (StackmetaError, _Stopped):
                pass
            except BaseException as exc:  # a bug: the run stops and shows it
                with self._cond:
                    self._failures.append(exc)
                self._stop.set()
            with self._cond:
                self._guesses[cell] = guess
                self._made += 1
                self._cond.notify_all()
            if remote is not None and not remote.alive:
                return  # the process is gone (killed?): the exact run searches the cells left
