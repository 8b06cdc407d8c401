"""A check that finds what the record already says does not rewrite the record: the daily
workflow commits only real changes (the timings of a check change on every run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from stackmeta import record
from tests.check.test_check import FIXTURE, release
from tests.clirunner import run_cli
from tests.httpserver import StaticServer


def test_two_checks_in_a_row_leave_the_record_untouched(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    path = record.record_path(locks, "CMSSW_99_0_0")
    record.write_document(path, record.new_document(release()))
    index = tmp_path / "index"
    shutil.copytree(FIXTURE, index)
    with StaticServer(index) as server:
        url = server.url + "/simple"
        code, _, err = run_cli("check", "CMSSW_99_0_0", "--index-url", url, "--locks-dir", str(locks),
                               "--cache-dir", str(tmp_path / "cache"))
        assert code == 1 and "saved in" in err  # alpha and beta conflict: blocking, saved all the same
        first = json.loads(path.read_text())["check"]
        before, mtime = path.read_bytes(), path.stat().st_mtime_ns

        # from the warm cache this time: other request counts (and timings), the same findings
        code, out, err = run_cli("check", "CMSSW_99_0_0", "--index-url", url, "--locks-dir", str(locks),
                                 "--cache-dir", str(tmp_path / "cache"), "--json")
        assert code == 1
        again = json.loads(out)
        assert again["saved"] is True and again["unchanged"] is True
        timings = (again["report"]["requests"], again["report"]["seconds"])
        assert timings[0] < first["requests"]  # the timing fields differ, so the test means something
        assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime

        code, _, err = run_cli("check", "CMSSW_99_0_0", "--index-url", url, "--locks-dir", str(locks),
                               "--no-cache")
        assert f"unchanged: {path} (section \"check\") already says the same; not rewritten" in " ".join(
            err.split())
        assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime

        # the index changes (six is gone): the record says so
        shutil.rmtree(index / "simple" / "six")
        code, out, _ = run_cli("check", "CMSSW_99_0_0", "--index-url", url, "--locks-dir", str(locks),
                               "--no-cache", "--json")
        assert json.loads(out)["unchanged"] is False
        assert path.read_bytes() != before
        statuses = {p["name"]: p["status"] for p in json.loads(path.read_text())["check"]["pins"]}
        assert statuses["six"] == "no-project"
