"""Progress reporting: the library calls a Progress; the CLI decides how it looks."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, what: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def done(self) -> None: ...


class NoProgress:
    """Progress that shows nothing (pipes, --quiet, --json, library use)."""

    def start(self, what: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


NO_PROGRESS = NoProgress()
