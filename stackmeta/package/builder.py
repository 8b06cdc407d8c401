"""The adapter around ``build`` and setuptools: a metapackage project -> sdist and wheel.

Offline: the build runs with ``build.ProjectBuilder`` in the running environment (no isolated
environment, nothing downloaded); setuptools must be installed there (>=77, for the license
expression). Byte-reproducible: the project files get fixed modes and the timestamp of the
release (:func:`stackmeta.package.metapackage.source_date_epoch`), the backend runs with
``SOURCE_DATE_EPOCH`` and umask 022, and both archives are then normalised: entries sorted
(the wheel's ``.dist-info`` last, ``RECORD`` last of all), every timestamp the release's,
owner 0/0 with empty names, modes 0644/0755, the gzip header's time the release's and no file
name in it. Same record and same setuptools version -> same bytes, on any machine, any day.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.metadata import Metadata
from packaging.requirements import Requirement

from stackmeta import atomic
from stackmeta.errors import BuildError
from stackmeta.package.metapackage import Project


@dataclass(frozen=True, kw_only=True, slots=True)
class Built:
    """The files a build wrote."""

    project: Project
    wheel: Path
    sdist: Path | None  # None for a release's second stack (see build())
    digests: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256 of the bytes written

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.wheel,) if self.sdist is None else (self.sdist, self.wheel)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_project(project: Project, folder: Path) -> None:
    """Write the project's files into *folder* (emptied first), with fixed modes and times."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for rel_path, text in project.files:
        path = folder / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    epoch = project.source_date_epoch
    for root, dirs, files in os.walk(folder):
        for name in files:
            os.chmod(Path(root, name), 0o644)
            os.utime(Path(root, name), (epoch, epoch))
        for name in dirs:
            os.chmod(Path(root, name), 0o755)
    os.utime(folder, (epoch, epoch))


