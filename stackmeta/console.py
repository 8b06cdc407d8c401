"""Terminal output for the CLI: results on stdout, messages and progress on stderr.

Everything goes out through :func:`stackmeta.credentials.redact`: a password that reached a
message anyway (in another tool's error, say) is never shown."""

from __future__ import annotations

import json
import sys
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, cast

from stackmeta.credentials import redact
from stackmeta.progress import NO_PROGRESS, Progress

if TYPE_CHECKING:  # rich is imported when something is printed for people (not for --json, --quiet)
    from rich.console import Console
    from rich.progress import Progress as RichProgress


def _console(file: Any) -> Console:
    from rich.console import Console

    return Console(file=cast(IO[str], _Redacting(file)), highlight=False, soft_wrap=True)


class _Redacting:
    """A text stream that writes what it is given with credentials redacted (rich writes a
    whole print at once, so a URL is never split across two writes)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding: the stream's own
        return getattr(self._stream, name)


class Output:
    """How a command talks to the user, set from --json and --quiet."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    @cached_property
    def out(self) -> Console:
        return _console(sys.stdout)

    @cached_property
    def err(self) -> Console:
        return _console(sys.stderr)

    @property
    def interactive(self) -> bool:
        return not self.quiet and not self.json_mode and self.err.is_terminal

    def progress(self) -> Progress:
        return _BarProgress(self.err) if self.interactive else NO_PROGRESS

    def info(self, text: str) -> None:
        """A line for people (stderr); silent with --quiet or --json."""
        if not self.quiet and not self.json_mode:
            self.err.print(text, markup=False)

    def warn(self, text: str) -> None:
        """A warning (stderr); shown even with --quiet, silent with --json."""
        if not self.json_mode:
            self.err.print(f"warning: {text}", markup=False, style="yellow")

    def result(self, text: str, *, markup: bool = False) -> None:
        """The command's result for people (stdout)."""
        if not self.json_mode:
            self.out.print(text, markup=markup)

    def json(self, data: Any) -> None:
        """JSON on stdout: indented for a person at a terminal, compact (and fast: the C
        encoder) for a pipe or a file."""
        indent = 2 if sys.stdout.isatty() else None
        sys.stdout.write(redact(json.dumps(data, indent=indent, sort_keys=True, default=str)) + "\n")


class _BarProgress:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: RichProgress | None = None
        self._task: Any = None

    def start(self, what: str, total: int | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.done()
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self._console, transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(what, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
