"""Write tests/data/index/fixture/: a small static index for the index and check tests.

Run ``python tests/data/index/make_fixture.py`` to regenerate (the output is committed).
Two real wheels from pypi.org (six 1.16.0, urllib3 2.0.0, saved beside this script) and a few
tiny made-up projects whose metadata exercises the check:

- alpha 1.0 requires ``beta<2``, ``gamma[extra1]``, ``six``; the release pins beta 2.0: a conflict;
- gamma 1.0 requires ``delta>=2; extra == "extra1"``: delta is not pinned (pick: 3.0);
- oldsdist 0.1: sdist only, PKG-INFO 1.1 (dependencies unknown);
- newsdist 1.0: sdist only, PKG-INFO 2.2 requiring ``six``;
- py3only 1.0: a wheel whose Requires-Python is ``>=3.12``;
- yankedpkg 1.0: yanked ("broken");
- six has no ``.metadata`` file (read by range requests), urllib3 has one that only the
  HTML page advertises (with its sha256), the JSON page omits it, as pypi.org does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "fixture"


def wheel(name: str, version: str, requires: list[str], requires_python: str | None = None,
          tag: str = "py3-none-any") -> tuple[str, bytes, bytes]:
    dist = f"{name}-{version}"
    md = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        md.append(f"Requires-Python: {requires_python}")
    if any("extra ==" in r for r in requires):
        md.append("Provides-Extra: extra1")
    md += [f"Requires-Dist: {r}" for r in requires]
    metadata = ("\n".join(md) + "\n\nA made-up project for tests.\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, text in [(f"{name}/__init__.py", b""), (f"{dist}.dist-info/METADATA", metadata),
                             (f"{dist}.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n".encode()),
                             (f"{dist}.dist-info/RECORD", b"")]:
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
    return f"{dist}-{tag}.whl", buf.getvalue(), metadata


def sdist(name: str, version: str, pkg_info: str) -> tuple[str, bytes]:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        data = pkg_info.encode()
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(data)
        info.mtime = 0
        tf.addfile(info, io.BytesIO(data))
    return f"{name}-{version}.tar.gz", buf.getvalue()


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    projects: dict[str, list[dict[str, object]]] = {}

    def add(project: str, filename: str, data: bytes, *, requires_python: str | None = None,
            yanked: str | None = None, metadata: bytes | None = None, advertise: bool = False) -> None:
        path = OUT / "files" / project / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entry: dict[str, object] = {"filename": filename, "url": f"../../files/{project}/{filename}",
                                    "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                                    "requires-python": requires_python, "size": len(data),
                                    "yanked": yanked or False}
        if metadata is not None:
            (path.parent / f"{filename}.metadata").write_bytes(metadata)
            if advertise:
                entry["_md_sha"] = hashlib.sha256(metadata).hexdigest()
        projects.setdefault(project, []).append(entry)

    six = (HERE / "six-1.16.0-py2.py3-none-any.whl").read_bytes()
    add("six", "six-1.16.0-py2.py3-none-any.whl", six, requires_python=">=2.7, !=3.0.*, !=3.1.*, !=3.2.*")
    u = (HERE / "urllib3-2.0.0-py3-none-any.whl").read_bytes()
    with zipfile.ZipFile(io.BytesIO(u)) as zf:
        u_md = zf.read("urllib3-2.0.0.dist-info/METADATA")
    add("urllib3", "urllib3-2.0.0-py3-none-any.whl", u, requires_python=">=3.7", metadata=u_md,
        advertise=True)
    for name, version, reqs in [
        ("alpha", "0.9", ["six"]),
        ("alpha", "1.0", ["beta<2", "gamma[extra1]", "six"]),
        ("beta", "1.5", []),
        ("beta", "2.0", []),
        ("gamma", "1.0", ['delta>=2; extra == "extra1"', 'nothere; python_version < "3"']),
        ("delta", "2.0", []),
        ("delta", "3.0", []),
        ("delta", "4.0rc1", []),
        ("yankedpkg", "1.0", []),
    ]:
        fn, data, md = wheel(name, version, reqs)
        add(name, fn, data, metadata=md, yanked="broken" if name == "yankedpkg" else None)
    fn, data, md = wheel("py3only", "1.0", [], requires_python=">=3.12")
    add("py3only", fn, data, requires_python=">=3.12", metadata=md)
    fn, data = sdist("oldsdist", "0.1", "Metadata-Version: 1.1\nName: oldsdist\nVersion: 0.1\n")
    add("oldsdist", fn, data)
    fn, data = sdist("newsdist", "1.0",
                     "Metadata-Version: 2.2\nName: newsdist\nVersion: 1.0\nRequires-Dist: six\n")
    add("newsdist", fn, data)

    simple = OUT / "simple"
    for project, files in projects.items():
        page = simple / project
        page.mkdir(parents=True)
        links = []
        for f in files:
            attrs = f'href="{f["url"]}#sha256={f["hashes"]["sha256"]}"'  # type: ignore[index]
            if f["requires-python"]:
                rp = str(f["requires-python"]).replace(">", "&gt;").replace("<", "&lt;")
                attrs += f' data-requires-python="{rp}"'
            if f["yanked"]:
                attrs += f' data-yanked="{f["yanked"]}"'
            if "_md_sha" in f:
                value = f"sha256={f['_md_sha']}"
                attrs += f' data-dist-info-metadata="{value}" data-core-metadata="{value}"'
            links.append(f'    <a {attrs}>{f["filename"]}</a><br/>')
        page.joinpath("index.html").write_text(
            "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"
            f"    <title>Links for {project}</title>\n  </head>\n  <body>\n    <h1>Links for {project}</h1>\n"
            + "\n".join(links) + "\n  </body>\n</html>\n")
        doc = {"meta": {"api-version": "1.1"}, "name": project,
               "files": [{k: v for k, v in f.items() if not k.startswith("_")} for f in files]}
        page.joinpath("index.json").write_text(json.dumps(doc, indent=1) + "\n")
    names = sorted(projects)
    simple.joinpath("index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n" + "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
        + "</body></html>\n")


if __name__ == "__main__":
    main()
