"""A cell's search in a second process: the searches are CPU-bound, and one process runs one
at a time (the GIL), so on a machine with two cores a warm run of a release's cells used one.

:class:`Remote` starts this Python running :func:`main` of this stackmeta, which opens the same
index and disk cache as the parent (:class:`ClientSpec`) and searches the cells it is given, one
at a time, as :mod:`stackmeta.resolve.warmup`'s threads do: it asks the parent for its hints when
its improvement pass starts, and sends back a :class:`~stackmeta.resolve.warmup.Guess`, which
the exact run takes only when it holds (:meth:`Guess.holds`: the same hints, and every
question asked again in the parent answered alike). So a second process changes where a search
runs, never a set: a cache or an index that changed between the two processes, a process that
died, are a guess that does not hold, or none.

The protocol is pickles over the child's stdin and stdout (the child's own ``sys.stdout`` is
its stderr, which is discarded: the parent is the one that reports). Parent to child: the
:class:`Setup`, then ``("search", cell, before)`` and ``("hints", cells, sets)`` when asked.
On the Setup the child reads, before its first search, what the disk cache holds of the
release (:func:`~stackmeta.resolve.warmup.preload`). Child to parent: ``("hints",)``,
``("guess", guess)``, ``("none",)`` (an index error: the parent's own search will meet it and
say it), and ``("bug", traceback)``. The child
ignores Ctrl-C (the parent stops it) and ends at end of input; on SIGTERM it stops its builds
first (:class:`~stackmeta.index.client.IndexClient` does, leaving on anything but an
exception).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import stackmeta
from stackmeta import credentials, record
from stackmeta.cells import Cell
from stackmeta.errors import StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.resolve.gcpace import rare_full_collections
from stackmeta.resolve.nearest import NearestSet

STOP_WAIT = 3.0  # seconds a child gets to leave after SIGTERM
# seconds a search in the child may go without a word (a warm search takes seconds; its sdist
# builds, if any were not made before, at most --build-timeout each, two at a time)
SEARCH_LIMIT = 1800.0


class RemoteBug(RuntimeError):
    """A bug in a search in the second process (its traceback is the message)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientSpec:
    """What the child needs to open the parent's index and cache as the parent did."""

    index_url: str
    cache_dir: Path
    page_max_age: float
    jobs: int
    timeout: float
    retries: int
    backoff: float
    # the builds' (None: the parent has none): folder, time limit, builds at once, interpreter, Python 2
    builds: tuple[Path | None, float, int, str, bool] | None

    @classmethod
    def of(cls, client: IndexClient, builds: Builds | None) -> ClientSpec | None:
        """The spec of *client* and *builds*; None for a client without a disk cache (a child
        would read everything again)."""
        if client.cache.root is None:
            return None
        t = client.transport
        return cls(index_url=client.index_url, cache_dir=client.cache.root, page_max_age=client.page_max_age,
                   jobs=t.jobs, timeout=t.timeout, retries=t.retries, backoff=t.backoff,
                   builds=None if builds is None else (builds.folder, builds.timeout, builds.jobs,
                                                       builds.python, builds.python2))


@dataclass(frozen=True, kw_only=True, slots=True)
class Setup:
    """The child's first message: the release, how to open the index, and the credentials
    known for its host (never written anywhere: kept in the child's memory as in the parent's)."""

    rel: record.Release
    spec: ClientSpec
    auth: tuple[tuple[str, tuple[str, str]], ...]


# the child runs this very stackmeta (the folder holding it is sys.argv[1]), put first on its
# path only when it would import another (from a checkout: it is not installed)
_BOOT = """import sys, importlib.util, os
root = sys.argv[1]
spec = importlib.util.find_spec("stackmeta")
if spec is None or os.path.dirname(os.path.dirname(os.path.realpath(spec.origin))) != root:
    sys.path.insert(0, root)
from stackmeta.resolve.remote import main
main()
"""


def _send(stream: IO[bytes], message: object) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


