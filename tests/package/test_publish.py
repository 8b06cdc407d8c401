"""Publishing with the real twine to a real pypiserver on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name as cn
from packaging.version import Version

from stackmeta.cli import main
from stackmeta.errors import PublishError
from stackmeta.package import builder, metapackage, publish
from stackmeta.resolve.nearest import save_nearest
from tests.clirunner import run_cli
from tests.package.test_metapackage import sample
from tests.pypiserver_fixture import PASSWORD, USER, Server, pypiserver, write_record


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pypiserver(tmp_path_factory.mktemp("pypiserver")) as srv:
        yield srv


@pytest.fixture
def twine_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HOME", str(tmp_path))  # no .pypirc of the machine
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")


def _locks(tmp_path: Path, release: str = "CMSSW_14_0_0") -> Path:
    locks = tmp_path / "locks"
    rel, nearest = sample(release=release)
    write_record(locks, rel)
    save_nearest(locks, release, rel, nearest)
    return locks


def _publish(tmp_path: Path, server: Server, locks: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli("publish", extra[0] if extra else "CMSSW_14_0_0", "--locks-dir", str(locks),
                   "--repository-url", server.url, "--out", str(tmp_path / "dist"),
                   "--build-dir", str(tmp_path / "build"), "--json", *extra[1:])


def test_publish_uploads_skips_the_same_and_stops_on_another(
    tmp_path: Path, server: Server, twine_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = _locks(tmp_path, "CMSSW_14_0_1")
    code = main(["publish", "CMSSW_14_0_1", "--locks-dir", str(locks), "--repository-url", server.url,
                 "--out", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "b"), "--json"])
    first = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [u["file"] for u in first["uploaded"]] == [
        "cms_analysis_stack-14.0.1.tar.gz", "cms_analysis_stack-14.0.1-py3-none-any.whl"]
    assert first["skipped"] == []
    assert first["verified"] == [u["file"] for u in first["uploaded"]]
    assert sorted(p.name for p in server.packages.iterdir()) == sorted(first["verified"])

    # again: same bytes (reproducible build), so nothing is uploaded
    code = main(["publish", "CMSSW_14_0_1", "--locks-dir", str(locks), "--repository-url", server.url,
                 "--out", str(tmp_path / "dist2"), "--build-dir", str(tmp_path / "b2"), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0
    assert again["uploaded"] == []
    assert [s["file"] for s in again["skipped"]] == first["verified"]

    # another file under the same name: stop before uploading anything
    wheel = server.packages / "cms_analysis_stack-14.0.1-py3-none-any.whl"
    on_index = builder.sha256(wheel)
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    changed = builder.sha256(wheel)
    code = main(["publish", "CMSSW_14_0_1", "--locks-dir", str(locks), "--repository-url", server.url,
                 "--out", str(tmp_path / "dist3"), "--build-dir", str(tmp_path / "b3")])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        f"error: cms_analysis_stack-14.0.1-py3-none-any.whl is already on the index "
        f"({server.url}/packages/cms_analysis_stack-14.0.1-py3-none-any.whl) with sha256 {changed}, "
        f"ours is {on_index}: nothing was uploaded"
    ) in " ".join(err.split())


def test_wrong_credentials_fail_clearly_and_the_password_never_shows(
    tmp_path: Path, server: Server, twine_env: None, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TWINE_PASSWORD", "wrong-password-xyz")
    locks = _locks(tmp_path, "CMSSW_14_0_2")
    code = main(["publish", "CMSSW_14_0_2", "--locks-dir", str(locks), "--repository-url", server.url,
                 "--out", str(tmp_path / "dist"), "--build-dir", str(tmp_path / "b")])
    captured = capfd.readouterr()
    assert code == 1
    text = " ".join(captured.err.split())
    assert f"error: {server.url} refused the credentials (HTTP 403 Forbidden): check TWINE_USERNAME/" \
        "TWINE_PASSWORD, keyring, or the .pypirc section (--repository NAME)" in text
    assert "wrong-password-xyz" not in captured.out + captured.err
    assert not list(server.packages.glob("*14.0.2*"))


def test_blocking_problems_the_nearest_set_does_not_answer_refuse_without_force(tmp_path: Path) -> None:
    rel, nearest = sample()
    check = {
        "pins": [{"name": "pybrain", "version": "0.3.3", "status": "no-version"},
                 {"name": "rootpy", "version": "1.0", "status": "no-project"}],
        "conflicts": [{"requirer": "tensorflow", "requirer_version": "2.12.0", "requirement": "numpy<1.24",
                       "dependency": "numpy", "pinned": "1.24.3"},
                      {"requirer": "awkward", "requirer_version": "2.1.1", "requirement": "awkward-cpp==12",
                       "dependency": "awkward-cpp", "pinned": "13"}],
        "unpinned": [{"name": "libclang", "specifier": ">=13", "picked": None, "required_by": []}],
    }
    assert publish.unresolved_problems(check, nearest) == [
        "rootpy==1.0 is not installable (no-project)",
        "awkward==2.1.1 requires awkward-cpp==12; the release pins awkward-cpp==13",
    ]
    built = builder.build(metapackage.project(rel, nearest), tmp_path / "dist", work_dir=tmp_path / "w")
    with pytest.raises(PublishError) as info:
        publish.publish(built.files, nearest, repository_url="http://127.0.0.1:9/", check=check)
    assert str(info.value) == (
        "the release's check has 2 blocking problem(s) the nearest set does not answer, first: "
        "rootpy==1.0 is not installable (no-project): fix them, or publish anyway with --force"
    )


def test_files_that_do_not_say_the_nearest_set_are_not_published(tmp_path: Path) -> None:
    rel, nearest = sample()
    built = builder.build(metapackage.project(rel, nearest), tmp_path / "dist", work_dir=tmp_path / "w")
    moved = type(nearest)(**{**{f: getattr(nearest, f) for f in nearest.__dataclass_fields__},
                             "pins": ((cn("numpy"), Version("1.23.5")),)})
    with pytest.raises(PublishError) as info:
        publish.publish(built.files, moved, repository_url="http://127.0.0.1:9/")
    assert str(info.value).startswith(
        "not published: cms_analysis_stack-14.0.0.tar.gz: Requires-Dist differs from the nearest set: "
    )


@pytest.mark.parametrize(("upload", "simple"), [
    ("https://upload.pypi.org/legacy/", "https://pypi.org/simple"),
    ("https://test.pypi.org/legacy/", "https://test.pypi.org/simple"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/simple"),
])
def test_simple_index_from_the_upload_url(upload: str, simple: str) -> None:
    assert publish.simple_index_for(upload) == simple


def test_no_credentials_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["publish", "--help"])
    help_text = capsys.readouterr().out
    assert "TWINE_PASSWORD" in " ".join(help_text.split())
    assert "--password" not in help_text and "--username" not in help_text


@pytest.mark.parametrize("release", ["CMSSW_14_0_0", "CMSSW_10_6_0", "CMSSW_10_6_0-py2", "CMSSW_9_3_0"])
def test_the_shared_releases_checks_are_answered_by_their_nearest_sets(release: str) -> None:
    from stackmeta import record
    from stackmeta.resolve.nearest import load_nearest

    locks = Path(__file__).resolve().parents[2] / "locks"
    doc = record.read_document(record.record_path(locks, release))
    if "check" not in doc:
        pytest.skip(f"{release} has no check section")
    assert publish.unresolved_problems(doc["check"], load_nearest(locks, release)) == []