def build(project: Project, out_dir: Path, *, work_dir: Path, sdist: bool = True) -> Built:
    """Build *project* into *out_dir*: its sdist (unless *sdist* is False) and its wheel,
    the wheel built from the unpacked sdist, both normalised. *work_dir* holds the project
    folder (left there to inspect)."""
    folder = work_dir / f"{project.module}-{project.version}"
    # both folders before the build: an --out that is a file fails now, not after the build
    where = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        where = work_dir
        write_project(project, folder)
    except OSError as exc:
        raise BuildError(f"cannot write into {where} ({exc.strerror}: {exc.filename}): "
                         "give a folder that is not a file and can be written") from None
    env = {
        "SOURCE_DATE_EPOCH": str(project.source_date_epoch),
        "PYTHONHASHSEED": "0",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    with atomic.temp_dir("stackmeta-build-") as tmp:  # a killed build's folder goes with the next
        raw_sdist = _run_backend(folder, "sdist", tmp / "sdist", env)
        unpacked = tmp / "unpacked"
        with tarfile.open(raw_sdist, "r:gz") as tar:
            tar.extractall(unpacked, filter="data")
        tops = list(unpacked.iterdir())
        if len(tops) != 1:
            raise BuildError(f"{raw_sdist.name}: expected one top folder in the sdist, found {len(tops)}")
        raw_wheel = _run_backend(tops[0], "wheel", tmp / "wheel", env)
        if raw_wheel.name != project.wheel_name:
            raise BuildError(
                f"setuptools built {raw_wheel.name}, expected {project.wheel_name}: "
                "check the setuptools version (>=77 needed)"
            )
        wheel_bytes = normalise_wheel(raw_wheel.read_bytes(), project.source_date_epoch)
        sdist_bytes = normalise_sdist(raw_sdist.read_bytes(), project.source_date_epoch)
    verify_wheel(wheel_bytes, project)
    wheel_path = out_dir / project.wheel_name
    atomic.write_bytes(wheel_path, wheel_bytes)
    sdist_path = None
    if sdist:
        if raw_sdist.name != project.sdist_name:
            raise BuildError(f"setuptools built {raw_sdist.name}, expected {project.sdist_name}")
        sdist_path = out_dir / project.sdist_name
        atomic.write_bytes(sdist_path, sdist_bytes)
    digests = {wheel_path.name: hashlib.sha256(wheel_bytes).hexdigest()}
    if sdist_path is not None:
        digests[sdist_path.name] = hashlib.sha256(sdist_bytes).hexdigest()
    return Built(project=project, wheel=wheel_path, sdist=sdist_path, digests=digests)


def _run_backend(
    folder: Path, distribution: Literal["sdist", "wheel"], out: Path, env: Mapping[str, str]
) -> Path:
    # build is imported here: it is only needed when building.
    from build import BuildBackendException, BuildException, ProjectBuilder

    captured: list[str] = []

    def runner(
        cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        full_env = dict(os.environ)
        full_env.update(extra_environ or {})
        full_env.update(env)
        proc = subprocess.run(
            list(cmd), cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            umask=0o022, check=False,
        )
        captured.append(proc.stdout.decode("utf-8", "replace"))
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout)

    builder = ProjectBuilder(folder, python_executable=sys.executable, runner=runner)
    missing = builder.check_dependencies(distribution)
    if missing:
        wanted = ", ".join(sorted(str(next(iter(chain))) for chain in missing))
        raise BuildError(
            f"{folder}: the build needs {wanted} in {sys.executable} (builds run offline, "
            "without an isolated environment): install it there"
        )
    try:
        return Path(builder.build(distribution, out))
    except (BuildBackendException, BuildException) as exc:
        tail = [line for line in "".join(captured).splitlines() if line.strip()][-3:]
        raise BuildError(
            f"{folder}: building the {distribution} failed ({exc}): {' / '.join(tail)}"
        ) from None


def _zip_order(name: str) -> tuple[int, str]:
    if ".dist-info/" in name:
        return (2 if name.endswith(".dist-info/RECORD") else 1, name)
    return (0, name)


def normalise_wheel(data: bytes, epoch: int) -> bytes:
    """The same wheel with sorted entries, one timestamp, fixed modes and compression."""
    date_time = time.gmtime(max(epoch, 315532800))[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in sorted(src.namelist(), key=_zip_order):
            if name.endswith("/"):
                continue
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, src.read(name), compresslevel=9)
    return out.getvalue()


def normalise_sdist(data: bytes, epoch: int) -> bytes:
    """The same sdist as a pax tar with sorted entries, one timestamp, owner 0/0 without
    names, modes 0644/0755, gzipped with the same timestamp and no file name."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src, \
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            info = tarfile.TarInfo(member.name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if member.isdir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                dst.addfile(info)
            elif member.isfile():
                info.mode = 0o644
                info.size = member.size
                dst.addfile(info, src.extractfile(member))
            else:
                raise BuildError(f"sdist entry {member.name} is neither a file nor a folder")
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=epoch, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def wheel_metadata(data: bytes, filename: str) -> Metadata:
    """The core metadata of a wheel (its ``.dist-info/METADATA``), parsed by packaging."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as whl:
            names = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            if len(names) != 1:
                raise BuildError(f"{filename}: expected one .dist-info/METADATA, found {len(names)}")
            raw = whl.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise BuildError(f"{filename}: not a readable wheel ({exc})") from None
    return _core_metadata(raw, filename)


def sdist_metadata(data: bytes, filename: str) -> Metadata:
    """The core metadata of an sdist (the ``PKG-INFO`` at its top), parsed by packaging."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = next((m for m in tar.getmembers()
                           if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise BuildError(f"{filename}: the sdist has no PKG-INFO at its top")
            raw = handle.read()
    except (tarfile.TarError, OSError) as exc:
        raise BuildError(f"{filename}: not a readable .tar.gz sdist ({exc})") from None
    return _core_metadata(raw, filename)


def _core_metadata(raw: bytes, filename: str) -> Metadata:
    try:
        return Metadata.from_email(raw, validate=True)
    except Exception as exc:  # packaging raises an ExceptionGroup of InvalidMetadata
        raise BuildError(f"{filename}: core metadata does not validate ({exc})") from None


def verify_wheel(data: bytes, project: Project) -> None:
    """The wheel's Requires-Dist is exactly the project's pins, and none is a direct URL."""
    meta = wheel_metadata(data, project.wheel_name)
    check_requires_dist(meta.requires_dist or [], project.dependencies, project.wheel_name)
    if meta.requires_python != project.requires_python:
        raise BuildError(
            f"{project.wheel_name}: Requires-Python is {meta.requires_python}, "
            f"expected {project.requires_python}"
        )


def check_requires_dist(found: Sequence[Requirement], expected: Sequence[Requirement], where: str) -> None:
    """Raise BuildError unless *found* equals *expected* (as sets of name, specifier, marker)."""
    for req in found:
        if req.url:
            raise BuildError(f"{where}: Requires-Dist {req} is a direct URL, which indexes refuse")

    def key(req: Requirement) -> tuple[str, str, str, str]:
        from packaging.utils import canonicalize_name

        return (canonicalize_name(req.name), str(req.specifier), ",".join(sorted(req.extras)),
                str(req.marker or ""))

    have = sorted(key(r) for r in found)
    want = sorted(key(r) for r in expected)
    if have != want:
        extra = sorted(set(have) - set(want))
        lacking = sorted(set(want) - set(have))
        raise BuildError(
            f"{where}: Requires-Dist differs from the nearest set: unexpected {extra[:3]}, "
            f"missing {lacking[:3]}: rebuild it with 'stackmeta build'"
        )
