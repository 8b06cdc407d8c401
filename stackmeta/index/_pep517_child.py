"""The child process of :mod:`stackmeta.index.pep517`: ``python _pep517_child.py SRCDIR OUT``
builds the core metadata of the project in SRCDIR through PEP 517, in ``build``'s isolated
environment, and writes METADATA to OUT; ``python _pep517_child.py --wheel SRCDIR OUTDIR``
builds its wheel (PEP 517 ``build_wheel``) into the folder OUTDIR; ``--installer uv`` first makes
the isolated environment with uv instead of pip (``build``'s own option). It imports only the standard
library and ``build`` (it is run by path, so it works wherever that Python has ``build``). What
the backend and pip print goes to stderr; the last line says what failed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def _child(srcdir: str, dest: str, *, wheel: bool = False, installer: str = "pip") -> int:
    """Build the metadata (or with *wheel* the wheel) of *srcdir* into *dest*, the isolated
    environment made by *installer*; 0 on success."""
    from build import BuildBackendException, BuildException, ProjectBuilder
    from build.env import DefaultIsolatedEnv

    def runner(cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
               ) -> None:
        subprocess.run(cmd, cwd=cwd, env={**os.environ, **(extra_environ or {})}, stdout=sys.stderr,
                       check=True)

    try:
        isolated = DefaultIsolatedEnv(installer="uv" if installer == "uv" else "pip")
        with isolated as env, tempfile.TemporaryDirectory() as out:
            builder = ProjectBuilder.from_isolated_env(env, srcdir, runner=runner)
            env.install(builder.build_system_requires)
            env.install(builder.get_requires_for_build("wheel"))
            if wheel:
                builder.build("wheel", dest)
                return 0
            data = (Path(builder.metadata_path(out)) / "METADATA").read_bytes()
    except (BuildException, BuildBackendException, OSError, subprocess.CalledProcessError) as exc:
        if isinstance(exc, subprocess.CalledProcessError):  # pip's own words on what it could not install
            for stream in (exc.stdout, exc.stderr):
                if isinstance(stream, bytes):
                    stream = stream.decode("utf-8", "replace")
                if stream:
                    sys.stderr.write(stream)
        text = str(exc).strip().splitlines()
        sys.stderr.write(f"{type(exc).__name__}: {text[-1] if text else ''}\n")
        return 1
    Path(dest).write_bytes(data)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = "pip"
    if args[0] == "--installer":
        chosen, args = args[1], args[2:]
    if args[0] == "--wheel":
        sys.exit(_child(args[1], args[2], wheel=True, installer=chosen))
    sys.exit(_child(args[0], args[1], installer=chosen))
