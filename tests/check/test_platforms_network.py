"""The laptop report against the real pypi.org (opt-in: ``pytest -m network``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackmeta.cli import main
from stackmeta.index import PYPI
from tests.check.test_platforms import SNAPSHOTS


def laptop_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = main(["check", "CMSSW_14_0_0", "--no-save", "--json", "--platform", "all", *args])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and not data["incomplete"]
    platforms = data["platforms"]
    assert isinstance(platforms, dict)
    return platforms


@pytest.mark.network
def test_cmssw_14_0_0_laptop_report_on_pypi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = laptop_json(capsys, "--index-url", PYPI, "--cache-dir", str(tmp_path / "cache"))
    recorded = laptop_json(capsys, "--no-cache", "--index-url", (SNAPSHOTS / "CMSSW_14_0_0").as_uri())
    rows = {r["name"]: r for r in live["rows"]}  # type: ignore[attr-defined]
    assert len(rows) == 321
    assert {p: c["status"] for p, c in rows["tensorflow"]["cells"].items()} == {
        "linux-x86_64": "wheel", "linux-aarch64": "wheel", "macos-x86_64": "wheel",
        "macos-arm64": "no-usable-file", "windows-amd64": "wheel"}
    assert rows["numpy"]["cells"]["macos-arm64"]["wheel"] == "numpy-1.24.3-cp39-cp39-macosx_11_0_arm64.whl"
    # the files of released versions do not change: the recorded snapshot says the same
    assert live == recorded
