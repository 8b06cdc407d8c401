"""Build a synthetic cmsdist git repository of N release tags from the shared excerpt folders.

Files change a little from tag to tag, as real history does: each new release of a cycle
bumps one pin of ``pip/requirements.txt`` (or one spec's version in the 9_3 era) over the
previous one. Tags are ``REL/<release>/<arch>``, cycling through the eras of the excerpts
(9_3 on two arches, 10_6, 14_0). Written with one ``git fast-import`` run, so making 1,000
tags takes seconds.

    python benchmarks/make_history.py OUT_DIR --tags 1000 [--shared ../shared/cmsdist-excerpts]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "cmsdist-excerpts"

# (excerpt folder, release cycle prefix, arch)
BASES = (
    ("CMSSW_14_0_0__el9_amd64_gcc12", "CMSSW_14_0", "el9_amd64_gcc12"),
    ("CMSSW_10_6_0__slc7_amd64_gcc700", "CMSSW_10_6", "slc7_amd64_gcc700"),
    ("CMSSW_9_3_0__slc6_amd64_gcc630", "CMSSW_9_3", "slc6_amd64_gcc630"),
    ("CMSSW_9_3_0__slc7_aarch64_gcc700", "CMSSW_9_3", "slc7_aarch64_gcc700"),
)

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([0-9][^;\s]*)(.*)$")
_HEADER = re.compile(r"^(### RPM \S+ \S+ )(\d+)\.(\d+)(.*)$")


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _bump_pin(files: dict[str, bytes], step: int) -> str:
    """Raise the micro version of one pin of pip/requirements.txt (a different one each step)."""
    text = files["pip/requirements.txt"].decode()
    lines = text.splitlines(keepends=True)
    pins = [i for i, line in enumerate(lines) if _PIN.match(line.strip())]
    index = pins[(step * 7) % len(pins)]
    match = _PIN.match(lines[index].strip())
    assert match is not None
    name, version, rest = match.groups()
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + 1) if parts[-1].isdigit() else parts[-1] + "1"
    lines[index] = f"{name}=={'.'.join(parts)}{rest}\n"
    files["pip/requirements.txt"] = "".join(lines).encode()
    return "pip/requirements.txt"


def _bump_spec(files: dict[str, bytes], step: int) -> str:
    """Raise the minor version in the header of one py2-*.spec (a different one each step)."""
    specs = sorted(k for k in files if k.startswith("py2-") and k.endswith(".spec"))
    for offset in range(len(specs)):
        key = specs[(step * 5 + offset) % len(specs)]
        text = files[key].decode()
        first, _, rest = text.partition("\n")
        match = _HEADER.match(first)
        if match:
            head, major, minor, tail = match.groups()
            files[key] = f"{head}{major}.{int(minor) + 1}{tail}\n{rest}".encode()
            return key
    raise ValueError("no py2-*.spec with a numeric version to bump")


def _tags(count: int) -> list[tuple[int, str, str]]:
    """(base index, release name, arch) for *count* tags, in release order per cycle."""
    out = []
    per_base = [0] * len(BASES)
    for i in range(count):
        base = i % len(BASES)
        n = per_base[base]
        per_base[base] += 1
        _, cycle, arch = BASES[base]
        # CMSSW_14_0_0, CMSSW_14_0_0_patch1 .. patch3, CMSSW_14_0_1, ...
        release = f"{cycle}_{n // 4}" if n % 4 == 0 else f"{cycle}_{n // 4}_patch{n % 4}"
        out.append((base, release, arch))
    return out


def make_history(out: Path, count: int, shared: Path) -> list[str]:
    """Create the repository at *out*; returns the tag names in creation order."""
    trees = [_read_tree(shared / folder) for folder, _, _ in BASES]
    out.mkdir(parents=True, exist_ok=False)
    subprocess.run(["git", "init", "-q", "-b", "main", str(out)], check=True)
    stream: list[bytes] = []
    tags: list[str] = []
    for step, (base, release, arch) in enumerate(_tags(count)):
        mark = step + 1
        files = trees[base]
        if step < len(BASES):
            changed = sorted(files)  # the first commit of a branch holds the whole tree
        elif "pip/requirements.txt" in files and not BASES[base][1].startswith("CMSSW_9_"):
            changed = [_bump_pin(files, step)]
        else:
            changed = [_bump_spec(files, step)]
        message = f"{release} {arch}".encode()
        stream.append(f"commit refs/heads/{BASES[base][0]}\n".encode())
        stream.append(f"mark :{mark}\n".encode())
        stream.append(f"committer cmsbuild <cmsbuild@cern.ch> {1500000000 + step * 3600} +0000\n".encode())
        stream.append(f"data {len(message)}\n".encode() + message + b"\n")
        for path in changed:
            data = files[path]
            stream.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        stream.append(b"\n")
        tag = f"REL/{release}/{arch}"
        stream.append(f"reset refs/tags/{tag}\nfrom :{mark}\n\n".encode())
        tags.append(tag)
    subprocess.run(["git", "-C", str(out), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    return tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        print(f"error: no excerpt folders at {args.shared}: pass --shared", file=sys.stderr)
        return 1
    tags = make_history(args.out, args.tags, args.shared)
    print(f"{args.out}: {len(tags)} tags, first {tags[0]}, last {tags[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
