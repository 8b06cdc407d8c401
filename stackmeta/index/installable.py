"""Whether a version is installable on a laptop *cell* (a Python and a platform), found out by
building, never guessed from file names.

A version is installable for a :class:`~stackmeta.target.Target` when it has a wheel for it (not
yanked, tags and Requires-Python fit), or an sdist that builds (PEP 517 ``build_wheel`` in
``build``'s isolated environment, build requirements from the index only, no compiler: see
:mod:`stackmeta.index.pep517`) into a pure-Python ``*-none-any`` wheel whose Requires-Python
admits the target's Python; and, for the environment's own tools (pip, setuptools, wheel), whose
wheel starts in the target's Python (:mod:`~stackmeta.index.runs`). Each cell's Python builds for
itself, as pip on a laptop does (a build that works on 3.11 can fail on 3.12: Theano 1.0.5's old
versioneer); stackmeta's own interpreter builds through ``build``, another Python 3 of this machine
(``pythonX.Y`` on PATH or pyenv's) through ``uv build --python`` (else, and for Python 2, through
its own ``pip wheel --use-pep517``). An sdist that fails
to build, or builds a platform-specific wheel, is not installable; its reason is the backend's own
error line (``Could not run curl-config``, ``invalid python_requires``).

:class:`Builds` builds each sdist once per Python, keyed by its sha256 and the Python: in memory,
and on disk under the index client's cache folder (``builds/<sha256>[-X.Y].json``, the pure wheels
in ``builds/wheels/``, which ``pip --find-links`` can offer), at most two builds at a time.
:meth:`Builds.start` builds ahead, in the background, what a search is about to ask for (the next
sdist-only version it would try), so that the two builds at a time are used while the search waits
for one. :func:`verdict` is the judgement for one version's files and one target."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name

from stackmeta import atomic
from stackmeta.errors import BuildError, StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.metadata import CoreMetadata, parse_metadata
from stackmeta.index.pep517 import (
    WHEEL_TIMEOUT,
    Frontend,
    WheelBuild,
    build_sdist_wheel,
    plain_reason,
    uv_binary,
)
from stackmeta.index.runs import ToolRuns, tool
from stackmeta.index.simple import ProjectFile
from stackmeta.index.source import F, file_usable, python_ok
from stackmeta.once import Once
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.pythons import find_minor
from stackmeta.target import Target

CACHE_FORMAT = 1
PEP517_PIP = (19, 0)  # the first pip with PEP 517 builds (--use-pep517)


_PIPS_PEP517: Once[bool] = Once()  # _builds_pep517's answers, by interpreter


def _builds_pep517(python: str) -> bool:
    """Whether the pip of the interpreter *python* builds through PEP 517 (pip 19.0 and later;
    True when that cannot be told: its own error then says what is wrong). Asked once for the
    process, however many threads ask at once (the others wait: ``pip --version`` is a third of
    a second of CPU, and a second process's 32 request threads had each run it at once, 2.7 s
    of its first search)."""
    return _PIPS_PEP517.get(python, lambda: _ask_pip(python))


def _ask_pip(python: str) -> bool:
    try:
        out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True,
                             timeout=120, check=True).stdout.split()
        return tuple(int(p) for p in out[1].split(".")[:2]) >= PEP517_PIP
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return True


def _make_upgraded_pip(python: str, minor: tuple[int, int] | None, folder: Path | None, index_url: str,
                       timeout: float) -> str:
    """See :meth:`Builds._upgraded_pip`."""
    import atexit
    import tempfile

    from stackmeta.childenv import pip_environment

    name = f"pip-{minor[0]}.{minor[1]}" if minor else "pip"
    if folder is None:  # no cache folder: for this process only
        root = Path(tempfile.mkdtemp(prefix="stackmeta-pip-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    else:
        root = folder / "pythons"
    venv = root / name
    bin_python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if bin_python.is_file() and _builds_pep517(str(bin_python)):
        return str(bin_python)
    env = pip_environment(dict(os.environ))
    env["PIP_INDEX_URL"] = index_url
    # made aside and moved in place whole: another stackmeta sharing the cache folder sees no
    # venv or a finished one (`python -m pip` runs from a moved venv; its scripts are not used)
    aside = root / f".{name}-{os.getpid()}-{threading.get_ident()}"
    aside_python = aside / bin_python.relative_to(venv)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for cmd in ([python, "-m", "venv", "--clear", str(aside)],
                    [str(aside_python), "-m", "pip", "install", "-q", "-U", "pip"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
            if proc.returncode != 0:
                lines = (proc.stderr or proc.stdout).strip().splitlines() or ["?"]
                raise BuildError(f"{' '.join(cmd[1:4])} failed: {lines[-1]}")
        if not (bin_python.is_file() and _builds_pep517(str(bin_python))):  # else: another process's
            shutil.rmtree(venv, ignore_errors=True)
            aside.rename(venv)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"could not make a venv of {python} with an upgraded pip: {exc}") from None
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    if not _builds_pep517(str(bin_python)):
        raise BuildError(f"'python -m pip install -U pip' in a venv of {python} gave no pip 19 or later")
    return str(bin_python)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """Can a cell install this version, and how (or why not, in one line)."""

    installable: bool
    how: Literal["wheel", "built", "none"]
    file: str | None = None  # the wheel, or the sdist that built
    reason: str = ""  # why not


class Builds:
    """Wheel builds of sdists from one index, once per sdist (see the module's docstring).

    *folder*: where builds are remembered (default: ``builds`` under the client's cache folder;
    None with a client without disk cache: memory only)."""

    def __init__(self, client: IndexClient, *, folder: Path | None = None, timeout: float = WHEEL_TIMEOUT,
                 jobs: int = 2, python: str = sys.executable, python2: bool = False) -> None:
        self.client = client
        self.python = python  # the interpreter that builds (a Python 2 one for Python 2 cells)
        self.python2 = python2
        root = client.cache.root
        self.folder = folder if folder is not None else (root / "builds" if root is not None else None)
        self.timeout = timeout
        self.jobs = jobs
        self._lock = threading.Lock()
        self.building = 0  # builds running now
        self._done: Once[WheelBuild] = Once()
        self._running = threading.BoundedSemaphore(jobs)
        self._ahead: queue.Queue[tuple[ProjectFile, str, tuple[int, int] | None]] = queue.Queue()
        self._started: set[str] = set()  # keys given to start()
        self._workers: list[threading.Thread] = []
        self.runs = ToolRuns(client, self.folder)  # the environment's own tools, run in each Python
        self._pips: Once[str] = Once()  # python -> its venv with an upgraded pip (a failure: raised)

    @property
    def wheels_dir(self) -> Path | None:
        """The pure-Python wheels built (for ``pip install --find-links``)."""
        return None if self.folder is None else self.folder / "wheels"

    def build(self, file: ProjectFile, project: str, minor: tuple[int, int] | None = None) -> WheelBuild:
        """The build of the sdist *file* of *project* by Python *minor* (built once per
        Python; a failure is a result). pip on a laptop builds an sdist with the laptop's own
        Python, and a build that works on one Python can fail on another (Theano 1.0.5's
        ``setup.py`` uses ``configparser.SafeConfigParser``, gone in 3.12): so each cell's
        Python builds for itself (:meth:`interpreter`)."""
        python, tag = self.interpreter(minor)
        return self._done.get(f"{file.sha256 or file.url}{tag}", lambda: self._load(file.sha256, tag)
                              or self._build(file, canonicalize_name(project), python, tag, minor))

    def interpreter(self, minor: tuple[int, int] | None) -> tuple[str, str]:
        """The interpreter that builds for Python *minor*, and the tag of its builds in the
        cache: the builds' own interpreter (tag "") for Python 2, for no *minor*, for the
        builds' own minor, or where this machine has no interpreter of *minor*; else that
        interpreter (tag ``-X.Y``)."""
        if minor is None or self.python2 or minor == self.own_minor:
            return self.python, ""
        found = find_minor(minor)
        if found is None:
            return self.python, ""
        tag = f"-{minor[0]}.{minor[1]}"
        if self.frontend(found, minor) == "pip" and not _builds_pep517(found):
            # its pip (Python 3.6's own: 18.1) has no PEP 517 builds: the builds are an
            # upgraded pip's (see _upgraded_pip), kept apart from any made before
            tag += "-pip-upgraded"
        return found, tag

    @functools.cached_property
    def own_minor(self) -> tuple[int, int] | None:
        """The major.minor of the builds' own interpreter."""
        if self.python == sys.executable:
            return (sys.version_info[0], sys.version_info[1])
        try:
            out = subprocess.run([self.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout.split(".")
            return (int(out[0]), int(out[1]))
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None

    def known(self, file: ProjectFile, minor: tuple[int, int] | None = None) -> WheelBuild | None:
        """The build of *file* by Python *minor* if it was built before (in memory or on
        disk); never builds."""
        _, tag = self.interpreter(minor)
        key = f"{file.sha256 or file.url}{tag}"
        found = self._done.peek(key)
        if found is None:
            found = self._load(file.sha256, tag)
        return None if found is None else self._done.put(key, found)

    def start(self, file: ProjectFile, project: str, minor: tuple[int, int] | None = None) -> None:
        """Build the sdist *file* in the background (:meth:`build` of it then waits for that
        build instead of starting another). The workers are daemon threads, and the build
        processes they wait for are stopped when the program ends (see :mod:`~stackmeta.index.pep517`)."""
        key = f"{file.sha256 or file.url}{self.interpreter(minor)[1]}"
        with self._lock:
            if self._done.peek(key) is not None or key in self._started:
                return
            self._started.add(key)
            if len(self._workers) < self.jobs:
                worker = threading.Thread(target=self._work, name="stackmeta-build-ahead", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._ahead.put((file, project, minor))

    def _work(self) -> None:
        while True:
            file, project, minor = self._ahead.get()
            with contextlib.suppress(Exception):  # a build ahead that breaks is built again when asked for
                self.build(file, project, minor)

    def build_many(self, items: Iterable[tuple[str, ProjectFile]], progress: Progress = NO_PROGRESS,
                   minor: tuple[int, int] | None = None) -> None:
        """Build many sdists by Python *minor*, :attr:`jobs` at once."""
        todo = list(items)
        if todo:
            self.client.map(lambda item: self.build(item[1], item[0], minor), todo, progress, "sdist builds")

    def _build(self, file: ProjectFile, project: NormalizedName, python: str, tag: str,
               minor: tuple[int, int] | None) -> WheelBuild:
        try:
            body = self.client._download(file, project)
        except StackmetaError as exc:
            # the index did not give the file: nothing is remembered on disk (it may work later)
            return WheelBuild(sdist=file.filename, sha256=file.sha256 or "", reason=f"not downloaded: {exc}")
        with self._running, self._counted():
            if self.client.transport.aborted:  # Ctrl-C while waiting for a turn: no verdict at all
                raise BuildError(f"{file.filename}: not built: the run was interrupted")
            frontend = self.frontend(python, minor)
            if tag.endswith("-pip-upgraded"):
                try:
                    python = self._upgraded_pip(python, minor)
                except BuildError as exc:
                    # no pip to build with is not the sdist's fault: no verdict at all (a wrong
                    # one would move pins), an error (not remembered: asked again next time)
                    raise BuildError(f"{file.filename} cannot be built for Python {minor[0]}.{minor[1]}: "
                                     "not built: no pip here builds through PEP 517 for this Python: "
                                     f"{exc}; check the index (it must serve pip), or run again"
                                     if minor else str(exc)) from None
            result = build_sdist_wheel(body, file.filename, index_url=self.client.index_url,
                                       out_dir=self.wheels_dir, timeout=self.timeout, python=python,
                                       frontend=frontend)
            if self.client.transport.aborted:  # stopped by Ctrl-C (stop_builds): not its verdict
                raise BuildError(f"{file.filename}: not built: the run was interrupted")
        self._save(result, tag)
        return result

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        with self._lock:
            self.building += 1
        try:
            yield
        finally:
            with self._lock:
                self.building -= 1

    def _upgraded_pip(self, python: str, minor: tuple[int, int] | None) -> str:
        """The interpreter of a venv of *python* whose pip was upgraded as the README tells a
        user of that Python to (``python -m pip install -U pip``, from the index: Python 3.6
        gets pip 21.3.1, which builds through PEP 517 as a laptop's does), made once under the
        builds folder; :class:`BuildError` when that cannot be done."""
        return self._pips.get(python, lambda: _make_upgraded_pip(
            python, minor, self.folder, self.client.index_url, self.timeout))

    def frontend(self, python: str, minor: tuple[int, int] | None) -> Frontend:
        """Who builds with *python* (:meth:`interpreter` of *minor*): ``build`` in the builds'
        own interpreter; uv for another Python 3.8 or later (when uv is there); else its own pip
        (Python 2, 3.6 and 3.7)."""
        if python == self.python:
            return "pip" if self.python2 else "build"
        return "uv" if minor is not None and minor >= (3, 8) and uv_binary() is not None else "pip"

    def _path(self, sha256: str, tag: str) -> Path | None:
        suffix = "-py2" if self.python2 else tag
        return None if self.folder is None else self.folder / f"{sha256}{suffix}.json"

    def _load(self, sha256: str | None, tag: str) -> WheelBuild | None:
        path = self._path(sha256, tag) if sha256 else None
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("format") != CACHE_FORMAT:
                return None
            metadata = data["metadata"]
            build = WheelBuild(sdist=data["sdist"], sha256=data["sha256"], wheel=data["wheel"],
                               metadata=None if metadata is None else metadata.encode("utf-8"),
                               reason=plain_reason(data["reason"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        wheels = self.wheels_dir
        if build.pure and wheels is not None and not (wheels / str(build.wheel)).is_file():
            return None  # the wheel was removed: build again
        return build

    def _save(self, build: WheelBuild, tag: str) -> None:
        path = self._path(build.sha256, tag) if build.sha256 else None
        if path is None:
            return
        data = {"format": CACHE_FORMAT, "sdist": build.sdist, "sha256": build.sha256, "wheel": build.wheel,
                "metadata": None if build.metadata is None else build.metadata.decode("utf-8", "replace"),
                "reason": build.reason}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except (OSError, StackmetaError):
            pass  # a cache that cannot be written keeps nothing


def built_metadata(build: WheelBuild, project: str) -> CoreMetadata | None:
    """The core metadata of the wheel *build* made (None when it made none, or it is unreadable)."""
    if build.metadata is None:
        return None
    try:
        return parse_metadata(build.metadata, url=f"{build.sdist} (built)", project=project)
    except StackmetaError:
        return None


def verdict(files: Sequence[F], target: Target, project: str, builds: Builds | None,
            full: Callable[[F], ProjectFile] | None = None) -> Verdict:
    """Whether a cell (*target*) can install the version whose files are *files*: a usable wheel;
    else an sdist that *builds* into a pure wheel whose Requires-Python admits the target (with
    *builds* None an sdist counts as installable, unbuilt). *files* may be a page's rows
    (:class:`~stackmeta.index.simple.FileRow`): *full* then gives the file of one, for the
    sdist to build or the wheel to run (pip, setuptools, wheel)."""

    def file_of(f: F) -> ProjectFile:
        return full(f) if full is not None else f  # type: ignore[return-value]

    live = [f for f in files if not f.yanked] or list(files)
    wheels = [f for f in live if f.kind == "wheel" and file_usable(f, target)]
    if wheels:
        best = min(wheels, key=lambda f: target.wheel_rank(f.filename) or 0)
        failure = _tool_failure(builds, lambda: file_of(best), project, target)
        if failure:
            return Verdict(installable=False, how="none", file=best.filename, reason=failure)
        return Verdict(installable=True, how="wheel", file=best.filename)
    sdist = _sdist(live)
    if sdist is None:
        return Verdict(installable=False, how="none", reason=f"no wheel for {target.platform} and Python "
                       f"{target.python_minor[0]}.{target.python_minor[1]}, and no sdist")
    if not python_ok(sdist, target):
        return Verdict(installable=False, how="none", reason=f"Requires-Python {sdist.requires_python} "
                       f"excludes Python {target.python_minor[0]}.{target.python_minor[1]}")
    if builds is None:
        return Verdict(installable=True, how="built", file=sdist.filename, reason="")
    source = file_of(sdist)
    build = builds.build(source, project, target.python_minor)
    if not build.pure:
        return Verdict(installable=False, how="none", file=sdist.filename,
                       reason=f"no wheel for this cell; its sdist does not build: {build.reason}")
    md = built_metadata(build, project)
    if md is not None and md.requires_python is not None \
            and not md.requires_python.contains(target.python_full, prereleases=True):
        return Verdict(installable=False, how="none", file=sdist.filename,
                       reason=f"its built wheel requires Python {md.requires_python}")
    wheels_dir = builds.wheels_dir
    failure = _tool_failure(builds, lambda: source, project, target,
                            None if wheels_dir is None or build.wheel is None else wheels_dir / build.wheel)
    if failure:
        return Verdict(installable=False, how="none", file=sdist.filename, reason=failure)
    return Verdict(installable=True, how="built", file=sdist.filename)


def _tool_failure(builds: Builds | None, file_of: Callable[[], ProjectFile], project: str, target: Target,
                  wheel: Path | None = None) -> str:
    """For pip, setuptools and wheel: why the version does not start in the target's Python
    (see :mod:`~stackmeta.index.runs`); "" when it does, or for any other project. The file
    (*file_of*) is asked for only then (from a page's row, it is built)."""
    if builds is None or not tool(canonicalize_name(project)):
        return ""
    file = file_of()
    if file.kind == "sdist" and wheel is None:
        return ""  # no built wheel on disk to run: the metadata's word stands
    failure = builds.runs.failure(file, canonicalize_name(project), target.python_minor, wheel)
    minor = f"{target.python_minor[0]}.{target.python_minor[1]}"
    return f"it does not start on Python {minor}: {failure}" if failure else ""


def _sdist(live: Sequence[F]) -> F | None:
    """The sdist that is built for a version (a ``.tar.gz`` first)."""
    sdists = sorted((f for f in live if f.kind == "sdist"), key=lambda f: not f.filename.endswith(".tar.gz"))
    return sdists[0] if sdists else None


def build_ahead(files: Sequence[ProjectFile], target: Target, project: str, builds: Builds) -> None:
    """Start building in the background the sdist that :func:`verdict` would build for these
    files and this target (nothing when a wheel serves, or the sdist's Requires-Python excludes
    the target)."""
    live = [f for f in files if not f.yanked] or list(files)
    if any(f.kind == "wheel" and file_usable(f, target) for f in live):
        return
    sdist = _sdist(live)
    if sdist is not None and python_ok(sdist, target):
        builds.start(sdist, project, target.python_minor)


def builds_for(client: IndexClient, *, python2: bool, timeout: float = WHEEL_TIMEOUT) -> Builds | None:
    """The builds of a release's sdists: with the running Python, a Python 2 release's with
    Python 2.7 (:func:`python2_interpreter`; None when there is none)."""
    python = python2_interpreter() if python2 else sys.executable
    return None if python is None else Builds(client, timeout=timeout, python=python, python2=python2)


def python2_interpreter() -> str | None:
    """A Python 2.7 interpreter to build Python 2 cells' sdists with: ``python2.7`` on PATH, or
    pyenv's; None when there is none that runs."""
    return find_minor((2, 7))
