"""From a cmsdist tree to the Python stack a release ships (RULES.md §2, §5-7).

:func:`read_release` walks each arch's tree from ``cmssw-tool-conf`` and returns one
:class:`stackmeta.record.Release`. The walk is pure over a :class:`stackmeta.manifest.cmsdist.Tree`
(``read``/``list``); parsing and evaluation are cached per file content, so a batch over
many tags parses each distinct blob once.

The default stack (``python_major=None``) is Python 3 when the release reaches ``python3``
and that stack has packages, otherwise Python 2 (RULES §6).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta import __version__
from stackmeta.errors import ManifestError
from stackmeta.manifest import shell, spec
from stackmeta.manifest.cmsdist import GitTree, Tree
from stackmeta.manifest.pins import Arch, Era, Pin, era, read_pins
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.record import BuildKind, Package, Problem, Release, UnshippedPin
from stackmeta.release import optional_version

# -- specs ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecFile:
    """Where a package's spec comes from: a file of the tree or generated text."""

    name: str
    path: str
    text: str
    generated: bool = False
    pin: Pin | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecFacts:
    """One spec evaluated for one arch."""

    rpm: str
    version_written: str
    where: str  # file:line of the header
    requires: tuple[tuple[str, str], ...]  # (name, where)
    build_requires: tuple[tuple[str, str], ...]
    sources: tuple[tuple[str, str], ...]  # (tag, value)
    patches: tuple[str, ...]
    pip_name: str | None
    imports_pip: bool
    do_python: Mapping[str, str]  # doPython2/doPython3 values when defined
    initenv: tuple[str, ...]
    body: spec.BodyFacts
    issues: tuple[spec.Issue, ...]


# Caches shared by every walk of a process, keyed by content: a batch over many tags parses
# each distinct file once. Bounded so that memory stays flat over thousands of tags: past
# CACHE_SIZE entries the older half is dropped (a batch walks tags in release order, so the
# entries still in use are met again and come back once).
CACHE_SIZE = 2048
PINS_CACHE = 16  # requirements files read: each entry holds a few hundred pins (~90 kB)


