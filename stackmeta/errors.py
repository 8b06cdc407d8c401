"""The one error root. Every message says what is wrong, where, and what to do."""

from __future__ import annotations


class StackmetaError(Exception):
    """Base of every error stackmeta reports to a user (one line, no traceback)."""

    exit_code = 1


class UsageError(StackmetaError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ManifestError(StackmetaError):
    """A cmsdist tree, tag, spec or freeze file cannot be read."""


class RecordError(StackmetaError):
    """A release record or lock in locks/ is missing or malformed."""


class IndexAccessError(StackmetaError):
    """A package index did not answer as the standards say it must."""


class ResolutionError(StackmetaError):
    """No consistent set of pins could be found."""


class BuildError(StackmetaError):
    """Building a metapackage failed."""


class PublishError(StackmetaError):
    """Uploading to or verifying an index failed."""
