"""The one error root. Every message says what is wrong, where, and what to do."""

from __future__ import annotations


class StackmetaError(Exception):
    """Base of every error stackmeta reports to a user (one line, no traceback).

    Messages often quote another tool's error (packaging's, git's, pip's), which may span
    lines and point at a column with a caret line: the message is kept on one line, the
    caret lines left out."""

    exit_code = 1

    def __init__(self, message: str = "", *args: object) -> None:
        lines = (line.strip() for line in str(message).splitlines())
        super().__init__(" ".join(line for line in lines if line and set(line) - set("^~ ")), *args)


class UsageError(StackmetaError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ManifestError(StackmetaError):
    """A cmsdist tree, tag, spec or freeze file cannot be read."""


class RecordError(StackmetaError):
    """A release record or lock in locks/ is missing or malformed."""


class OutputError(StackmetaError):
    """A file could not be written (a folder that is a file, no permission, a full disk)."""


class IndexAccessError(StackmetaError):
    """A package index did not answer as the standards say it must."""


class ResolutionError(StackmetaError):
    """No consistent set of pins could be found."""


class BuildError(StackmetaError):
    """Building a metapackage failed."""


class PublishError(StackmetaError):
    """Uploading to or verifying an index failed."""


def quoted(exc: BaseException) -> str:
    """Another tool's error, for quoting inside a message: its first line (packaging's
    requirement errors go on with the text and a caret line)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
