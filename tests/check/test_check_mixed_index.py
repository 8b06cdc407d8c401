"""A check against an index like the one reachable here: it serves ``.metadata`` files without
advertising them, and for a third of the wheels serves none, so their METADATA is read by HTTP
range requests into the wheel. Few worker threads, so each one's connection carries page,
metadata and range requests one after another (nothing of one request may leak into the next)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from stackmeta.check import closure
from stackmeta.index import IndexClient
from stackmeta.index.simple import ProjectFile, ProjectPage, render_project_html, render_project_json
from tests.httpserver import StaticServer
from tests.pypiserver_fixture import make_wheel, package, synthetic_release

N = 24


def _project(root: Path, name: str, versions: dict[str, list[str]], serve_metadata: bool) -> None:
    files_dir = root / "files" / name
    files = []
    for version, requires in versions.items():
        wheel = make_wheel(files_dir, name, version, requires=requires)
        data = wheel.read_bytes()
        if serve_metadata:  # served next to the wheel, not advertised on the page
            with zipfile.ZipFile(wheel) as zf:
                md = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
                (files_dir / (wheel.name + ".metadata")).write_bytes(zf.read(md))
        files.append(ProjectFile(filename=wheel.name, url=f"/files/{name}/{wheel.name}",
                                 hashes=(("sha256", hashlib.sha256(data).hexdigest()),), size=len(data)))
    page = ProjectPage(name=canonicalize_name(name), url=f"/simple/{name}/", files=files)
    folder = root / "simple" / name
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(render_project_json(page))
    (folder / "index.html").write_text(render_project_html(page))


def _index(root: Path) -> None:
    for i in range(N):
        requires = [f"p{i + 1:02d}>=1.0"] if i + 1 < N else []
        if i == 5:
            requires = ["p06<1.0"]  # the release pins p06 1.0: a conflict
        if i == 10:
            requires.append("extra-dep>=2")  # not pinned: pip picks 2.1
        _project(root, f"p{i:02d}", {"1.0": requires}, serve_metadata=i % 3 != 0)
    _project(root, "extra-dep", {"1.0": [], "2.0": [], "2.1": []}, serve_metadata=False)


def test_mixed_metadata_sources_with_connection_reuse(tmp_path: Path) -> None:
    _index(tmp_path / "index")
    rel = synthetic_release([package(f"p{i:02d}", "1.0") for i in range(N)])
    with StaticServer(tmp_path / "index") as server:
        with IndexClient(server.url + "/simple", tmp_path / "cache", jobs=3, retries=0) as client:
            report = closure.run_check(rel, closure.default_target(rel), client)
        log = list(server.log)

    assert not report.missing
    sources = {p.name: p.metadata_source for p in report.pins}
    assert sources == {f"p{i:02d}": "range" if i % 3 == 0 else "pep658" for i in range(N)}
    deps = {p.name: p.requires_dist for p in report.pins}
    assert deps["p00"] == ("p01>=1.0",) and deps["p23"] == ()
    conflicts = [(c.requirer, c.requirement, c.dependency) for c in report.conflicts]
    assert conflicts == [("p05", "p06<1.0", "p06")]
    assert [(u.name, u.picked) for u in report.unpinned] == [("extra-dep", "2.1")]
    # the wheels without a .metadata file were read by ranges, and only those requests had one
    ranged = sorted({path for path, headers in log if "Range" in headers})
    assert ranged == sorted([f"/files/p{i:02d}/p{i:02d}-1.0-py3-none-any.whl" for i in range(0, N, 3)]
                            + ["/files/extra-dep/extra_dep-2.1-py3-none-any.whl"])
    pages = [headers for path, headers in log if path.startswith("/simple/")]
    assert pages and all("json" in h.get("Accept", "") and "Range" not in h for h in pages)
    metadata = [headers for path, headers in log if path.endswith(".metadata")]
    assert len(metadata) == N + 1 and all("Range" not in h and "json" not in h.get("Accept", "")
                                          for h in metadata)
