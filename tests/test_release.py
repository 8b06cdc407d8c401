from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta import record
from stackmeta.errors import UsageError
from stackmeta.release import release_key, release_order, release_version


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("CMSSW_14_0_0", "14.0.0"),
        ("CMSSW_14_0_0_patch2", "14.0.0.post2"),
        ("CMSSW_14_0_0_pre3", "14.0.0rc3"),
        ("CMSSW_14_0_X_2024-10-13-0000", "14.0.dev202410130000"),
        ("CMSSW_9_3_0", "9.3.0"),
    ],
)
def test_release_versions(name: str, version: str) -> None:
    assert release_version(name) == Version(version)


def test_pip_spelling_14_0_means_14_0_0() -> None:
    assert release_version("CMSSW_14_0_0") == Version("14.0")


def test_other_names_are_refused_with_a_way_out() -> None:
    with pytest.raises(UsageError) as info:
        release_version("CMSSW_14_0_0_HLT")
    assert str(info.value) == (
        "release name 'CMSSW_14_0_0_HLT' is not one of CMSSW_X_Y_Z, CMSSW_X_Y_Z_preN, "
        "CMSSW_X_Y_Z_patchN or CMSSW_X_Y_X_YYYY-MM-DD-hhmm: give the metapackage version "
        "with --version"
    )
    assert release_version("CMSSW_14_0_0_HLT", "14.0.0.post100") == Version("14.0.0.post100")


def test_release_order() -> None:
    names = ["CMSSW_14_0_0", "CMSSW_14_0_0_pre3", "CMSSW_13_3_0_pre2", "CMSSW_14_0_0_patch1",
             "CMSSW_9_3_0", "CMSSW_14_0_X_2024-10-13-0000", "CMSSW_14_0_0_pre10"]
    assert sorted(names, key=release_key) == [
        "CMSSW_9_3_0", "CMSSW_13_3_0_pre2", "CMSSW_14_0_0_pre3", "CMSSW_14_0_0_pre10",
        "CMSSW_14_0_0", "CMSSW_14_0_0_patch1", "CMSSW_14_0_X_2024-10-13-0000",
    ]


def test_a_record_knows_the_lock_name_it_is_stored_under(tmp_path: Path) -> None:
    """A release's second stack lives in CMSSW_10_6_0-py2.json: reports and pages name that."""
    locks = Path(__file__).resolve().parents[1] / "locks"
    rel = record.load_release(locks, "CMSSW_10_6_0-py2")
    assert (rel.release, rel.lock_name, rel.python_major) == ("CMSSW_10_6_0", "CMSSW_10_6_0-py2", 2)
    assert record.load_release(locks, "CMSSW_10_6_0").lock_name == "CMSSW_10_6_0"
    doc = record.read_document(record.record_path(locks, "CMSSW_10_6_0-py2"))
    assert doc["check"]["lock_name"] == "CMSSW_10_6_0-py2"


def test_release_order_puts_other_names_last() -> None:
    names = ["CMSSW_14_0_0", "master", "CMSSW_9_3_0", "IB/CMSSW_14_1_X/master"]
    assert sorted(names, key=release_order) == [
        "CMSSW_9_3_0", "CMSSW_14_0_0", "master", "IB/CMSSW_14_1_X/master"]
