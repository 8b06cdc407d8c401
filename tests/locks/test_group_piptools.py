"""A working group's pip-tools workflow works unchanged on a release's constraints lock: the
real pip-compile, against a real pypiserver, picks the release's versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stackmeta.locks.constraints import constraints_text
from tests.pypiserver_fixture import env_without_index, make_wheel, package, pypiserver, synthetic_release


def test_pip_compile_with_the_release_lock_as_constraints(tmp_path: Path) -> None:
    pip_compile = shutil.which("pip-compile", path=str(Path(sys.executable).parent))
    if pip_compile is None:
        pytest.skip("pip-tools is not installed in the test environment (pip install pip-tools)")
    with pypiserver(tmp_path / "server") as server:
        # the index has newer versions than the release ships: the lock must hold them back
        make_wheel(server.packages, "coffea-lib", "2024.4.0", requires=["numlib>=1.20", "awk-lib"])
        for version in ("1.24.3", "1.26.0"):
            make_wheel(server.packages, "numlib", version)
        for version in ("2.1.1", "2.6.0"):
            make_wheel(server.packages, "awk-lib", version)
        rel = synthetic_release([package("numlib", "1.24.3"), package("awk-lib", "2.1.1")])
        constraints = tmp_path / "CMSSW_14_0_0.txt"
        constraints.write_text(constraints_text(rel))
        (tmp_path / "group.in").write_text("-c CMSSW_14_0_0.txt\ncoffea-lib==2024.4.0\n")
        proc = subprocess.run(
            [pip_compile, "--quiet", "--no-header", "--no-annotate", "--no-emit-index-url",
             "--index-url", server.simple,
             "--output-file", "group.txt", "group.in"],
            cwd=tmp_path, capture_output=True, text=True, env=env_without_index(),
        )
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "group.txt").read_text().split() == [
        "awk-lib==2.1.1", "coffea-lib==2024.4.0", "numlib==1.24.3",
    ]
