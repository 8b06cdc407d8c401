"""The check against the real pypi.org (opt-in: ``pytest -m network``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.check import closure
from stackmeta.index import PYPI, IndexClient
from tests.check.test_snapshot import KNOWN_14_0_0, conflicts

LOCKS = Path(__file__).parents[2] / "locks"


@pytest.mark.network
def test_cmssw_14_0_0_on_pypi(tmp_path: Path) -> None:
    rel = record.load_release(LOCKS, "CMSSW_14_0_0")
    with IndexClient(PYPI, tmp_path / "cache") as client:
        report = closure.run_check(rel, closure.default_target(rel), client)
    assert not report.incomplete, [p.error for p in report.missing]
    assert conflicts(report) >= KNOWN_14_0_0
    libclang = next(u for u in report.unpinned if u.name == "libclang")
    assert "tensorflow==2.12.0: libclang>=13.0.0" in libclang.required_by
    sources = {p.metadata_source for p in report.pins}
    assert {"pep658", "range"} <= sources  # pypi.org has no .metadata for some wheels
    assert report.pin("numpy").files and all(f.sha256 for f in report.pin("numpy").files)


@pytest.mark.network
def test_build_metadata_of_old_sdists_on_pypi(tmp_path: Path) -> None:
    # CMSSW_14_0_0 ships these from sdists whose PKG-INFO (Metadata-Version 1.x/2.1) leaves the
    # dependencies unknown; their setuptools builds (from pypi.org) say them
    from tests.pypiserver_fixture import package, synthetic_release

    rel = synthetic_release([package("fire", "0.5.0"), package("docopt", "0.6.2"), package("six", "1.16.0"),
                             package("termcolor", "2.3.0")])
    with IndexClient(PYPI, tmp_path / "cache") as client:
        plain = closure.run_check(rel, closure.default_target(rel), client)
        built = closure.run_check(rel, closure.default_target(rel), client, build_metadata=True)
    assert plain.pin("fire").requires_dist is None
    assert built.pin("fire").metadata_source == "pep517"
    fire = built.pin("fire").requires_dist
    assert fire is not None and {"six", "termcolor"} <= set(fire)
    assert built.pin("docopt").requires_dist == ()
    assert not built.unpinned and not built.conflicts
