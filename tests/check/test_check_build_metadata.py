"""``stackmeta check --build-metadata``: sdists whose PKG-INFO leaves the dependencies unknown
get them from a real PEP 517 metadata build in an isolated environment (``build``'s). The sdists
here carry their build backend in-tree (``backend-path``, no build requirements), so the
isolated builds need no index; the index is a real loopback server."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from stackmeta import record
from stackmeta.check import closure
from stackmeta.cli import main
from stackmeta.index import IndexClient
from stackmeta.index.simple import ProjectFile, ProjectPage, render_project_json
from tests.httpserver import StaticServer
from tests.pypiserver_fixture import make_wheel, package, synthetic_release

BACKEND = '''
import os

REQUIRES = {requires!r}
FAIL = {fail!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    print("running dist_info (a backend talks on stdout, as setuptools does)")
    if FAIL:
        raise RuntimeError("this backend is broken on purpose")
    info = os.path.join(metadata_directory, "{dist}-1.0.dist-info")
    os.makedirs(info)
    lines = ["Metadata-Version: 2.1", "Name: {name}", "Version: 1.0"]
    lines += ["Requires-Dist: " + r for r in REQUIRES]
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("\\n".join(lines) + "\\n")
    return "{dist}-1.0.dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("not needed here")


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("not needed here")
'''


def _sdist(folder: Path, name: str, requires: list[str], fail: bool = False, flit: bool = False) -> Path:
    """An sdist with Metadata-Version 2.1 PKG-INFO (dependencies unknown to an index reader)
    and an in-tree PEP 517 backend that knows them (or flit_core's, from the index)."""
    dist = name.replace("-", "_")
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        "pyproject.toml": textwrap.dedent('''
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
        '''),
        "backend.py": BACKEND.format(requires=requires, fail=fail, dist=dist, name=name),
    }
    if flit:
        files["pyproject.toml"] = textwrap.dedent('''
            [build-system]
            requires = ["flit_core>=3.2"]
            build-backend = "flit_core.buildapi"
        ''')
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{dist}-1.0/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-1.0.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


def _page(root: Path, name: str, files: list[Path]) -> None:
    entries = [ProjectFile(filename=f.name, url=f"/files/{name}/{f.name}", size=f.stat().st_size,
                           hashes=(("sha256", hashlib.sha256(f.read_bytes()).hexdigest()),)) for f in files]
    folder = root / "simple" / name
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(render_project_json(
        ProjectPage(name=canonicalize_name(name), url=f"/simple/{name}/", files=entries)))


@pytest.fixture
def index(tmp_path: Path) -> Path:
    root = tmp_path / "index"
    _page(root, "selfbuilt", [_sdist(root / "files" / "selfbuilt", "selfbuilt", ["dep-a>=2", "dep-b"])])
    _page(root, "brokenbuild", [_sdist(root / "files" / "brokenbuild", "brokenbuild", [], fail=True)])
    # its build requirement comes from the index checked, which has no flit_core
    _page(root, "needsflit", [_sdist(root / "files" / "needsflit", "needsflit", [], flit=True)])
    _page(root, "dep-a", [make_wheel(root / "files" / "dep-a", "dep-a", "1.0")])
    _page(root, "dep-b", [make_wheel(root / "files" / "dep-b", "dep-b", v) for v in ("1.0", "1.5")])
    return root


def _release():  # type: ignore[no-untyped-def]
    return synthetic_release([package("selfbuilt", "1.0"), package("brokenbuild", "1.0"),
                              package("needsflit", "1.0"), package("dep-a", "1.0")])


def test_without_the_flag_the_dependencies_stay_unknown(index: Path, tmp_path: Path) -> None:
    rel = _release()
    with StaticServer(index) as s, IndexClient(s.url + "/simple", tmp_path / "c") as c:
        r = closure.run_check(rel, closure.default_target(rel), c)
    assert r.pin("selfbuilt").requires_dist is None and r.pin("selfbuilt").metadata_source == "unknown"
    assert not r.conflicts and not r.unpinned


def test_built_metadata_closes_the_graph(index: Path, tmp_path: Path) -> None:
    rel = _release()
    with StaticServer(index) as s:
        with IndexClient(s.url + "/simple", tmp_path / "c") as c:
            r = closure.run_check(rel, closure.default_target(rel), c, build_metadata=True)
        built = r.pin("selfbuilt")
        assert built.metadata_source == "pep517" and built.requires_dist == ("dep-a>=2", "dep-b")
        assert any(n.startswith("dependencies from a PEP 517 metadata build of selfbuilt-1.0.tar.gz")
                   for n in built.notes)
        conflicts = [(c.requirer, c.requirement, c.pinned) for c in r.conflicts]
        assert conflicts == [("selfbuilt", "dep-a>=2", "1.0")]
        assert [(u.name, u.picked) for u in r.unpinned] == [("dep-b", "1.5")]
        broken = r.pin("brokenbuild")
        assert broken.requires_dist is None
        assert ("metadata build failed: brokenbuild-1.0.tar.gz: metadata build failed "
                "(RuntimeError: this backend is broken on purpose)") in broken.notes
        # the installer's own words (uv's where it makes build environments, else pip's)
        notes = [n for n in r.pin("needsflit").notes if n.startswith("metadata build failed: ")]
        assert notes in (
            ["metadata build failed: needsflit-1.0.tar.gz: metadata build failed "
             "(ERROR: No matching distribution found for flit_core>=3.2)"],
            ["metadata build failed: needsflit-1.0.tar.gz: metadata build failed (error: No solution found "
             "when resolving dependencies: Because flit-core was not found in the package registry and you "
             "require flit-core>=3.2, we can conclude that your requirements are unsatisfiable.)"]), notes

        # built once: a second check takes it from the cache (the sdist is not even downloaded)
        s.fail("/files/selfbuilt/*", "404")
        with IndexClient(s.url + "/simple", tmp_path / "c") as c:
            again = closure.run_check(rel, closure.default_target(rel), c, build_metadata=True)
    assert again.pin("selfbuilt").requires_dist == ("dep-a>=2", "dep-b")
    assert again.pin("selfbuilt").metadata_source == "pep517"


def test_cli_flag(index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locks = tmp_path / "locks"
    record.write_document(record.record_path(locks, "CMSSW_14_0_0"), record.new_document(_release()))
    with StaticServer(index) as s:
        code = main(["check", "CMSSW_14_0_0", "--locks-dir", str(locks), "--json", "--build-metadata",
                     "--index-url", s.url + "/simple", "--cache-dir", str(tmp_path / "c")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["blocking"]
    pins = {p["name"]: p for p in out["report"]["pins"]}
    assert pins["selfbuilt"]["metadata_source"] == "pep517"
    assert pins["selfbuilt"]["requires_dist"] == ["dep-a>=2", "dep-b"]


def test_an_sdist_member_outside_the_archive_is_refused(tmp_path: Path) -> None:
    from stackmeta.index.pep517 import BuildError, build_sdist_metadata

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BuildError) as err:
        build_sdist_metadata(buf.getvalue(), "evil-1.0.tar.gz", index_url=None)
    assert str(err.value).startswith("evil-1.0.tar.gz: not a readable sdist (")
    assert "outside" in str(err.value)
