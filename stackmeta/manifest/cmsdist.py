"""Reading a cmsdist tree: the I/O edge of the manifest reader.

A :class:`Tree` is one release for one arch, laid out like the cmsdist repository. Three
sources give trees (:func:`open_source`):

- a plain folder laid out like the repository (one arch);
- a folder of such folders named ``<RELEASE>__<ARCH>`` (the shared excerpts);
- a git clone, bare or not, read at the tag ``REL/<release>/<arch>`` straight from the git
  objects with one long-lived ``git cat-file --batch`` process: nothing is checked out and
  nothing in the clone changes.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import subprocess
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from stackmeta.errors import ManifestError, UsageError
from stackmeta.release import release_order

# Files one of which every cmsdist tree of any era holds.
_MARKERS = ("cmssw-tool-conf.spec", "cmssw-tools.spec", "rpm-preamble.file")


class Tree(Protocol):
    """One release for one arch, as files."""

    def read(self, path: str) -> bytes | None:
        """The bytes of the file at *path* (relative, '/'-separated), or None."""

    def list(self, directory: str) -> list[str]:
        """The names of the entries directly inside *directory* ('' for the top), sorted."""

    def key(self, path: str) -> str | None:
        """A content key for *path* (a git blob id), or None: the bytes are the key."""


def tree_path(path: str) -> str | None:
    """*path* ('/'-separated, relative to the top of the tree) normalised, or None when it
    leaves the tree (``../x``, ``a/../../x``, ``/etc/x``): a tree is read inside itself only."""
    if not path or path.startswith("/") or "\0" in path:
        return None
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


class FolderTree:
    """A plain folder laid out like the repository; a path or a symbolic link that leads out
    of the folder is not followed (read as missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real = root.resolve()

    def _inside(self, path: str) -> Path | None:
        normal = tree_path(path)
        if normal is None:
            return None
        target = self.root / normal if normal else self.root
        try:
            real = target.resolve()
        except (OSError, RuntimeError):  # a link loop
            return None
        return target if real == self._real or real.is_relative_to(self._real) else None

    def read(self, path: str) -> bytes | None:
        target = self._inside(path)
        if target is None:
            return None
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ManifestError(f"{target}: cannot be read ({exc.strerror})") from None

    def list(self, directory: str) -> list[str]:
        target = self._inside(directory) if directory else self.root
        if target is None:
            return []
        try:
            return sorted(os.listdir(target))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def key(self, path: str) -> str | None:
        return None


class GitObjects:
    """One ``git cat-file --batch`` process over a repository (bare or not).

    Commits, trees and blobs are all read through it: no process per file or per tag. Parsed
    trees are kept in a small cache by object id (consecutive tags share most of them), so
    memory stays flat however many tags are read.
    """

    TREE_CACHE = 32  # a tag's trees; consecutive tags share most

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None
        self._trees: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()

    def git(self, *args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.repo), *args], capture_output=True, check=False,
                process_group=0,
            )
        except FileNotFoundError:
            raise ManifestError("git is not installed: install git to read a cmsdist clone") from None
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ManifestError(
                f"git {args[0]} failed in {self.repo}: {message[-1] if message else 'no message'}: "
                "check that --cmsdist names a complete, readable git clone"
            )
        return done.stdout.decode("utf-8", "replace")

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            try:
                # Its own process group: a Ctrl-C meant for us does not kill the reader mid-batch.
                self._proc = subprocess.Popen(
                    ["git", "-C", str(self.repo), "cat-file", "--batch"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    process_group=0,
                )
            except FileNotFoundError:
                raise ManifestError("git is not installed: install git to read a cmsdist clone") from None
        return self._proc

    def read(self, name: str) -> tuple[str, bytes] | None:
        """(type, bytes) of the object *name* (an id, or anything git names: ``tag^{commit}``)."""
        proc = self._start()
        stdin: IO[bytes] | None = proc.stdin
        stdout: IO[bytes] | None = proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(name.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise ManifestError(
                f"git cat-file stopped answering in {self.repo}: is the clone readable?"
            ) from None
        head = stdout.readline()
        if not head:
            raise ManifestError(f"git cat-file stopped answering in {self.repo}: is the clone readable?")
        if head.endswith((b" missing\n", b" ambiguous\n")):
            return None
        _oid, kind, size = head.split()
        data = stdout.read(int(size))
        stdout.read(1)  # the newline after the object
        return kind.decode(), data

    def blob(self, object_id: str) -> bytes | None:
        found = self.read(object_id)
        return None if found is None or found[0] != "blob" else found[1]

    def tree(self, object_id: str) -> dict[str, tuple[str, str]]:
        """The entries of a tree object: name -> (kind, id), kind "blob", "tree" or "commit"."""
        cached = self._trees.get(object_id)
        if cached is not None:
            self._trees.move_to_end(object_id)
            return cached
        found = self.read(object_id)
        if found is None or found[0] != "tree":
            raise ManifestError(
                f"git object {object_id} in {self.repo} is not a tree: is the clone complete?"
            )
        entries = _parse_tree(found[1], len(object_id) // 2)
        self._trees[object_id] = entries
        if len(self._trees) > self.TREE_CACHE:
            self._trees.popitem(last=False)
        return entries

    def commit_tree(self, commit: str) -> str:
        """The root tree of *commit* (an id or a name such as ``REL/x/y^{commit}``)."""
        found = self.read(commit)
        if found is None or found[0] != "commit":
            raise ManifestError(f"{commit} is not a commit in {self.repo}")
        first = found[1].split(b"\n", 1)[0]
        if not first.startswith(b"tree "):
            raise ManifestError(f"commit {commit} in {self.repo} has no tree: is the clone complete?")
        return first[5:].decode()

    def tags(self, prefix: str = "refs/tags/REL/") -> dict[str, str]:
        """Every tag under *prefix* (without ``refs/tags/``) -> the commit it names, in one call."""
        listing = self.git("for-each-ref", "--format=%(refname) %(objecttype) %(objectname) %(*objecttype) "
                           "%(*objectname)", prefix)
        out: dict[str, str] = {}
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 5 and parts[3] == "commit":
                out[parts[0][len("refs/tags/"):]] = parts[4]
            elif len(parts) == 3 and parts[1] == "commit":
                out[parts[0][len("refs/tags/"):]] = parts[2]
        return out

    def close(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            if proc.stdin:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.stdout:
                proc.stdout.close()
            proc.wait()

    def __enter__(self) -> GitObjects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_MODE_KIND = {b"40000": "tree", b"160000": "commit", b"120000": "link"}
LINK_HOPS = 40  # symbolic links followed for one path at most (as Linux's ELOOP limit)
_ENTRY = {size: re.compile(rb"([0-7]+) ([^\0]*)\0(.{%d})" % size, re.S) for size in (20, 32)}  # sha1, sha256


def _parse_tree(data: bytes, id_size: int) -> dict[str, tuple[str, str]]:
    """A tree object's entries ``<mode> <name>\\0<binary id>``: name -> (kind, hex id)."""
    kinds = _MODE_KIND
    return {
        name.decode("utf-8", "surrogateescape"): (kinds.get(mode, "blob"), oid.hex())
        for mode, name, oid in _ENTRY[id_size].findall(data)
    }


class GitTree:
    """The tree of one commit, read from git objects as paths are asked for."""

    def __init__(self, objects: GitObjects, commit: str) -> None:
        self.objects = objects
        self.commit = commit
        self.root = objects.commit_tree(commit)
        self._dirs: dict[str, dict[str, tuple[str, str]] | None] = {"": objects.tree(self.root)}
        self._through: dict[str, tuple[str, ...]] = {}
        self._entries: dict[str, tuple[str, str] | None] = {}  # path -> its entry (a walk asks often)

    def _dir(self, path: str) -> dict[str, tuple[str, str]] | None:
        if path in self._dirs:
            return self._dirs[path]
        parent, _, name = path.rpartition("/")
        up = self._dir(parent)
        entry = None if up is None else up.get(name)
        found = None if entry is None or entry[0] != "tree" else self.objects.tree(entry[1])
        self._dirs[path] = found
        return found

    def _entry(self, path: str) -> tuple[str, str] | None:
        """The entry *path* names, symbolic links followed as a checkout would (relative to the
        link's folder, at most LINK_HOPS of them); None when missing or when a link leads out
        of the tree (an absolute target, or ``..`` past the top)."""
        if path in self._entries:
            return self._entries[path]
        walked: list[str] = []
        try:
            found = self._follow(path, walked)
        finally:
            if len(walked) > 1:  # links were followed: remember every path the answer rests on
                self._through[path] = tuple(walked)
        self._entries[path] = found
        return found

    def _follow(self, path: str, walked: list[str]) -> tuple[str, str] | None:
        normal = tree_path(path) if path else ""
        if normal is None:
            return None
        pending = normal.split("/") if normal else []
        real: list[str] = []  # the folders walked so far, links resolved
        entry: tuple[str, str] | None = ("tree", self.root)
        hops = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not real:
                    return None  # out of the tree
                real.pop()
                entry = ("tree", self.root) if not real else self._dir_entry("/".join(real))
                continue
            entries = self._dir("/".join(real))
            entry = None if entries is None else entries.get(name)
            if entry is None or entry[0] == "link":
                walked.append("/".join([*real, name]))
            if entry is None:
                return None
            if entry[0] == "link":
                hops += 1
                target = self.objects.blob(entry[1])
                if hops > LINK_HOPS or target is None or target.startswith(b"/") or b"\0" in target:
                    return None
                pending = target.decode("utf-8", "surrogateescape").split("/") + pending
                continue
            real.append(name)
        walked.append("/".join(real))
        return entry

    def kind(self, path: str) -> str | None:
        """What *path* is in the tree: "blob", "tree", "commit" (a submodule), or None."""
        entry = self._entry(path)
        return None if entry is None else entry[0]

    def through(self, path: str) -> tuple[str, ...]:
        """The paths a read of *path* went through when it followed links (the links and the
        file they lead to): a change to any of them changes what *path* reads."""
        return self._through.get(path, ())

    def _dir_entry(self, path: str) -> tuple[str, str] | None:
        parent, _, name = path.rpartition("/")
        entries = self._dir(parent)
        return None if entries is None else entries.get(name)

    def read(self, path: str) -> bytes | None:
        entry = self._entry(path)
        return None if entry is None or entry[0] != "blob" else self.objects.blob(entry[1])

    def list(self, directory: str) -> list[str]:
        entry = self._entry(directory.strip("/"))
        entries = None if entry is None or entry[0] != "tree" else self.objects.tree(entry[1])
        return [] if entries is None else sorted(n for n, (kind, _) in entries.items() if kind != "commit")

    def key(self, path: str) -> str | None:
        entry = self._entry(path)
        return None if entry is None or entry[0] != "blob" else entry[1]


def is_cmsdist_tree(tree: Tree) -> bool:
    names = set(tree.list(""))
    return any(m in names for m in _MARKERS)


# -- sources ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Source:
    """Where a release's trees come from, and how the record names it."""

    description: str  # "folder CMSSW_9_3_0__slc6_amd64_gcc630", "git <commit> <tag>"
    trees: dict[str, Tree]  # arch -> tree


_FOLDER = re.compile(r"^(CMSSW_[A-Za-z0-9_-]+?)__([a-z0-9]+_[a-z0-9]+_[a-z]+[0-9]+\w*)$")


def is_git_repo(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


class Opened:
    """An open cmsdist source: list its releases/arches, pick trees; close the git process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.objects: GitObjects | None = None
        self._tags: dict[str, str] | None = None
        self.kind: str
        if not path.exists():
            raise UsageError(f"--cmsdist {path}: no such file or folder: give a cmsdist clone or folder")
        if not path.is_dir():
            raise UsageError(f"--cmsdist {path}: not a folder: give a cmsdist clone or folder")
        if is_git_repo(path):
            self.kind = "git"
            self.objects = GitObjects(path)
        elif is_cmsdist_tree(FolderTree(path)):
            self.kind = "folder"
        elif any(_FOLDER.match(name) for name in os.listdir(path)):
            self.kind = "folders"
        else:
            raise ManifestError(
                f"{path} is not a cmsdist tree (no {', '.join(_MARKERS)}, no <RELEASE>__<ARCH> "
                "folders, not a git clone): give a cmsdist clone or a folder laid out like it"
            )

    def close(self) -> None:
        if self.objects is not None:
            self.objects.close()

    def tags(self) -> dict[str, str]:
        """A git source's release tags ``REL/<release>/<arch>`` -> commit (read once)."""
        if self._tags is None:
            assert self.objects is not None
            self._tags = self.objects.tags()
        return self._tags

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def available(self) -> list[tuple[str, str]]:
        """Every (release, arch) this source holds ('' arch: a plain folder that does not say)."""
        if self.kind == "git":
            out = []
            for tag in self.tags():
                parts = tag.split("/")
                if len(parts) == 3:
                    out.append((parts[1], parts[2]))
            return out
        if self.kind == "folders":
            out = []
            for name in sorted(os.listdir(self.path)):
                m = _FOLDER.match(name)
                if m and (self.path / name).is_dir():
                    out.append((m.group(1), m.group(2)))
            return out
        m = _FOLDER.match(self.path.name)
        return [(m.group(1), m.group(2))] if m else []

    def arches(self, release: str) -> list[str]:
        return sorted({arch for rel, arch in self.available() if rel == release})

    def choose_arches(self, release: str, wanted: Iterable[str]) -> list[str]:
        """The arches to export: *wanted*, or the release's only arch; errors name what exists."""
        wanted = list(dict.fromkeys(wanted))
        have = self.arches(release)
        if self.kind == "folder" and not self.available():
            # A plain folder whose name does not say its release and arch: trust --arch.
            if len(wanted) != 1:
                raise UsageError(
                    f"{self.path} does not say its arch (its name is not <RELEASE>__<ARCH>): "
                    "give exactly one --arch"
                )
            return wanted
        if not have:
            available = self.available()
            known = sorted({rel for rel, _ in available}, key=release_order)
            near = difflib.get_close_matches(release, known, n=3, cutoff=0.6)
            tags = [self._name(rel, arch) for rel in near for r, arch in sorted(available) if r == rel][:5]
            where = self._what()
            raise ManifestError(
                f"release {release} not found in {where} (looked for {self._looked(release)}); "
                + (f"nearest: {', '.join(tags)}" if tags else f"it holds {len(known)} other releases")
            )
        if not wanted:
            if len(have) == 1:
                return have
            raise UsageError(
                f"{release} has {len(have)} arches in {self._what()}: {', '.join(have)}; choose with --arch "
                "(several --arch give one lock with markers)"
            )
        for arch in wanted:
            if arch not in have:
                tags = [f"{self._name(release, a)}" for a in have]
                near = difflib.get_close_matches(self._name(release, arch), tags, n=5, cutoff=0.0)
                raise ManifestError(
                    f"{self._name(release, arch)} not found in {self._what()}; nearest: {', '.join(near)}"
                )
        return wanted

    def _what(self) -> str:
        return {"git": "the git clone", "folders": "the folder", "folder": "the folder"}[self.kind] + \
            f" {self.path.name}"

    def _name(self, release: str, arch: str) -> str:
        return f"REL/{release}/{arch}" if self.kind == "git" else f"{release}__{arch}"

    def _looked(self, release: str) -> str:
        return f"tags REL/{release}/*" if self.kind == "git" else f"folders {release}__*"

    def description(self, release: str, arches: Iterable[str]) -> str:
        """What a record read from *release* on *arches* names as its source (reads no file):
        ``git <commit> REL/<release>/<arch>, ...`` or ``folder <name>[: <RELEASE>__<ARCH>, ...]``."""
        arches = sorted(arches)
        if self.kind == "git":
            tags = [f"REL/{release}/{arch}" for arch in arches]
            return "git " + ", ".join(f"{self.tags()[tag]} {tag}" for tag in tags)
        if self.kind == "folders":
            return f"folder {self.path.name}: " + ", ".join(f"{release}__{a}" for a in arches)
        return f"folder {self.path.name}"

    def source(self, release: str, arches: list[str]) -> Source:
        trees: dict[str, Tree] = {}
        arches = sorted(arches)
        if self.kind == "git":
            assert self.objects is not None
            for arch in arches:
                trees[arch] = GitTree(self.objects, self.tags()[f"REL/{release}/{arch}"])
        elif self.kind == "folders":
            for arch in arches:
                folder = self.path / f"{release}__{arch}"
                tree = FolderTree(folder)
                if not is_cmsdist_tree(tree):
                    raise ManifestError(f"{folder} is not a cmsdist tree (no {', '.join(_MARKERS)})")
                trees[arch] = tree
        else:
            trees[arches[0]] = FolderTree(self.path)
        return Source(description=self.description(release, arches), trees=trees)

