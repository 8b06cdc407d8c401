"""Cold cells searched ahead: several at once in threads, each as the exact run would.

A search learns which versions it needs only as it goes, so from a cold cache it reads their
metadata in small batches one after another and waits on the index most of its time (a cell of
CMSSW_14_0_0 from pypi.org: about 60 batches, 25 s, of which 4 s CPU). The exact run of a
release's cells (:func:`stackmeta.resolve.cells.resolve_cells`) goes cell by cell: a cell's
search takes as hints the sets of the (at most two) nearest cells searched before it, and a cell
whose source answers alike an earlier cell's search is not searched at all.

:class:`WarmUp` runs the searches of the cold cells a few at once in threads, in the exact
run's order, each with the hints the exact run will give it if every cell before it is searched
(its improvement pass, the only part that uses them, waits for the exact run's sets of those
cells). Each search's set and what it asked (:class:`~stackmeta.resolve.provider.Answers`) are
kept as a :class:`Guess`. The exact run takes a guess as the cell's set only when it would
have searched that cell with those very hints and set before, and the cell's source answers
every question of the guess alike (asked again, on a fresh memo): the search is a function of
these, so it would find that set. Else it searches, finding at hand what the guess read. So the
sets are the same as cell by cell; only when things are fetched, and by which thread, changes.

A cell is cold when the metadata of many of its release pins needs a request (neither read by
the client nor in its disk cache): with a warm cache nothing is searched ahead, and a run costs
what it did. Ctrl-C stops the threads at their next step (they are daemons: the process does not
wait for them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.errors import ResolutionError, StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.nearest import NearestSet
from stackmeta.resolve.provider import Answers, Memo
from stackmeta.resolve.search import resolve

THREADS = 12  # cells searched at once (they share the client's requests in flight)
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
        (the very sets), and every question asked again on a fresh memo of *source* answered
        alike (:meth:`Answers.same`)."""
        return (self.hints is None or (
                    self.hint_cells == tuple(hint_cells) and len(self.hints) == len(hints)
                    and all(a is b for a, b in zip(self.hints, hints, strict=True)))) \
            and self.answers.same(Memo(source), source.target)


class WarmUp:
    """The cold ones of *order* (:func:`cold_cells`; *order* is the exact run's) searched in
    threads, *threads* at once, in order (see the module's docstring). Nothing is searched
    ahead for fewer than two cold cells (one cell alone waits as long either way). Used as a
    context manager around the exact run, which asks :meth:`guess` for a cell before its own
    work on it and tells :meth:`settled` each cell's outcome; leaving it stops the threads. An
    error of a search is a guess like a set; a bug in a thread is raised by :meth:`guess` or on
    leaving."""

    def __init__(self, rel: record.Release, client: IndexClient, order: Sequence[Cell], *,
                 builds: Builds | None = None,
                 before: Callable[[Cell], NearestSet | None] = lambda _: None,
                 threads: int = THREADS, progress: Progress = NO_PROGRESS) -> None:
        self.rel, self.client, self.builds, self.before = rel, client, builds, before
        self.progress = progress
        self.cells = cold_cells(rel, client, order, builds=builds, progress=progress) if threads > 0 else []
        if len(self.cells) < 2:
            self.cells = []
        self._order = list(order)
        position = {c: i for i, c in enumerate(order)}
        # each cell's hint cells if every cell before it is searched (see _hints)
        self._hint_cells = {c: tuple(nearby(order[:position[c]], c)[:2]) for c in self.cells}
        self._pins = list(record.pins(rel))
        self._todo = list(reversed(self.cells))  # popped from the end: in order
        self._guesses: dict[Cell, Guess | None] = {}  # None: stopped, or a bug
        self._settled: dict[Cell, NearestSet | None] = {}  # the exact run's sets (None: not searched)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._failures: list[BaseException] = []
        self._stopper = _Stopper(self._stop)
        self._threads = min(threads, len(self.cells))
        self.taken = 0  # guesses the exact run took

    def __enter__(self) -> WarmUp:
        for i in range(self._threads):
            threading.Thread(target=self._work, name=f"stackmeta-warmup-{i}", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if exc[0] is None:
            self._raise()

    def guess(self, cell: Cell) -> Guess | None:
        """*cell*'s search run ahead, once it ended (None at once for a cell not searched
        ahead)."""
        if cell not in self.cells:
            return None
        with self._cond:
            if cell not in self._guesses:
                self.progress.start("cold cells searched ahead", len(self.cells))
                self.progress.advance(len(self._guesses))
                try:
                    while cell not in self._guesses and not self._failures:
                        shown = len(self._guesses)
                        self._cond.wait(WAIT_STEP)
                        if len(self._guesses) > shown:
                            self.progress.advance(len(self._guesses) - shown)
                finally:
                    self.progress.done()
        self._raise()
        return self._guesses.get(cell)

    def settled(self, cell: Cell, nearest: NearestSet | None, *, guessed: bool = False) -> None:
        """The exact run's outcome for *cell*: its set when it was searched, else None (a set
        taken from an earlier cell, or no set): what the searches waiting for it as a hint get;
        *guessed*: the exact run took its guess (counted in :attr:`taken`)."""
        with self._cond:
            self._settled[cell] = nearest
            self.taken += guessed
            self._cond.notify_all()

    def _raise(self) -> None:
        with self._cond:
            if self._failures:
                raise self._failures[0]

    def _hints(self, cell: Cell) -> tuple[tuple[Cell, ...], list[NearestSet]]:
        """*cell*'s hint cells and the exact run's sets of them, once it has them: the cells
        foreseen when each was searched; else (one was not: its set came from an earlier cell,
        or it had none) the nearest of the cells searched before, once the exact run settled
        every cell before this one."""
        with self._cond:
            foreseen = self._hint_cells[cell]
            self._wait(lambda: all(c in self._settled for c in foreseen))
            sets = [n for c in foreseen if (n := self._settled[c]) is not None]
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
        source = IndexSource(self.client, cell.target, builds=self.builds)
        source.prefetch_dependencies(self._pins, self._stopper)
        source.build_sdists(self._pins, self._stopper)
        memo = Memo(source)
        given: tuple[tuple[Cell, ...], list[NearestSet]] | None = None

        def hints() -> list[NearestSet]:
            nonlocal given
            given = self._hints(cell)
            return given[1]

        nearest, failure = None, None
        try:
            nearest = resolve(self.rel, source, cell.target, index_url=self.client.index_url,
                              progress=self._stopper, memo=memo, hints=hints, before=self.before(cell))
        except ResolutionError as exc:
            failure = str(exc)
        hint_cells, hint_sets = given if given is not None else ((), None)
        return Guess(hint_cells=hint_cells, hints=None if hint_sets is None else tuple(hint_sets),
                     nearest=nearest, failure=failure, answers=memo.answers())

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._todo or self._stop.is_set():
                    return
                cell = self._todo.pop()
            guess: Guess | None = None
            try:
                guess = self._search(cell)
            except (StackmetaError, _Stopped):
                pass
            except BaseException as exc:  # a bug: the run stops and shows it
                with self._cond:
                    self._failures.append(exc)
                self._stop.set()
            with self._cond:
                self._guesses[cell] = guess
                self._cond.notify_all()