def remember(cache: dict[Any, Any], key: Any, value: Any, limit: int = CACHE_SIZE) -> None:
    if len(cache) >= limit:
        for old in list(itertools.islice(cache, limit // 2)):
            del cache[old]
    cache[key] = value


def recall(cache: dict[Any, Any], key: Any) -> Any:
    """``cache.get(key)``, the entry moved to the newest end: an entry in use is not dropped."""
    value = cache.pop(key, None)
    if value is not None:
        cache[key] = value
    return value


_TEXTS: dict[tuple[str, str], str] = {}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# benchmarks/batch_export.py clears this cache by this name; it is spec's one.
_split = spec.cached_lines


_PINS: dict[tuple[str, Era, str, str], tuple[Pin, ...]] = {}


def _pins(text: str, release: str, arch: Arch, rules: Era) -> tuple[Pin, ...]:
    """``read_pins``, once per requirements file, era and machine (the arches of a release
    and the releases of a cycle mostly share them)."""
    key = (text, rules, arch.machine, arch.os)
    found: tuple[Pin, ...] | None = recall(_PINS, key)
    if found is None:
        found = tuple(read_pins(text, release, arch))
        remember(_PINS, key, found, PINS_CACHE)
    return found


class _Reader:
    """The tree's files as text, cached by content key (git blob id) across trees."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._local: dict[str, str | None] = {}
        self.collect: set[str] | None = None  # the paths read, for the walk's memo

    def __call__(self, path: str) -> str | None:
        if self.collect is not None:
            self.collect.add(path)
        if path in self._local:
            if self.collect is not None and isinstance(self.tree, GitTree):
                self.collect.update(self.tree.through(path))
            return self._local[path]
        key = self.tree.key(path)
        if self.collect is not None and isinstance(self.tree, GitTree):
            self.collect.update(self.tree.through(path))  # a linked file: the link and its target
        if key is not None and (key, path) in _TEXTS:
            text: str | None = _TEXTS[(key, path)]
        else:
            data = self.tree.read(path)
            text = None if data is None else _decode(data)
            if key is not None and text is not None:
                remember(_TEXTS, (key, path), text)
        self._local[path] = text
        return text


@dataclass(frozen=True, kw_only=True, slots=True)
class _Variant:
    """One evaluation of a spec: what it read of the arch, and the facts."""

    looked_up: tuple[tuple[str, spec.Macro | None], ...]  # the base macros looked up, with their values
    names: frozenset[str]  # the names of looked_up
    machine: str | None  # the machine, when the evaluation asked for it
    path: str  # the spec's path (a pin's generated spec: pip/requirements.txt:<line>)
    facts: SpecFacts


_PINNED = "pip/requirements.txt:"
# (name, path, text, files read assembling it) -> its evaluations
_EVALUATED: dict[tuple[object, ...], list[_Variant]] = {}
_ASSEMBLED: dict[
    tuple[str, str, str], list[tuple[tuple[tuple[str, str | None], ...], spec.Assembled]]
] = {}


class Walker:
    """One release, one arch: names to specs, specs to facts, the walk."""

    def __init__(self, tree: Tree, release: str, arch: Arch, progress: Progress = NO_PROGRESS) -> None:
        self.tree = tree
        self.read = _Reader(tree)
        self.release = release
        self.arch = arch
        self.era = era(release)
        self.progress = progress
        self.problems: list[Problem] = []
        self.pins: dict[str, Pin] = {}
        req = self.read("pip/requirements.txt")
        if req is not None and self.era.pins is not None:
            for pin in _pins(req, release, arch, self.era):
                self.pins[pin.rpm] = pin
        self.data: set[str] = set()
        data = self.read("data/cmsswdata.txt")
        if data is not None:
            for line in data.splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "[")) and "=" in line:
                    self.data.add("data-" + line.split("=", 1)[0].strip())
        self.tools: set[str] = set()
        if self.era.generated_toolfiles:
            self.tools = set(tree.list("scram-tools.file/tools"))
        self._specs: dict[str, SpecFile | None] = {}
        self._facts: dict[str, SpecFacts] = {}
        self._deps: dict[str, set[str]] = {}  # name -> the paths read finding and evaluating it
        self._variants: dict[str, _Variant] = {}  # name -> the evaluation its facts come from
        self._preamble_text: str | None = None
        self._base = self._preamble_macros()
        # what a spec's evaluation depends on besides its own files: the preamble's macros (not
        # its text: most of its changes are to sections no preamble reads) and the machine
        self._evaluation_key = (tuple(sorted(self._base.items())), arch.machine)
        self._reuse()

    def _reuse(self) -> None:
        """Take over what the last walk of this arch and era learned about the names whose files
        and pin did not change since (a batch walks tags in release order: most are the same).
        The first walk of an arch takes over the lookups of the last walk of another arch of
        the era (a release's arches often share their tree), and the facts whose evaluation
        looked up no base macro that differs between the two arches (nor the machine, if it
        differs)."""
        key = (self.arch.name, self.era)
        memo = _MEMOS.pop(key, None)
        if memo is None:
            memo = next((m for (_, e), m in reversed(_MEMOS.items()) if e == self.era), None)
        _MEMOS[key] = _Memo(tree=self.tree, evaluation=self._evaluation_key, tools=self.tools, data=self.data,
                            pins=self.pins, specs=self._specs, facts=self._facts, deps=self._deps,
                            base=self._base, machine=self.arch.machine, variants=self._variants)
        while len(_MEMOS) > MEMOS:
            del _MEMOS[next(iter(_MEMOS))]
        if memo is None:
            return
        changed = changed_paths(self.tree, memo.tree)
        if changed is None:
            return
        files, folders = changed
        same_evaluation = memo.evaluation == self._evaluation_key
        # else: the lookups are kept, and the facts that looked up none of these macros
        old_base, base = memo.base, self._base
        base_changed = set() if same_evaluation else {
            n for n in old_base.keys() | base.keys() if old_base.get(n) != base.get(n)}
        same_machine = memo.machine == self.arch.machine
        tools = memo.tools ^ self.tools  # tools added or removed: their -toolfile names are found anew
        data = memo.data ^ self.data
        for name, deps in memo.deps.items():
            if name not in memo.specs or name in data or (
                    tools and name.endswith("-toolfile") and name[: -len("-toolfile")] in tools):
                continue
            old_pin, new_pin = memo.pins.get(name), self.pins.get(name)
            if old_pin != new_pin and (old_pin is None or new_pin is None
                                       or dataclasses.replace(old_pin, lineno=new_pin.lineno) != new_pin):
                continue
            if not deps.isdisjoint(files) or (folders and any(d.startswith(folders) for d in deps)):
                continue
            found, facts = memo.specs[name], memo.facts.get(name)
            if old_pin != new_pin and found is not None and old_pin is not None and new_pin is not None:
                # A line added above the pin moved it: the same spec, named at its new line.
                old_path = f"pip/requirements.txt:{old_pin.lineno}"
                new_path = f"pip/requirements.txt:{new_pin.lineno}"
                moved = found.path == old_path
                found = dataclasses.replace(found, pin=new_pin, path=new_path if moved else found.path)
                if moved and facts is not None:
                    facts = _moved(facts, old_path, new_path)
            self._specs[name] = found
            self._deps[name] = deps
            if facts is None:
                continue
            variant = memo.variants.get(name)
            if same_evaluation or (variant is not None and (same_machine or variant.machine is None)
                                   and base_changed.isdisjoint(variant.names)):
                self._facts[name] = facts
                if variant is not None:
                    self._variants[name] = variant

    @contextmanager
    def _collecting(self, name: str) -> Iterator[None]:
        """Within the block, the paths read are remembered as *name*'s (for the next walk's reuse)."""
        previous = self.read.collect
        self.read.collect = self._deps.setdefault(name, set())
        try:
            yield
        finally:
            self.read.collect = previous

    # Names to specs (RULES §2).
    def spec_file(self, name: str) -> SpecFile | None:
        if name in self._specs:
            return self._specs[name]
        with self._collecting(name):
            found = self._find(name)
        self._specs[name] = found
        return found

    def _find(self, name: str) -> SpecFile | None:
        if not name or "/" in name or name.startswith("."):
            return None
        if name == "cmssw-tool-conf" and self.era.generated_tool_conf:
            lines = ["### RPM cms cmssw-tool-conf 1.0", "Requires: cmssw-tools"]
            if self.read("cmssw-tool-conf.file") is not None:
                lines.append("## INCLUDE cmssw-tool-conf")
            lines.append("## INCLUDE scram/tool-conf")
            return SpecFile(name=name, path="cmssw-tool-conf (generated)", text="\n".join(lines) + "\n",
                            generated=True)
        for path in (f"{name}.spec", f"{name}/spec"):
            text = self.read(path)
            if text is not None:
                return SpecFile(name=name, path=path, text=text)
        pin = self.pins.get(name)
        if pin is not None:
            own = self.read(f"pip/{name}.spec")
            if own is not None:
                return SpecFile(name=name, path=f"pip/{name}.spec", text=own, pin=pin)
            lines = [f"### RPM external {name} {pin.version}", "## IMPORT build-with-pip"]
            if self.era.pins == "middle" and pin.switch_off:
                lines.append(f"%define {pin.switch_off} no")
            if self.era.include_pip_name_file and self.read(f"pip/{pin.name}.file") is not None:
                lines.append(f"## INCLUDE pip/{pin.name}")
            if self.read(f"pip/{name}.file") is not None:
                lines.append(f"## INCLUDE pip/{name}")
            return SpecFile(name=name, path=f"pip/requirements.txt:{pin.lineno}",
                            text="\n".join(lines) + "\n",
                            generated=True, pin=pin)
        if name.endswith("-toolfile") and name[: -len("-toolfile")] in self.tools:
            tool = name[: -len("-toolfile")]
            text = f"### RPM external {name} 1.0\nRequires: {tool}\n## INCLUDE scram-tools.file/toolfile\n"
            return SpecFile(name=name, path=f"scram-tools.file/tools/{tool}", text=text, generated=True)
        if name in self.data:
            return SpecFile(name=name, path="data/cmsswdata.txt", text=f"### RPM cms {name} 1.0\n",
                            generated=True)
        return None

    def missing(self, name: str, where: str) -> Problem:
        """The problem of a package *where* requires that has no spec: it is not walked."""
        kinds = {self.tree.kind(p) for p in (name, f"{name}.spec") if isinstance(self.tree, GitTree)}
        what = ("is a submodule (a gitlink): its files are not in the tag" if "commit" in kinds
                else f"has no spec in the tree (no {name}.spec, {name}/spec, pin or generated spec)")
        return Problem(kind="missing-spec", message=f"{name} {what}: it and what it requires are not read",
                       where=where)

    def _preamble_macros(self) -> dict[str, spec.Macro]:
        macros = {
            "cmsos": spec.Macro(self.arch.cmsos),
            "cmscompilerv": spec.Macro(self.arch.compiler_version),
        }
        if self.arch.compiler != "gcc":
            macros["cmscompiler"] = spec.Macro(self.arch.compiler)
        text = self.read("rpm-preamble.file")
        self._preamble_text = text
        if text is None:
            return macros
        key = (text, self.arch.name)
        cached = _PREAMBLES.get(key)
        if cached is None:
            lines = spec.preamble(list(spec.cached_lines(text, "rpm-preamble.file")))
            evaluated = spec.evaluate(lines, macros, self._context())
            cached = (dict(evaluated.macros), evaluated.issues)
            remember(_PREAMBLES, key, cached)
        for issue in cached[1]:
            self.problems.append(Problem(kind=issue.kind, message=issue.message, where=issue.where))
        return dict(cached[0])

    def _context(self) -> shell.Context:
        return shell.Context(machine=self.arch.machine)

    def facts(self, name: str) -> SpecFacts | None:
        if name in self._facts:
            return self._facts[name]
        sf = self.spec_file(name)
        if sf is None:
            return None
        self.progress.advance()
        with self._collecting(name):
            facts = self._evaluate(sf)
        self._facts[name] = facts
        return facts

    def _assemble(self, sf: SpecFile) -> tuple[spec.Assembled, tuple[tuple[str, str | None], ...]]:
        """The spec assembled, and every file read doing it (the cache checks they are unchanged)."""
        key = (sf.path, sf.text, sf.name)
        for reads, assembled in recall(_ASSEMBLED, key) or ():
            if all(self.read(path) == content for path, content in reads):
                return assembled, reads
        log: list[tuple[str, str | None]] = []

        def read(path: str) -> str | None:
            content = self.read(path)
            log.append((path, content))
            return content

        assembled = spec.assemble(sf.path, sf.text, read, package=sf.name)
        variants = _ASSEMBLED.get(key)
        if variants is None:
            variants = []
            remember(_ASSEMBLED, key, variants)
        variants.append((tuple(log), assembled))
        return assembled, tuple(log)

    def _evaluate(self, sf: SpecFile) -> SpecFacts:
        """The facts of *sf*; from the cache when a spec with the same files was evaluated with
        the same values of the base macros its evaluation looked up, and the same machine if
        it asked for it: most specs evaluate the same for every arch and preamble. The spec
        generated for a pin is one whatever its line in pip/requirements.txt: its facts are
        named at its line (:func:`_moved`)."""
        assembled, reads = self._assemble(sf)
        pinned = sf.generated and sf.path.startswith(_PINNED)
        key = (sf.name, _PINNED if pinned else sf.path, sf.text, reads)
        variants: list[_Variant] | None = recall(_EVALUATED, key)
        if variants is not None:
            same = [v for v in variants
                    if (v.machine is None or v.machine == self.arch.machine) and self._same_base(v.looked_up)]
            for variant in same:
                if variant.path == sf.path:
                    self._variants[sf.name] = variant
                    return variant.facts
            if same:
                moved = dataclasses.replace(same[0], facts=_moved(same[0].facts, same[0].path, sf.path),
                                            path=sf.path)
                variants.append(moved)
                self._variants[sf.name] = moved
                return moved.facts
        lines = list(assembled.lines)
        pre = spec.preamble(lines)
        head = spec.header(pre) or spec.header(lines)
        if head is None:
            raise ManifestError(
                f"{sf.path}:1: no '### RPM <group> <name> <version>' header: is this a cmsdist spec?"
            )
        context = _Watched(machine=self.arch.machine)
        seen = set(_ALWAYS)
        facts = self._facts_of(sf, assembled, lines, pre, head[2], head[3], context, seen)
        base = self._base
        variant = _Variant(looked_up=tuple((n, base.get(n)) for n in seen), names=frozenset(seen),
                           machine=self.arch.machine if context.asked else None, path=sf.path, facts=facts)
        if variants is None:
            variants = []
            remember(_EVALUATED, key, variants)
        variants.append(variant)
        self._variants[sf.name] = variant
        return facts

    def _same_base(self, looked_up: tuple[tuple[str, spec.Macro | None], ...]) -> bool:
        base = self._base
        for name, value in looked_up:
            now = base.get(name)
            if now is not value and now != value:
                return False
        return True

    def _facts_of(self, sf: SpecFile, assembled: spec.Assembled, lines: list[spec.Line],
                  pre: list[spec.Line], written: str, head_line: spec.Line,
                  context: shell.Context, seen: set[str]) -> SpecFacts:
        """*sf* evaluated; *seen* gets the names of the macros it looked up."""
        issues = list(assembled.issues)
        written = re.sub(r"-CMS.*$", "", written)
        macros = dict(self._base)
        macros["n"] = spec.Macro(sf.name)
        has_macro = "%" in written
        macros["realversion"] = spec.Macro("1.0" if has_macro else written)
        evaluated = spec.evaluate(pre, macros, context, seen)
        issues.extend(evaluated.issues)
        version = written
        if has_macro:
            exp = spec.Expander(macros=spec.table(evaluated.macros, seen), context=context,
                                 where=head_line.where)
            version = exp.expand(written)
            issues.extend(exp.issues)
        # The walk reads the spec with realversion=1.0 when the header holds macros (RULES §4);
        # the sources and patches are read again with the real version so their URLs are right.
        fields = evaluated
        if has_macro and "%" not in version:
            macros["realversion"] = spec.Macro(version)
            fields = spec.evaluate(pre, macros, context, seen)
        sources = tuple((t.name, t.value) for t in fields.tags if re.fullmatch(r"(?i)source\d*", t.name))
        patches = [t.value for t in fields.tags if re.fullmatch(r"(?i)patch\d*", t.name)]
        for name, where in fields.defines:
            if re.fullmatch(r"patchsrc\d*", name):
                patches.append(f"%{name} ({where})")
        pip_name = evaluated.value("pip_name", context, seen) if "pip_name" in evaluated.macros else None
        do_python = {}
        for flag in ("doPython2", "doPython3"):
            if flag in evaluated.macros:
                do_python[flag] = evaluated.value(flag, context, seen) or ""
        body = spec.body_facts(sf.text, lines[len(pre):])
        return SpecFacts(
            rpm=sf.name,
            version_written=version,
            where=head_line.where,
            requires=tuple(evaluated.requires("Requires")),
            build_requires=tuple(evaluated.requires("BuildRequires")),
            sources=sources,
            patches=tuple(patches),
            pip_name=pip_name,
            imports_pip="build-with-pip" in assembled.imports,
            do_python=do_python,
            initenv=evaluated.initenv,
            body=body,
            issues=tuple(issues),
        )


class _Watched(shell.Context):
    """A Context that notes whether an evaluation asked for the machine (``%ifarch``,
    ``uname -m``)."""

    __slots__ = ("_machine", "asked")

    def __init__(self, *, machine: str) -> None:
        self.asked = False
        super().__init__(machine=machine)

    @property
    def machine(self) -> str:
        self.asked = True
        return self._machine

    @machine.setter
    def machine(self, value: str) -> None:
        self._machine = value


# the macros every evaluation reads (SpecFacts' fields) whether it looks them up or not
_ALWAYS = frozenset({"pip_name", "doPython2", "doPython3"})


def _moved(facts: SpecFacts, old: str, new: str) -> SpecFacts:
    """*facts* of a generated spec whose path moved from *old* to *new* (``pip/requirements.txt:N``):
    every file:line it names, named again."""
    def where(text: str) -> str:
        return new + text[len(old):] if text == old or text.startswith(old + ":") else text

    return dataclasses.replace(
        facts, where=where(facts.where),
        requires=tuple((n, where(w)) for n, w in facts.requires),
        build_requires=tuple((n, where(w)) for n, w in facts.build_requires),
        issues=tuple(dataclasses.replace(i, where=where(i.where)) for i in facts.issues))


_PREAMBLES: dict[tuple[str, str], tuple[dict[str, spec.Macro], tuple[spec.Issue, ...]]] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Memo:
    """The last walk of one (arch, era): its tree, its inputs, and what it resolved."""

    tree: Tree
    evaluation: object  # the walker's evaluation key: its facts hold while it is the same
    tools: set[str]
    data: set[str]
    pins: dict[str, Pin]
    specs: dict[str, SpecFile | None]
    facts: dict[str, SpecFacts]
    deps: dict[str, set[str]]
    base: dict[str, spec.Macro]  # the walker's base macros
    machine: str
    variants: dict[str, _Variant]


_MEMOS: dict[tuple[str, Era], _Memo] = {}
MEMOS = 6  # (arch, era) pairs remembered (a memo holds a whole walk: ~2 MB for a recent release)


def changed_paths(new: Tree, old: Tree) -> tuple[set[str], tuple[str, ...]] | None:
    """The files that differ between two git trees of one repository, and the folders added or
    removed whole (as ``folder/``); None when the trees cannot tell (folders on disk)."""
    if not isinstance(new, GitTree) or not isinstance(old, GitTree) or new.objects is not old.objects:
        return None
    files: set[str] = set()
    folders: list[str] = []
    pending = [("", new.root, old.root)]
    while pending:
        prefix, a, b = pending.pop()
        if a == b:
            continue
        ea, eb = new.objects.tree(a), new.objects.tree(b)
        for name in {n for n, _ in ea.items() ^ eb.items()}:
            x, y = ea.get(name), eb.get(name)
            path = prefix + name
            if x is not None and y is not None and x[0] == y[0] == "tree":
                pending.append((path + "/", x[1], y[1]))
                continue
            files.add(path)
            if (x is not None and x[0] == "tree") or (y is not None and y[0] == "tree"):
                folders.append(path + "/")
    return files, tuple(folders)


# -- the walk (RULES §5) -------------------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Stack:
    """What one arch ships: the walk's result before fields are filled in."""

    arch: Arch
    reached: list[str]
    copied: dict[str, set[str]]  # copy -> the bundles that copy it
    bundles: set[str]
    facts: dict[str, SpecFacts]
    python: dict[int, str]  # major -> interpreter version
    interpreters: dict[str, frozenset[int]] = field(default_factory=dict)
    unshipped: list[Pin] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def walk(walker: Walker) -> Stack:
    root = "cmssw-tool-conf"
    if walker.facts(root) is None:
        raise ManifestError(
            f"no {root}.spec for {walker.release} {walker.arch.name}: not a cmsdist tree of a CMSSW release"
        )
    reached: list[str] = [root]
    seen = {root}
    queue = deque([root])
    missing: list[Problem] = []
    while queue:
        name = queue.popleft()
        facts = walker.facts(name)
        assert facts is not None
        for dep, where in facts.requires:
            if dep in seen:
                continue
            if walker.spec_file(dep) is None:
                missing.append(walker.missing(dep, where))
                continue
            seen.add(dep)
            reached.append(dep)
            queue.append(dep)
    bundles: set[str] = set()
    copied: dict[str, set[str]] = {}
    pending = deque(n for n in reached if walker.facts(n).body.copies)  # type: ignore[union-attr]
    while pending:
        bundle = pending.popleft()
        if bundle in bundles:
            continue
        bundles.add(bundle)
        facts = walker.facts(bundle)
        assert facts is not None
        for dep, where in facts.build_requires:
            dep_facts = walker.facts(dep)
            if dep_facts is None:
                missing.append(walker.missing(dep, where))
                continue
            copied.setdefault(dep, set()).add(bundle)
            if dep_facts.body.copies and dep not in bundles:
                pending.append(dep)
    facts_by_name = {n: f for n in [*reached, *copied] if (f := walker.facts(n)) is not None}
    python: dict[int, str] = {}
    for major, rpm in ((2, "python"), (3, "python3")):
        if rpm in seen and rpm in facts_by_name:
            python[major] = facts_by_name[rpm].version_written
    stack = Stack(arch=walker.arch, reached=reached, copied=copied, bundles=bundles, facts=facts_by_name,
                  python=python)
    for name in dict.fromkeys([*reached, *copied]):
        if not _is_python_package(name) or name in bundles:
            continue
        stack.interpreters[name] = _interpreters(stack, name)
    shipped = set(reached) | set(copied)
    stack.unshipped = [pin for rpm, pin in walker.pins.items() if rpm not in shipped]
    problems: list[Problem] = [*walker.problems, *missing]
    for name in dict.fromkeys([*reached, *copied]):
        for issue in facts_by_name[name].issues:
            problems.append(Problem(kind=issue.kind, message=issue.message, where=issue.where))
    stack.problems = list(dict.fromkeys(problems))
    return stack


def _is_python_package(name: str) -> bool:
    return name.startswith(("py2-", "py3-")) and not name.endswith("-toolfile")


def _prefix(name: str) -> frozenset[int]:
    return frozenset({2} if name.startswith("py2-") else {3})


def _own_interpreters(stack: Stack, name: str) -> frozenset[int]:
    facts = stack.facts[name]
    if name in stack.bundles:
        return facts.body.site_packages
    if facts.imports_pip:
        if facts.do_python:
            out = set()
            if facts.do_python.get("doPython2", "yes") != "no":
                out.add(2)
            if facts.do_python.get("doPython3", "yes") != "no":
                out.add(3)
            return frozenset(out)
        requires = {dep for dep, _ in facts.requires}
        out = set()
        if "python" in requires:
            out.add(2)
        if "python3" in requires:
            out.add(3)
        return frozenset(out) if out else _prefix(name)
    out = set()
    paths = set(facts.initenv)
    if paths & {"PYTHONPATH", "PYTHON27PATH"} and (name.startswith("py2-") or 2 in facts.body.uses):
        out.add(2)
    if "PYTHON3PATH" in paths and (name.startswith("py3-") or 3 in facts.body.uses):
        out.add(3)
    return frozenset(out) if out else _prefix(name)


def _interpreters(stack: Stack, name: str) -> frozenset[int]:
    own = _own_interpreters(stack, name)
    if name in stack.copied and name not in set(stack.reached):
        shared: set[int] = set()
        for bundle in stack.copied[name]:
            shared |= stack.facts[bundle].body.site_packages
        return own & frozenset(shared)
    return own


def default_major(stack: Stack) -> int:
    if 3 in stack.python and any(3 in i for i in stack.interpreters.values()):
        return 3
    return 2


# -- fields (RULES §7) -------------------------------------------------------------------


_ARCHIVE = r"(?:tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar|zip|whl|gz)"
_PYPI_HOSTS = ("pypi.python.org", "files.pythonhosted.org", "pypi.io", "pypi.org")


def main_source(facts: SpecFacts, generated: bool) -> str | None:
    if not facts.sources:
        return None
    first = next((v for t, v in facts.sources if t.lower() in ("source", "source0")), facts.sources[0][1])
    if len(facts.sources) > 1 and not generated:
        for _, value in facts.sources:
            if facts.version_written and facts.version_written in _file_name(value):
                return value
    return first


def _file_name(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def name_from_source(source: str, version: str) -> str | None:
    if source.startswith("pip://"):
        return source[len("pip://"):].split("/", 1)[0] or None
    filename = _file_name(source)
    m = re.match(rf"^(.+?)[-_]v?{re.escape(version)}\.{_ARCHIVE}$", filename)
    if m:
        return m.group(1)
    m = re.search(r"(?:github\.com|gitlab\.[a-z.]+)[/:]([^/]+)/([^/?#]+)", source)
    if m:
        repo = m.group(2)
        return repo[:-4] if repo.endswith(".git") else repo
    return None


def build_kind(source: str | None) -> BuildKind:
    if source is None:
        return BuildKind.OTHER
    s = source.strip()
    if s.startswith("pip://"):
        return BuildKind.PYPI
    if re.match(r"^(git\+|git://|svn|cvs|hg\+|hg://)", s) or re.search(r"\.git(?:$|[?/#])", s.split("?")[0]):
        return BuildKind.VCS
    if s.startswith("usercommand://"):
        return BuildKind.PYPI if re.search(r"pip[23]?(%20|\s)+download", s) else BuildKind.URL
    m = re.match(r"^[a-z][a-z0-9+.-]*://([^/?#]+)", s)
    if m:
        host = m.group(1).split("@")[-1].split(":")[0]
        if host in _PYPI_HOSTS:
            return BuildKind.PYPI
        return BuildKind.URL
    return BuildKind.OTHER


def pep440(written: str) -> Version | None:
    try:
        return Version(written)
    except InvalidVersion:
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchStack:
    """One arch's packages of the chosen Python stack, fields filled in."""

    arch: Arch
    python: str
    packages: tuple[Package, ...]
    unshipped: tuple[UnshippedPin, ...]
    problems: tuple[Problem, ...]
    origins: Mapping[str, str] = field(default_factory=dict)  # rpm -> its spec's file:line


@dataclass(frozen=True, kw_only=True, slots=True)
class _Parts:
    """A package as its spec says it; its requires inside the stack are those of its last use."""

    facts: SpecFacts
    spec: SpecFile | None
    package: Package
    problem: Problem | None


_PARTS: dict[tuple[str, str], _Parts] = {}


def _package_parts(rpm: str, facts: SpecFacts, sf: SpecFile | None, arch: str) -> _Parts:
    """The Package of *rpm* but its requires, remembered while its facts and spec are the same
    objects (a batch's walks hand them on from tag to tag)."""
    cached = _PARTS.get((rpm, arch))
    if cached is not None and cached.facts is facts and cached.spec is sf:
        return cached
    source = main_source(facts, bool(sf and sf.generated))
    written = facts.pip_name or (source and name_from_source(source, facts.version_written)) or \
        rpm.split("-", 1)[1]
    version = pep440(facts.version_written)
    problem = None if version is not None else Problem(
        kind="not-pep440",
        message=f"{rpm} version {facts.version_written!r} is not a PEP 440 version: not pinned",
        where=facts.where)
    system = sorted({d for d, _ in facts.requires
                     if not _is_python_package(d) and d not in ("python", "python3", "python2")})
    pin = sf.pin if sf else None
    package = Package(
        rpm=rpm, name=canonicalize_name(written), display_name=written, version_written=facts.version_written,
        version=version, build=build_kind(source),
        source_url=None if source is None or source.startswith("pip://") or source.lower() == "none"
        else source,
        patches=facts.patches, reasons=pin.reasons if pin else (),
        requires=(), system_libs=tuple(system), arches=(arch,),
    )
    parts = _Parts(facts=facts, spec=sf, package=package, problem=problem)
    remember(_PARTS, (rpm, arch), parts)
    return parts


def arch_stack(walker: Walker, stack: Stack, major: int) -> ArchStack:
    problems = list(stack.problems)
    members = [n for n, inter in stack.interpreters.items() if major in inter]
    member_set = set(members)
    parts = {rpm: _package_parts(rpm, stack.facts[rpm], walker.spec_file(rpm), stack.arch.name)
             for rpm in members}
    names = {rpm: part.package.name for rpm, part in parts.items()}
    packages: list[Package] = []
    for rpm in members:
        part = parts[rpm]
        if part.problem is not None:
            problems.append(part.problem)
        requires = tuple(sorted({names[d] for d, _ in part.facts.requires if d in member_set and d != rpm}))
        pkg = part.package
        if pkg.requires != requires:
            pkg = dataclasses.replace(pkg, requires=requires)
            remember(_PARTS, (rpm, stack.arch.name), dataclasses.replace(part, package=pkg))
        packages.append(pkg)
    origins = {rpm: parts[rpm].facts.where + (f", copied into {', '.join(sorted(stack.copied[rpm]))}"
                                              if rpm in stack.copied else "") for rpm in members}
    packages = _merge_projects(packages, problems, origins)
    unshipped = tuple(
        UnshippedPin(rpm=p.rpm, name=canonicalize_name(p.name), version_written=p.version, reasons=p.reasons)
        for p in stack.unshipped
    )
    if major not in stack.python:
        raise ManifestError(
            f"{walker.release} {stack.arch.name} does not ship python{'' if major == 2 else '3'}: "
            f"no Python {major} stack to export"
        )
    return ArchStack(arch=stack.arch, python=stack.python[major], packages=tuple(packages),
                     unshipped=unshipped, problems=tuple(problems), origins=origins)


def _merge_projects(packages: list[Package], problems: list[Problem],
                    origins: Mapping[str, str] | None = None) -> list[Package]:
    """Two rpms that name one PyPI project (click, Click) become one package; when their versions
    differ the higher is pinned, with a problem and the package's ``rpm_versions`` saying which
    rpm (spec file:line) supplies which version."""
    origins = origins or {}
    by_name: dict[NormalizedName, list[Package]] = {}
    for pkg in packages:
        by_name.setdefault(pkg.name, []).append(pkg)
    out: list[Package] = []
    for name, group in by_name.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        group.sort(key=lambda p: p.rpm)
        versions = {p.version_written for p in group}
        best = max(group, key=lambda p: (p.version is not None, p.version or Version("0")))
        supplies: tuple[tuple[str, str], ...] = ()
        if len(versions) > 1:
            supplies = tuple((p.rpm, p.version_written) for p in group)
            problems.append(Problem(
                kind="version-mismatch",
                message=" and ".join(
                    f"{p.rpm} {p.version_written}" + (f" ({origins[p.rpm]})" if p.rpm in origins else "")
                    for p in group) + f" name one project {name}: pinned {best.version_written} "
                    f"(from {best.rpm})",
                where=origins.get(best.rpm, "").split(",")[0] or name))
        out.append(Package(
            rpm="+".join(p.rpm for p in group), name=name, display_name=best.display_name,
            version_written=best.version_written, version=best.version, build=best.build,
            source_url=best.source_url,
            patches=tuple(dict.fromkeys(x for p in group for x in p.patches)),
            reasons=tuple(dict.fromkeys(x for p in group for x in p.reasons)),
            requires=tuple(sorted({x for p in group for x in p.requires} - {name})),
            system_libs=tuple(sorted({x for p in group for x in p.system_libs})),
            arches=best.arches, rpm_versions=supplies,
        ))
    return out


# -- several arches into one Release ---------------------------------------------------


def read_release(
    trees: Mapping[str, Tree],
    release: str,
    *,
    source: str,
    python_major: int | None = None,
    version: str | None = None,
    progress: Progress = NO_PROGRESS,
    rank: Sequence[str] = (),
) -> tuple[Release, int]:
    """The Release of *release* over the arches of *trees*, and the default Python major;
    *rank* orders the arches, the production arch first (see :func:`combine`)."""
    releases, default = read_stacks(trees, release, source=source, majors=(python_major,), version=version,
                                    progress=progress, rank=rank)
    return releases[0], default


def read_stacks(
    trees: Mapping[str, Tree],
    release: str,
    *,
    source: str,
    majors: Sequence[int | None] = (None,),
    version: str | None = None,
    progress: Progress = NO_PROGRESS,
    rank: Sequence[str] = (),
    with_other: bool = False,
) -> tuple[list[Release], int]:
    """:func:`read_release` of each of *majors* (None: the default stack) from one walk, in the
    order of *majors*, and the default Python major. Each release's ``other_python`` is the
    interpreter of the release's other stack when it ships packages for it; *with_other* adds
    that stack's release after the first one's."""
    metapackage = optional_version(release, version)
    stacks: list[tuple[Walker, Stack]] = []
    for arch_name in sorted(trees):
        arch = Arch.parse(arch_name)
        progress.start(f"reading {release} {arch_name}", None)
        walker = Walker(trees[arch_name], release, arch, progress)
        try:
            stacks.append((walker, walk(walker)))
        finally:
            progress.done()
    defaults = {default_major(s) for _, s in stacks}
    default = max(defaults)
    shipped = {m: Version(s.python[m]) for _, s in reversed(stacks) for m in (2, 3)
               if m in s.python and any(m in i for i in s.interpreters.values())}
    out: list[Release] = []
    majors = list(majors)
    if with_other:
        first = default if majors[0] is None else majors[0]
        other_major = 2 if first == 3 else 3
        if other_major in shipped:
            majors.append(other_major)
    for wanted in majors:
        major = default if wanted is None else wanted
        per_arch = [arch_stack(w, s, major) for w, s in stacks]
        other = shipped.get(2 if major == 3 else 3)
        rel = combine(release, metapackage, per_arch, source=source, rank=rank)
        out.append(dataclasses.replace(rel, other_python=other))
    return out, default


def combine(release: str, metapackage: Version | None, per_arch: Sequence[ArchStack], *,
            source: str, rank: Sequence[str] = ()) -> Release:
    """One Release over the arches of *per_arch*. *rank* orders the arches, the release's
    production arch first (:func:`stackmeta.manifest.pins.rank_arches`): where arches that one
    ``platform_machine`` marker cannot tell apart (el8 and el9, gcc11 and gcc12) ship one
    package at two versions, the best-ranked arch's version is pinned and the others are named
    in a problem. The record's arches are in *rank*'s order: the production arch first (the
    arch whose machine and Python later steps target by default)."""
    order = {arch: i for i, arch in enumerate(rank)}
    per_arch = sorted(per_arch, key=lambda a: (order.get(a.arch.name, len(order)), a.arch.name))
    arches = tuple(a.arch.name for a in per_arch)
    merged: dict[tuple[object, ...], Package] = {}
    for stack in per_arch:
        for pkg in stack.packages:
            key = (pkg.name, pkg.version_written, pkg.rpm, pkg.build, pkg.source_url, pkg.patches)
            old = merged.get(key)
            if old is None:
                merged[key] = pkg
                continue
            merged[key] = Package(
                rpm=old.rpm, name=old.name, display_name=old.display_name,
                version_written=old.version_written, version=old.version, build=old.build,
                source_url=old.source_url, patches=old.patches,
                reasons=tuple(dict.fromkeys([*old.reasons, *pkg.reasons])),
                requires=tuple(sorted(set(old.requires) | set(pkg.requires))),
                system_libs=tuple(sorted(set(old.system_libs) | set(pkg.system_libs))),
                arches=(*old.arches, *pkg.arches), rpm_versions=old.rpm_versions,
            )
    settled, conflicts = _one_pin_per_machine(list(merged.values()), per_arch, rank)
    packages = tuple(sorted(settled, key=lambda p: (p.name, p.arches)))
    unshipped: dict[tuple[str, str], UnshippedPin] = {}
    for stack in per_arch:
        for pin in stack.unshipped:
            unshipped.setdefault((pin.rpm, pin.version_written), pin)
    problems = _combine_problems(per_arch) + conflicts
    pythons = {a.arch.name: Version(a.python) for a in per_arch}
    python = pythons[arches[0]]
    return Release(
        release=release, metapackage_version=metapackage, arches=arches, python=python,
        pythons=pythons if len(set(pythons.values())) > 1 else {},
        source=source, stackmeta_version=__version__, packages=packages,
        unshipped=tuple(sorted(unshipped.values(), key=lambda u: (u.name, u.rpm))), problems=problems,
    )


def _one_pin_per_machine(
    packages: list[Package], per_arch: Sequence[ArchStack], rank: Sequence[str],
) -> tuple[list[Package], tuple[Problem, ...]]:
    """Per (package, platform_machine), the version of the best-ranked arch that ships it."""
    order = {arch: i for i, arch in enumerate(rank)}
    arch_names = sorted((a.arch.name for a in per_arch), key=lambda a: (order.get(a, len(order)), a))
    place = {arch: i for i, arch in enumerate(arch_names)}
    machine = {a.arch.name: a.arch.machine for a in per_arch}
    origins = {a.arch.name: a.origins for a in per_arch}
    groups: dict[tuple[str, str], list[Package]] = {}
    for pkg in packages:
        for m in dict.fromkeys(machine.get(a, a) for a in pkg.arches):
            groups.setdefault((pkg.name, m), []).append(pkg)
    dropped: dict[int, set[str]] = {}  # id(package) -> arches it loses
    problems: list[Problem] = []
    for (name, m), group in sorted(groups.items()):
        if len({p.version_written for p in group}) < 2:
            continue

        def first_arch(p: Package, m: str = m) -> str:
            return min((a for a in p.arches if machine.get(a, a) == m), key=lambda a: place.get(a, 1 << 20))

        winner = min(group, key=lambda p: place.get(first_arch(p), 1 << 20))
        best = first_arch(winner)
        losers = [p for p in group if p is not winner and p.version_written != winner.version_written]
        for p in losers:
            dropped.setdefault(id(p), set()).update(a for a in p.arches if machine.get(a, a) == m)
        others = "; ".join(
            f"{p.version_written} on {', '.join(a for a in p.arches if machine.get(a, a) == m)}"
            for p in losers)
        where = origins.get(best, {}).get(winner.rpm.split("+")[0], "").split(",")[0] or winner.rpm
        problems.append(Problem(
            kind="arch-conflict",
            message=f"{name}: {winner.version_written} on {best} and {others}, which the marker "
                    f'platform_machine == "{m}" cannot tell apart: pinned {winner.version_written}, the '
                    f"version of {best} (the release's production arch for {m}: the arch tagged for "
                    "most releases of its cycle); export --arch ARCH alone for another arch's lock",
            where=where))
    out = []
    for pkg in packages:
        lost = dropped.get(id(pkg))
        if not lost:
            out.append(pkg)
            continue
        kept = tuple(a for a in pkg.arches if a not in lost)
        if kept:
            out.append(dataclasses.replace(pkg, arches=kept))
    return out, tuple(problems)


def _combine_problems(per_arch: Sequence[ArchStack]) -> tuple[Problem, ...]:
    seen: dict[tuple[str, str, str], list[str]] = {}
    for stack in per_arch:
        for p in stack.problems:
            arches = seen.setdefault((p.kind, p.message, p.where), [])
            if stack.arch.name not in arches:
                arches.append(stack.arch.name)
    out = []
    for (kind, message, where), arches in seen.items():
        if len(per_arch) > 1 and len(arches) < len(per_arch):
            message = f"{message} (on {', '.join(arches)})"
        out.append(Problem(kind=kind, message=message, where=where))
    return tuple(out)
