"""Terminal output for the CLI: results on stdout, messages and progress on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from stackmeta.progress import NO_PROGRESS, Progress


class Output:
    """How a command talks to the user, set from --json and --quiet."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return self.err.is_terminal and not self.quiet and not self.json_mode

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
        sys.stdout.write(json.dumps(data, indent=indent, sort_keys=True, default=str) + "\n")


class _BarProgress:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: RichProgress | None = None
        self._task: Any = None

    def start(self, what: str, total: int | None) -> None:
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
