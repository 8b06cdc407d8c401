"""The spec preamble language of cmsdist: assembling, expanding and evaluating a preamble.

Pure: text in, facts out. The caller (:mod:`stackmeta.manifest.walk`) gives the files through a
``read(path) -> str | None`` function. What this module understands:

- ``### RPM <group> <name> <version>`` headers;
- ``## INCLUDE f`` (replaced in place by ``f.file``, each file once) and ``## IMPORT f``
  (appended at the very end; its own directives are not followed);
- the preamble: every line before the first section line (``%prep``, ``%build``, ...),
  with multi-line ``%define``s (backslash continuations) and heredocs skipped;
- ``%define`` (expands when used), ``%global`` (expands at once), ``%undefine``, a define
  inside a comment line still defines (as rpm does);
- ``%{x}``, ``%x``, ``%{?x}``, ``%{?x:text}``, ``%{!?x:text}``, ``%{expand:...}``,
  parametric macros (``%define f() ... %1``);
- ``%(...)``: a small shell (:mod:`stackmeta.manifest.shell`: echo, cut, sed, tr, grep, case,
  uname, ``;``, ``|``, ``&&``, ``||``); anything else is reported as an unevaluated construct
  and left as written;
- ``%if`` rpm expressions (:mod:`stackmeta.manifest.expressions`), ``%ifarch``/``%ifnarch``,
  ``%ifos``/``%ifnos``, ``%elif``, ``%else``, ``%endif``.

A construct that cannot be evaluated is never guessed: it stays as written (so tokens that
hold a ``%`` are skipped) and an :class:`Issue` names its file:line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from stackmeta.manifest.cmsdist import tree_path
from stackmeta.manifest.expressions import evaluate_expression, truth
from stackmeta.manifest.shell import Context, Unevaluated, matching, run_shell

# -- lines ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Line:
    """One logical line of an assembled spec, with where it was written."""

    text: str
    path: str
    lineno: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Issue:
    """A construct the reader could not evaluate, or a file it could not find."""

    kind: str  # "unevaluated", "missing-include", "outside-tree", "syntax"
    message: str
    where: str


SECTION = re.compile(
    r"^%(prep|build|install|files|post|postun|pre|preun|pretrans|posttrans|description|package"
    r"|clean|check|changelog|trigger\w*|filetrigger\w*|transfiletrigger\w*|verifyscript"
    r"|generate_buildrequires|conf)\b"
)
_DEFINE_START = re.compile(r"^\s*%(define|global)\s")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_DIRECTIVE = re.compile(r"^##\s*(INCLUDE|IMPORT)\s+(\S+)")


def split_lines(text: str, path: str) -> list[Line]:
    """The file's lines, numbered from 1 (a multi-line define joined into its first line)."""
    raw = text.splitlines()
    out: list[Line] = []
    i = 0
    while i < len(raw):
        line = raw[i]
        start = i
        if _DEFINE_START.match(line):
            parts = [line]
            while parts[-1].endswith("\\") and i + 1 < len(raw):
                i += 1
                parts.append(raw[i])
            if len(parts) > 1:
                line = parts[0].rstrip("\\").rstrip() + " <multi-line value>"
        out.append(Line(text=line, path=path, lineno=start + 1))
        i += 1
    return out


@lru_cache(maxsize=256)  # bounded: a batch over thousands of tags stays flat in memory
def cached_lines(text: str, path: str) -> tuple[Line, ...]:
    """:func:`split_lines`, once per distinct (text, path)."""
    return tuple(split_lines(text, path))


def is_section(text: str) -> bool:
    return bool(SECTION.match(text.strip()))


def preamble(lines: list[Line]) -> list[Line]:
    """The lines before the first section line, heredocs skipped."""
    out: list[Line] = []
    heredoc: str | None = None
    for line in lines:
        if heredoc is not None:
            if line.text.strip() == heredoc:
                heredoc = None
            continue
        if is_section(line.text):
            break
        out.append(line)
        if not line.text.lstrip().startswith("#"):
            match = _HEREDOC.search(line.text)
            if match:
                heredoc = match.group(2)
    return out


