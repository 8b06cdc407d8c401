"""Cold cells warmed up: their searches run at once in threads, to fetch what they will read.

A search learns which versions it needs only as it goes, so from a cold cache it reads their
metadata in small batches one after another and waits on the index most of its time (a cell of
CMSSW_14_0_0 from pypi.org: about 60 batches, 25 s, of which 4 s CPU). The exact run of a
release's cells (:func:`stackmeta.resolve.cells.resolve_cells`) cannot run its cells at once:
a cell's search takes the sets of the cells before it as hints, and whether it is searched at
all depends on them. So :class:`WarmUp` runs the searches of the cold cells a few at once in
threads, each as the exact run would but without hints, and throws their results away: what
they read stays with the index client (pages, metadata, the sdists' builds), and the exact run,
which takes each cell once its warm-up ended, finds nearly all of it at hand. Only what is
fetched, and when, changes; what a search is answered does not (a source's answers are the
index's, whoever asked first), so the sets do not either.

A cell is cold when the metadata of many of its release pins needs a request (neither read by
the client nor in its disk cache): with a warm cache nothing is warmed up, and a run costs what
it did. Ctrl-C stops the threads at their next step (they are daemons: the process does not
wait for them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.errors import StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.nearest import NearestSet
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
               builds: Builds | None = None) -> list[Cell]:
    """The *cells* whose pins' metadata needs more than :data:`COLD_SHARE` requests (the
    release's pages read first, all at once)."""
    pins = list(record.pins(rel))
    source = IndexSource(client, cells[0].target, builds=builds) if cells else None
    if source is not None:
        source.prefetch(sorted(p.name for p in rel.packages))
    cold = []
    for cell in cells:
        unread = IndexSource(client, cell.target, builds=builds).unread(pins)
        if unread > COLD_SHARE * len(pins):
            cold.append(cell)
    return cold


class WarmUp:
    """The cold ones of *cells* (:func:`cold_cells`) searched in threads, *threads* at once, in
    order, their results thrown away; each with the set it had *before* (what trying it reads
    is read too). Nothing is warmed up for fewer than two cold cells (one cell alone waits as
    long either way). Used as a context manager around the exact run, which asks
    :meth:`wait_for` a cell before searching it (its own CPU work then overlaps the threads'
    waits on the index); leaving it stops the threads. An error of a search is the exact run's
    to report; a bug in a thread is raised by :meth:`wait_for` or on leaving."""

    def __init__(self, rel: record.Release, client: IndexClient, cells: Sequence[Cell], *,
                 builds: Builds | None = None,
                 before: Callable[[Cell], NearestSet | None] = lambda _: None,
                 threads: int = THREADS, progress: Progress = NO_PROGRESS) -> None:
        self.rel, self.client, self.builds, self.before = rel, client, builds, before
        self.progress = progress
        self.cells = cold_cells(rel, client, cells, builds=builds) if threads > 0 else []
        if len(self.cells) < 2:
            self.cells = []
        self._pins = list(record.pins(rel))
        self._todo = list(reversed(self.cells))  # popped from the end: in order
        self._ended: set[Cell] = set()
        self._finished = threading.Condition()
        self._stop = threading.Event()
        self._failures: list[BaseException] = []
        self._stopper = _Stopper(self._stop)
        self._threads = min(threads, len(self.cells))

    def __enter__(self) -> WarmUp:
        for i in range(self._threads):
            threading.Thread(target=self._work, name=f"stackmeta-warmup-{i}", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if exc[0] is None:
            self._raise()

    def wait_for(self, cell: Cell) -> None:
        """Return once *cell*'s warm-up ended (at once when it has none)."""
        if cell not in self.cells:
            return
        with self._finished:
            if cell in self._ended:
                return
            self.progress.start("cold cells searched ahead", len(self.cells))
            self.progress.advance(len(self._ended))
            try:
                while cell not in self._ended and not self._failures:
                    shown = len(self._ended)
                    self._finished.wait(WAIT_STEP)
                    if len(self._ended) > shown:
                        self.progress.advance(len(self._ended) - shown)
            finally:
                self.progress.done()
        self._raise()

    def _raise(self) -> None:
        with self._finished:
            if self._failures:
                raise self._failures[0]

    def _search(self, cell: Cell) -> None:
        source = IndexSource(self.client, cell.target, builds=self.builds)
        source.prefetch_dependencies(self._pins, self._stopper)
        source.build_sdists(self._pins, self._stopper)
        resolve(self.rel, source, cell.target, index_url=self.client.index_url, progress=self._stopper,
                before=self.before(cell))

    def _work(self) -> None:
        while True:
            with self._finished:
                if not self._todo or self._stop.is_set():
                    return
                cell = self._todo.pop()
            try:
                self._search(cell)
            except (StackmetaError, _Stopped):
                pass
            except BaseException as exc:  # a bug: the run stops and shows it
                with self._finished:
                    self._failures.append(exc)
                self._stop.set()
            with self._finished:
                self._ended.add(cell)
                self._finished.notify_all()
