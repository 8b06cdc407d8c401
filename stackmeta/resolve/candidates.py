"""What the resolver needs to know about a project, whatever answers it.

The index client (:mod:`stackmeta.index`) answers from an index; the release record's check
section answers offline. The resolver (:mod:`stackmeta.resolve.search`) only sees this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version


class CandidateSource(Protocol):
    """Versions and dependencies of projects, for one :class:`stackmeta.target.Target`."""

    def versions(self, name: NormalizedName) -> Sequence[Version]:
        """The versions of *name* pip could install for the target: not yanked, with a wheel
        usable for the target or an sdist, and a Requires-Python that admits the target's
        Python. Any order; empty when the project is unknown."""
        ...

    def dependencies(self, name: NormalizedName, version: Version) -> Sequence[Requirement] | None:
        """The Requires-Dist of that version, markers not yet evaluated; None when unknown
        (no metadata could be read)."""
        ...