# -- assembly -----------------------------------------------------------------------------


Reader = Callable[[str], "str | None"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Assembled:
    """A spec with its INCLUDEs and IMPORTs in place."""

    lines: tuple[Line, ...]
    imports: tuple[str, ...]  # the IMPORTed names (build-with-pip, ...)
    issues: tuple[Issue, ...]


def assemble(path: str, text: str, read: Reader, *, package: str) -> Assembled:
    """Replace ``## INCLUDE f`` in place by ``f.file`` and append ``## IMPORT f`` files.

    Files are looked for in ``<package>/`` first, then at the top of the tree; each file is
    included at most once; the directives of an IMPORTed file are not followed.
    """
    seen: set[str] = {path}
    issues: list[Issue] = []
    imports: list[str] = []
    appended: list[Line] = []

    def find(name: str) -> tuple[str, str] | None:
        for candidate in (f"{package}/{name}.file", f"{name}.file"):
            content = read(candidate)
            if content is not None:
                return candidate, content
        return None

    def expand_file(file_path: str, content: str) -> list[Line]:
        out: list[Line] = []
        for line in cached_lines(content, file_path):
            match = _DIRECTIVE.match(line.text.strip())
            if not match:
                out.append(line)
                continue
            kind, name = match.groups()
            if tree_path(f"{package}/{name}.file") is None or tree_path(f"{name}.file") is None:
                issues.append(Issue(kind="outside-tree",
                                    message=f"{kind} {name}: names a file outside the cmsdist tree: not read",
                                    where=line.where))
                continue
            found = find(name)
            if found is None:
                issues.append(Issue(kind="missing-include",
                                    message=f"{kind} {name}: no {name}.file in the tree",
                                    where=line.where))
                continue
            if found[0] in seen:
                continue
            seen.add(found[0])
            if kind == "INCLUDE":
                out.extend(expand_file(*found))
            else:
                imports.append(name)
                appended.extend(cached_lines(found[1], found[0]))
        return out

    lines = expand_file(path, text)
    return Assembled(lines=tuple(lines + appended), imports=tuple(imports), issues=tuple(issues))


# -- macros -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Macro:
    body: str
    params: str | None = None  # "" for f(), None for a plain macro


# Bounds of one expansion, far above what real specs need (measured over the four excerpts
# and 450 tags of the cmsdist history: at most 15 macro expansions and depth 5 for one line,
# 779 characters made, 135 expansions for one preamble): past them, the line is reported as
# not evaluated (a macro that expands itself, %define a %{a}%{a}, or a chain of doubling ones
# would run for ever), and one bad spec costs well under a second.
MAX_DEPTH = 40  # macros expanding macros
MAX_STEPS = 2_000  # macro expansions for one line
MAX_SIZE = 1 << 20  # characters made expanding one line (counted at each level)
MAX_TOTAL = 50_000  # macro expansions for one preamble


class _TooLarge(Exception):
    """An expansion past one of the bounds; caught where the expansion began."""


@dataclass(slots=True)
class Expander:
    """rpm macro expansion over a table of macros; issues are collected, not raised."""

    macros: dict[str, Macro]
    context: Context
    issues: list[Issue] = field(default_factory=list)
    where: str = ""
    _depth: int = 0
    _steps: int = 0
    _made: int = 0
    _total: int = 0

    def defined(self, name: str) -> bool:
        return name in self.macros

    def define(self, name: str, body: str, *, params: str | None = None, now: bool = False) -> None:
        body = body.strip()
        if now:
            body = self.expand(body)
        self.macros[name] = Macro(body, params)

    def issue(self, message: str, kind: str = "unevaluated") -> None:
        issue = Issue(kind=kind, message=message, where=self.where)
        if issue not in self.issues:
            self.issues.append(issue)

    # The expansion itself.
    def expand(self, text: str) -> str:
        if "%" not in text:
            return text
        if self._depth > MAX_DEPTH:
            self.issue(f"macro recursion too deep in {text[:60]!r}")
            return text
        top = self._depth == 0
        if top:
            self._steps = self._made = 0
        self._steps += 1
        self._total += 1
        self._depth += 1
        try:
            if self._total > MAX_TOTAL:
                raise _TooLarge(f"more than {MAX_TOTAL} macro expansions in this spec")
            if self._steps > MAX_STEPS:
                raise _TooLarge(f"more than {MAX_STEPS} macro expansions for one line")
            result = self._expand(text)
            self._made += len(result)  # counted at each level: a bound on the work, not the size
            if self._made > MAX_SIZE:
                raise _TooLarge(f"it makes more than {MAX_SIZE} characters")
            return result
        except _TooLarge as exc:
            if not top:
                raise
            self.issue(f"the expansion of {text[:60]!r} is not evaluated: {exc} (a macro that expands "
                       "itself?)")
            return text
        finally:
            self._depth -= 1

    def _expand(self, text: str) -> str:
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c != "%" or i + 1 >= n:
                out.append(c)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt == "%":
                out.append("%")
                i += 2
            elif nxt in _CLOSING:  # %{...}, %(...), %[...]
                end = matching(text, i + 1, nxt, _CLOSING[nxt])
                if end < 0:
                    out.append(text[i:])
                    break
                inner, whole = text[i + 2:end], text[i:end + 1]
                if nxt == "{":
                    out.append(self._braced(inner, whole))
                elif nxt == "(":
                    out.append(self._shell(inner, whole))
                else:
                    out.append(self._expression(inner, whole))
                i = end + 1
            elif (nxt == "!" and text[i + 2:i + 3] == "?") or nxt == "?":
                # %?name and %!?name
                neg = nxt == "!"
                j = i + (3 if neg else 2)
                m = _NAME.match(text, j)
                if not m:
                    out.append(c)
                    i += 1
                    continue
                name = m.group(0)
                has = self.defined(name)
                if has and not neg:
                    out.append(self._value(name, ""))
                i = m.end()
            else:
                m = _NAME.match(text, i + 1) or _ARG.match(text, i + 1)
                if not m:
                    out.append(c)
                    i += 1
                    continue
                name = m.group(0)
                rest_start = m.end()
                if name in ("define", "global"):
                    i = _line_end(text, rest_start)
                    self._define_text(text[rest_start:i], now=name == "global")
                    continue
                if name == "undefine":
                    i = _line_end(text, rest_start)
                    self.macros.pop(text[rest_start:i].strip(), None)
                    continue
                macro = self.macros.get(name)
                if macro is None:
                    out.append(text[i:rest_start])
                    i = rest_start
                    continue
                if macro.params is not None:  # the rest of the line is the arguments
                    i = _line_end(text, rest_start)
                    out.append(self._call(name, self.expand(text[rest_start:i]).split()))
                    continue
                out.append(self._value(name, ""))
                i = rest_start
        return "".join(out)

    def _expression(self, inner: str, whole: str) -> str:
        value = evaluate_expression(self.expand(inner))
        if value is None:
            self.issue(f"cannot evaluate the expression {whole!r}")
            return whole
        return str(int(value)) if isinstance(value, bool) else str(value)

    def _value(self, name: str, args: str) -> str:
        macro = self.macros[name]
        if macro.params is not None:
            return self._call(name, self.expand(args).split())
        return self.expand(macro.body)

    def _call(self, name: str, args: list[str]) -> str:
        macro = self.macros[name]
        saved = {k: self.macros.get(k) for k in ("0", "*", "#", *map(str, range(1, 10)))}
        self.macros["0"] = Macro(name)
        self.macros["*"] = Macro(" ".join(args))
        self.macros["#"] = Macro(str(len(args)))
        for k in range(1, 10):
            if k <= len(args):
                self.macros[str(k)] = Macro(args[k - 1])
            else:
                self.macros.pop(str(k), None)
        try:
            return self.expand(macro.body)
        finally:
            for key, value in saved.items():
                if value is None:
                    self.macros.pop(key, None)
                else:
                    self.macros[key] = value

    def _braced(self, inner: str, whole: str) -> str:
        if inner.startswith("!?") or inner.startswith("?"):
            neg = inner.startswith("!")
            body = inner[2:] if neg else inner[1:]
            name, colon, alt = body.partition(":")
            name = name.strip()
            has = self.defined(name)
            if colon:
                return self.expand(alt) if has != neg else ""
            if neg:
                return ""
            return self._value(name, "") if has else ""
        if inner.startswith("expand:"):
            return self.expand(self.expand(inner[len("expand:"):]))
        head, colon, arg = inner.partition(":")
        if colon and head in _BUILTINS:
            return _BUILTINS[head](self.expand(arg))
        if colon and head in ("echo", "warn", "error", "verbose", "trace", "dump"):
            return ""
        if colon and head in ("lua", "load", "getenv", "uncompress", "url2path", "shescape"):
            self.issue(f"the macro {whole!r} is not evaluated")
            return whole
        name, _, args = inner.partition(" ")
        if name in ("define", "global"):
            self._define_text(args, now=name == "global")
            return ""
        if name not in self.macros:
            return whole
        return self._value(name, args)

    def _define_text(self, text: str, *, now: bool) -> None:
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?\s*(.*)$", text, re.S)
        if not m:
            self.issue(f"cannot read the define {text.strip()[:60]!r}", kind="syntax")
            return
        name, params, body = m.groups()
        self.define(name, body, params=None if params is None else params[1:-1], now=now)

    def _shell(self, inner: str, whole: str) -> str:
        command = self.expand(inner)
        try:
            return run_shell(command, self.context).rstrip("\n")
        except Unevaluated as exc:
            shown = whole if len(whole) <= 200 else f"{whole[:150]}...{whole[-40:]}"
            self.issue(f"the shell command {shown!r} is not evaluated ({exc})")
            return whole


_CLOSING = {"{": "}", "(": ")", "[": "]"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARG = re.compile(r"[0-9]+|\*|#")


def _basename(s: str) -> str:
    return s.rsplit("/", 1)[-1]


def _dirname(s: str) -> str:
    return s.rsplit("/", 1)[0] if "/" in s else s


def _suffix(s: str) -> str:
    return s.rsplit(".", 1)[1] if "." in s.rsplit("/", 1)[-1] else ""


_BUILTINS: dict[str, Callable[[str], str]] = {
    "basename": _basename,
    "dirname": _dirname,
    "suffix": _suffix,
    "lower": str.lower,
    "upper": str.upper,
    "quote": lambda s: s,
}


def _line_end(text: str, start: int) -> int:
    """Index of the end of the line *start* is on (of the text when it is the last line)."""
    end = text.find("\n", start)
    return len(text) if end < 0 else end


# -- evaluating a preamble ----------------------------------------------------------------


_TAG = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\s*(\([^)]*\))?\s*:\s*(.*)$")
_HEADER = re.compile(r"^###\s+RPM\s+(\S+)\s+(\S+)\s+(\S+)")
_INITENV = re.compile(r"^##\s*INITENV\s+\+PATH\s+(\S+)")
_CONDITIONAL = re.compile(r"^%(if|ifarch|ifnarch|ifos|ifnos|elif|elifarch|elifos|else|endif)\b\s*(.*)$")
_COMMENT_DEFINE = re.compile(r"(?<!%)%(define|global)\s")


@dataclass(frozen=True, kw_only=True, slots=True)
class Tag:
    """A ``Name: value`` line of the preamble, expanded."""

    name: str  # Requires, BuildRequires, Source0, Patch1, ...
    value: str
    where: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Evaluated:
    """What a preamble says once evaluated for one arch."""

    tags: tuple[Tag, ...]
    macros: Mapping[str, Macro]
    defines: tuple[tuple[str, str], ...]  # (name, where) of every define/global line taken
    initenv: tuple[str, ...]  # PYTHONPATH, PYTHON3PATH, ... of ## INITENV +PATH lines
    issues: tuple[Issue, ...]

    def requires(self, tag: str = "Requires") -> list[tuple[str, str]]:
        """(name, where) of the tokens of *tag* lines (rules §4: skip versions and macros)."""
        out: list[tuple[str, str]] = []
        for t in self.tags:
            if t.name.lower() != tag.lower():
                continue
            for token in t.value.split():
                if token[0] in "<>=" or token[0].isdigit() or "%" in token:
                    continue
                out.append((token, t.where))
        return out

    def value(self, name: str, expander_context: Context, seen: set[str] | None = None) -> str | None:
        """The expanded value of macro *name*, or None if undefined (*seen*: as :func:`evaluate`)."""
        if name not in self.macros:
            return None
        exp = Expander(macros=table(self.macros, seen), context=expander_context)
        return exp.expand(f"%{{{name}}}")


class Watched(dict[str, Macro]):
    """A table of macros that notes in *seen* every name looked up in it."""

    __slots__ = ("seen",)

    def __init__(self, macros: Mapping[str, Macro], seen: set[str]) -> None:
        super().__init__(macros)
        self.seen = seen

    def get(self, name: str, default: Macro | None = None) -> Macro | None:  # type: ignore[override]
        self.seen.add(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        self.seen.add(name)  # type: ignore[arg-type]
        return super().__contains__(name)

    def __getitem__(self, name: str) -> Macro:
        self.seen.add(name)
        return super().__getitem__(name)


def table(macros: Mapping[str, Macro], seen: set[str] | None = None) -> dict[str, Macro]:
    """A copy of *macros* to expand with; with *seen*, one that notes the names looked up."""
    return dict(macros) if seen is None else Watched(macros, seen)


def evaluate(lines: list[Line], macros: Mapping[str, Macro], context: Context,
             seen: set[str] | None = None) -> Evaluated:
    """Evaluate preamble *lines* in order, starting from *macros* (not changed). *seen* gets
    every macro name the evaluation looked up: what it read of *macros* (with the machine of
    *context*, the only inputs besides *lines*)."""
    exp = Expander(macros=table(macros, seen), context=context)
    tags: list[Tag] = []
    defines: list[tuple[str, str]] = []
    initenv: list[str] = []
    # Each level: (taking now, some branch already taken, parent taking)
    stack: list[tuple[bool, bool, bool]] = []

    def active() -> bool:
        return all(level[0] for level in stack)

    def condition(kind: str, arg: str) -> bool:
        if kind in ("if", "elif"):
            value = evaluate_expression(exp.expand(arg))
            if value is None:
                exp.issue(f"cannot evaluate the condition %{kind} {arg.strip()}")
                return False
            return truth(value)
        words = exp.expand(arg).split()
        if kind in ("ifarch", "ifnarch", "elifarch"):
            hit = context.machine in words
            return not hit if kind == "ifnarch" else hit
        hit = context.os in words
        return not hit if kind == "ifnos" else hit

    def take_line(text: str) -> None:
        stripped = text.strip()
        if not stripped:
            return
        if stripped.startswith("#"):
            m = _INITENV.match(stripped)
            if m:
                initenv.append(m.group(1))
            cm = _COMMENT_DEFINE.search(stripped)
            if cm:
                rest = stripped[cm.end():].split(None, 1)
                if rest:
                    defines.append((re.split(r"[\s(]", rest[0], maxsplit=1)[0], exp.where))
                exp.expand(stripped[cm.start():])
            return
        m = re.match(r"^%(define|global)\s+(.*)$", stripped, re.S)
        if m:
            body = m.group(2)
            name = re.split(r"[\s(]", body, maxsplit=1)[0]
            defines.append((name, exp.where))
            exp._define_text(body, now=m.group(1) == "global")
            return
        m = re.match(r"^%undefine\s+(\S+)", stripped)
        if m:
            exp.macros.pop(m.group(1), None)
            return
        tm = _TAG.match(stripped)
        if tm and not stripped.startswith("%"):
            before = len(exp.issues)
            value = exp.expand(tm.group(3)).strip()
            if len(exp.issues) == before:
                tags.append(Tag(name=tm.group(1), value=value, where=exp.where))
            # else: a construct in the line could not be evaluated; the line is reported, not used
            return
        if stripped.startswith("%"):
            before = len(exp.issues)
            expanded = exp.expand(stripped)
            if len(exp.issues) > before:
                return
            if expanded.strip() and expanded.strip() != stripped:
                for sub in expanded.split("\n"):
                    if sub.strip() and not sub.strip().startswith("%"):
                        take_line(sub)
            return

    for line in lines:
        exp.where = line.where
        stripped = line.text.strip()
        cm = _CONDITIONAL.match(stripped)
        if cm:
            kind, arg = cm.groups()
            if kind in ("if", "ifarch", "ifnarch", "ifos", "ifnos"):
                parent = active()
                value = condition(kind, arg) if parent else False
                stack.append((value, value, parent))
            elif kind in ("elif", "elifarch", "elifos"):
                if not stack:
                    exp.issue(f"%{kind} without %if", kind="syntax")
                    continue
                _, taken, parent = stack[-1]
                value = (not taken) and parent and condition(kind, arg)
                stack[-1] = (value, taken or value, parent)
            elif kind == "else":
                if not stack:
                    exp.issue("%else without %if", kind="syntax")
                    continue
                _, taken, parent = stack[-1]
                stack[-1] = (not taken, True, parent)
            else:
                if not stack:
                    exp.issue("%endif without %if", kind="syntax")
                    continue
                stack.pop()
            continue
        if not active():
            continue
        take_line(line.text)
    if stack:
        exp.where = lines[-1].where if lines else ""
        exp.issue(f"{len(stack)} %if without %endif", kind="syntax")
    return Evaluated(tags=tuple(tags), macros=dict(exp.macros), defines=tuple(defines),
                     initenv=tuple(initenv), issues=tuple(exp.issues))


def header(lines: list[Line] | tuple[Line, ...]) -> tuple[str, str, str, Line] | None:
    """(group, name, version) of the first ``### RPM`` line, and that line."""
    for line in lines:
        m = _HEADER.match(line.text.strip())
        if m:
            return m.group(1), m.group(2), m.group(3), line
    return None


_BODY_FACTS = re.compile(r"^##\s*BODY-FACTS\s+(.*)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class BodyFacts:
    """What a spec's build steps do (rules §1), from ``## BODY-FACTS`` or the body text."""

    copies: bool
    site_packages: frozenset[int]
    uses: frozenset[int]


def _majors(text: str) -> frozenset[int]:
    return frozenset(int(x) for x in re.findall(r"[23]", text))


_USES2 = re.compile(r"(?:^|[\s;&|(`]|/bin/)(python|pip|python2|pip2)(?=$|[\s;&|)`])")
_USES3 = re.compile(r"(?:^|[\s;&|(`]|/bin/)(python3|pip3)(?=$|[\s;&|)`])")
_SITE2 = re.compile(r"\$\{?PYTHON_LIB_SITE_PACKAGES\b")
_SITE3 = re.compile(r"\$\{?PYTHON3_LIB_SITE_PACKAGES\b")


def body_facts(spec_text: str, body: list[Line]) -> BodyFacts:
    """The BODY-FACTS line of a reduced spec, or the same facts read from a full body."""
    for raw in reversed(spec_text.splitlines()):
        m = _BODY_FACTS.match(raw.strip())
        if m:
            fields = dict(part.split("=", 1) for part in m.group(1).split() if "=" in part)
            return BodyFacts(copies=fields.get("copies") == "yes",
                             site_packages=_majors(fields.get("site-packages", "")),
                             uses=_majors(fields.get("uses", "")))
    # One search over the lines joined: no pattern spans a line, and a newline stands for the
    # start and the end of a line in _USES2/_USES3 (it is whitespace).
    text = "\n".join(line.text for line in body if not line.text.lstrip().startswith("## INITENV"))
    site = {major for major, pattern in ((2, _SITE2), (3, _SITE3)) if pattern.search(text)}
    uses = {major for major, pattern in ((2, _USES2), (3, _USES3)) if pattern.search(text)}
    return BodyFacts(copies="builddirectpkgreqs" in text, site_packages=frozenset(site), uses=frozenset(uses))