class Remote:
    """A second process that searches cells (see the module's docstring). :meth:`search` is
    called from one thread at a time; :meth:`close` from any (it ends a search under way, whose
    :meth:`search` then returns None)."""

    def __init__(self, rel: record.Release, spec: ClientSpec, *, limit: float | None = None) -> None:
        self.limit = SEARCH_LIMIT if limit is None else limit
        root = str(Path(stackmeta.__file__).resolve().parent.parent)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True)
        self._lock = threading.Lock()
        self._closed = False
        self._write(Setup(rel=rel, spec=spec, auth=credentials.known()))

    def _write(self, message: object) -> bool:
        try:
            assert self._proc.stdin is not None
            _send(self._proc.stdin, message)
            return True
        except (OSError, ValueError):  # the child is gone (or closed): no guess
            return False
        except (pickle.PicklingError, TypeError, AttributeError):  # cannot be sent: searched here
            self.close()
            return False

    def _read(self) -> Any:
        try:
            assert self._proc.stdout is not None
            return pickle.load(self._proc.stdout)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            return None

    def search(self, cell: Cell, before: NearestSet | None,
               hints: Callable[[], tuple[Sequence[Cell], Sequence[NearestSet]]]) -> Any:
        """*cell*'s :class:`~stackmeta.resolve.warmup.Guess`, searched in the child, which is
        given *hints* (called when it asks: they may wait); None when the child is gone or met
        an index error. Raises :class:`RemoteBug` for a bug in the child's search."""
        if not self.alive or not self._write(("search", cell, before)):
            return None
        while True:
            # a child that says nothing for that long is stopped (its cells are the exact run's)
            watchdog = threading.Timer(self.limit, self.close)
            watchdog.daemon = True
            watchdog.start()
            try:
                message = self._read()
            finally:
                watchdog.cancel()
            if not isinstance(message, tuple) or not message:
                return None
            if message[0] == "hints":
                cells, sets = hints()  # not timed: the exact run's sets may take their time
                if not self._write(("hints", tuple(cells), tuple(sets))):
                    return None
            elif message[0] == "guess":
                return message[1]
            elif message[0] == "bug":
                raise RemoteBug(f"a search in the second process failed:\n{message[1]}")
            else:
                return None

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.poll() is None

    def close(self) -> None:
        """Stop the child (SIGTERM: it stops its builds first; SIGKILL if it does not leave)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for stop in (self._proc.terminate, self._proc.kill):
            try:
                stop()
                self._proc.wait(STOP_WAIT)
                break
            except subprocess.TimeoutExpired:
                continue
            except OSError:
                break
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class _Stopped(Exception):
    """The parent said stop while the child waited for hints."""


def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child: searches cells as the parent asks, until the end of its input."""
    from stackmeta.resolve.warmup import preload, search_ahead

    setup: Setup = pickle.load(inp)
    credentials.remember(setup.auth)
    spec, rel = setup.spec, setup.rel
    pins = list(record.pins(rel))
    with rare_full_collections(), \
            IndexClient(spec.index_url, cache_dir=spec.cache_dir, jobs=spec.jobs, timeout=spec.timeout,
                        retries=spec.retries, backoff=spec.backoff, page_max_age=spec.page_max_age) as client:
        builds = None
        if spec.builds is not None:
            folder, limit, jobs, python, python2 = spec.builds
            builds = Builds(client, folder=folder, timeout=limit, jobs=jobs, python=python, python2=python2)
        broken = None  # a bug in reading ahead: each search asked for answers it, as its own would
        try:
            preload(rel, client, pins)
        except StackmetaError:
            pass  # an index error: a search that needs what was not read meets it and says it
        except Exception:
            broken = traceback.format_exc()
        while True:
            try:
                message = pickle.load(inp)
            except EOFError:
                return
            cell, before = message[1], message[2]

            def hints() -> tuple[Sequence[Cell], Sequence[NearestSet]]:
                _send(out, ("hints",))
                try:
                    reply = pickle.load(inp)
                except EOFError:  # the parent left
                    raise _Stopped from None
                return reply[1], reply[2]

            if broken is not None:
                _send(out, ("bug", broken))
                continue
            try:
                guess = search_ahead(rel, client, cell, builds=builds, pins=pins, before=before, hints=hints)
            except _Stopped:
                return
            except StackmetaError:
                _send(out, ("none",))
                continue
            except Exception:
                _send(out, ("bug", traceback.format_exc()))
                continue
            _send(out, ("guess", guess))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops this process
    # SIGTERM: leave through the client (its builds are stopped), never mid-write of the cache
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what anything prints is not the protocol
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt, SystemExit):
        _serve(sys.stdin.buffer, out)
