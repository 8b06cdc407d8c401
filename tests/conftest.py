"""Fixtures shared by every stage's tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The real cmsdist history (../shared/cmsdist.bundle: 3,605 release tags); STACKMETA_CMSDIST_BUNDLE
# names another copy.
BUNDLE = Path(os.environ.get("STACKMETA_CMSDIST_BUNDLE", ROOT.parent / "shared" / "cmsdist.bundle"))


@pytest.fixture(scope="session")
def cmsdist_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare clone of the real cmsdist history, made once per test session (a few seconds)."""
    if not BUNDLE.is_file():
        pytest.skip(f"no cmsdist bundle at {BUNDLE}: set STACKMETA_CMSDIST_BUNDLE")
    clone = tmp_path_factory.mktemp("cmsdist") / "cmsdist.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(BUNDLE), str(clone)], check=True,
                   capture_output=True, timeout=300)
    return clone
