"""Python 3.6's own pip (18.1, pyenv's and ensurepip's) has no PEP 517 builds: asked for
``pip wheel --use-pep517`` it stops with "no such option", and every sdist looked unbuildable
in the 3.6 cells (54 in CMSSW_11_0_4's), where a user who upgraded pip as the README says
(``python -m pip install -U pip``: 21.3.1) builds them. The builds for such a Python are an
upgraded pip's; when no pip can be had from the index, there is no verdict at all (an error),
never a wrong one. Real interpreters, a real pypiserver, the real PyPI for the upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta.errors import BuildError
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds, _builds_pep517
from stackmeta.pythons import find_minor
from tests.pypiserver_fixture import pypiserver
from tests.resolve.test_cells import make_sdist


def _old_pip_python() -> str:
    python = find_minor((3, 6))
    if python is None:
        pytest.skip("no Python 3.6 on this machine (python3.6 on PATH or pyenv)")
    if _builds_pep517(python):
        pytest.skip(f"{python}'s own pip builds through PEP 517 already")
    return python


@pytest.mark.slow
def test_without_a_pip_from_the_index_an_old_pips_python_gets_no_verdict(tmp_path: Path) -> None:
    python = _old_pip_python()
    with pypiserver(tmp_path / "server") as server:  # serves the sdist, not pip
        make_sdist(server.packages, "purely", "1.0")
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            builds = Builds(client)
            _, tag = builds.interpreter((3, 6))
            assert tag == "-3.6-pip-upgraded"
            [sdist] = client.project("purely").files_of(Version("1.0"))
            with pytest.raises(BuildError) as caught:
                builds.build(sdist, "purely", (3, 6))
    message = str(caught.value)
    assert message.startswith("purely-1.0.tar.gz cannot be built for Python 3.6: not built: no pip here "
                              "builds through PEP 517 for this Python: ")
    assert message.endswith("; check the index (it must serve pip), or run again")
    assert "\n" not in message and python
    # nothing remembered: the next run asks again
    assert not list((tmp_path / "cache" / "builds").glob("*.json"))


@pytest.mark.network
def test_an_old_pips_python_builds_through_the_pip_a_user_upgrades_to(tmp_path: Path) -> None:
    _old_pip_python()
    with IndexClient("https://pypi.org/simple/", cache_dir=tmp_path / "cache") as client:
        builds = Builds(client)
        [sdist] = [f for f in client.project("docopt").files_of(Version("0.6.2")) if f.kind == "sdist"]
        built = builds.build(sdist, "docopt", (3, 6))
    assert built.wheel == "docopt-0.6.2-py2.py3-none-any.whl" and built.reason == ""
    venv_python = tmp_path / "cache" / "builds" / "pythons" / "pip-3.6" / "bin" / "python"
    assert _builds_pep517(str(venv_python))
    assert [p.name for p in (tmp_path / "cache" / "builds").glob("*.json")] == [
        f"{sdist.sha256}-3.6-pip-upgraded.json"]


def test_a_pythons_pip_is_asked_once_however_many_threads_ask(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # a second process's 32 request threads each ran `pip --version` at once (a third of a
    # second of CPU each): now one runs it, the others wait for its answer
    import sys
    import threading

    from stackmeta.index import installable

    python = tmp_path / "python"  # this interpreter under a name asked nowhere before
    python.symlink_to(sys.executable)
    runs: list[str] = []
    real = installable._ask_pip

    def counted(path: str) -> bool:
        runs.append(path)
        return real(path)

    monkeypatch.setattr(installable, "_ask_pip", counted)
    answers: list[bool] = []
    threads = [threading.Thread(target=lambda: answers.append(_builds_pep517(str(python)))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert answers == [True] * 8  # this venv's pip builds through PEP 517
    assert runs == [str(python)]
