from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta import record
from stackmeta.errors import UsageError
from stackmeta.release import optional_version, parse_release, release_key, release_order, release_version


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


@pytest.mark.parametrize(
    ("name", "version", "flavour", "kind", "base"),
    [
        ("CMSSW_12_4_21_HLT_patch1", "12.4.21.post1", "HLT", None, "CMSSW_12_4_21_patch1"),
        ("CMSSW_13_1_0_SKYLAKEAVX512_pre3", "13.1.0rc3", "SKYLAKEAVX512", None, "CMSSW_13_1_0_pre3"),
        ("CMSSW_11_1_0_pre4_GEANT4_NativeGeom", "11.1.0rc4", "GEANT4_NativeGeom", None, "CMSSW_11_1_0_pre4"),
        ("CMSSW_11_1_0-tool-conf", "11.1.0", None, "tool-conf", "CMSSW_11_1_0"),
        ("CMSSW_11_1_0_Patatrack-tool-conf", "11.1.0", "Patatrack", "tool-conf", "CMSSW_11_1_0"),
        ("CMSSW_7_1_50-cmssw-tool-conf", "7.1.50", None, "cmssw-tool-conf", "CMSSW_7_1_50"),
        ("CMSSW_14_2_0_pre1_6e31ebe_ROOT633", "14.2.0rc1", "6e31ebe_ROOT633", None, "CMSSW_14_2_0_pre1"),
    ],
)
def test_flavours_and_tags_read_like_the_release_they_name(
        name: str, version: str, flavour: str | None, kind: str | None, base: str) -> None:
    parsed = parse_release(name)
    assert (parsed.version, parsed.flavour, parsed.kind) == (Version(version), flavour, kind)
    assert parsed.base == base
    assert release_key(name)[:4] == release_key(base)[:4]


def test_every_release_name_of_the_real_history_parses() -> None:
    """The 1,279 release names of the shared cmsdist bundle's tags (listed in tests/data)."""
    names = (Path(__file__).parent / "data" / "manifest" / "release-names.txt").read_text().split()
    assert len(names) == 1279
    for name in names:
        parse_release(name)


def test_other_names_are_refused_with_a_way_out() -> None:
    with pytest.raises(UsageError) as info:
        release_version("my-analysis-env")
    assert str(info.value) == (
        "release name 'my-analysis-env' is not a CMSSW release name (CMSSW_X_Y_Z, CMSSW_X_Y_Z_preN, "
        "CMSSW_X_Y_Z_patchN, CMSSW_X_Y_X_YYYY-MM-DD-hhmm, with an optional _FLAVOUR or -tool-conf): "
        "give the metapackage version with --version"
    )
    assert release_version("my-analysis-env", "14.0.0.post100") == Version("14.0.0.post100")
    assert optional_version("my-analysis-env") is None


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
