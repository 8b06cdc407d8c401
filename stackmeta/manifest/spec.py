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
- ``%(...)``: a small shell (echo, cut, sed, tr, grep, case, uname, ``;``, ``|``, ``&&``,
  ``||``); anything else is reported as an unevaluated construct and left as written;
- ``%if`` rpm expressions, ``%ifarch``/``%ifnarch``, ``%ifos``/``%ifnos``, ``%elif``,
  ``%else``, ``%endif``.

A construct that cannot be evaluated is never guessed: it stays as written (so tokens that
hold a ``%`` are skipped) and an :class:`Issue` names its file:line.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

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

    kind: str  # "unevaluated", "missing-include", "syntax"
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


@lru_cache(maxsize=2048)  # bounded: a batch over thousands of tags stays flat in memory
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


class Unevaluated(Exception):
    """Raised inside the shell subset; turned into an Issue by the expander."""


@dataclass(kw_only=True, slots=True)
class Context:
    """The machine a spec is evaluated for."""

    machine: str  # x86_64, aarch64, ppc64le
    os: str = "linux"


@dataclass(slots=True)
class Expander:
    """rpm macro expansion over a table of macros; issues are collected, not raised."""

    macros: dict[str, Macro]
    context: Context
    issues: list[Issue] = field(default_factory=list)
    where: str = ""
    _depth: int = 0

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
        if self._depth > 40:
            self.issue(f"macro recursion too deep in {text[:60]!r}")
            return text
        self._depth += 1
        try:
            return self._expand(text)
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
                end = _matching(text, i + 1, nxt, _CLOSING[nxt])
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
            self.issue(f"the shell command {whole!r} is not evaluated ({exc})")
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


def _matching(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one at *start*, or -1."""
    depth = 0
    quote: str | None = None
    for i in range(start, len(text)):
        c = text[i]
        if opening == "(" and quote is None and c in "'\"":
            quote = c
            continue
        if quote is not None:
            if c == quote:
                quote = None
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i
    return -1


# -- the shell subset ---------------------------------------------------------------------


def run_shell(command: str, context: Context) -> str:
    """Run *command* in the small shell subset; raise Unevaluated for anything else."""
    return _Shell(context).run(command, "")


class _Shell:
    def __init__(self, context: Context) -> None:
        self.context = context

    def run(self, command: str, stdin: str) -> str:
        command = command.strip()
        if command.startswith("case ") or command.startswith("case\t"):
            return self._case(command)
        out: list[str] = []
        status = 0
        for op, part in _split_list(command):
            if (op == "&&" and status != 0) or (op == "||" and status == 0):
                continue
            text, status = self._pipeline(part, stdin)
            out.append(text)
        return "".join(out)

    def _case(self, command: str) -> str:
        m = re.match(r"case\s+(.*?)\s+in\s+(.*)\besac\s*;?\s*$", command, re.S)
        if not m:
            raise Unevaluated("unreadable case statement")
        word = self._word(m.group(1))
        for arm in re.split(r";;", m.group(2)):
            arm = arm.strip()
            if not arm:
                continue
            am = re.match(r"\(?\s*([^)]*)\)\s*(.*)$", arm, re.S)
            if not am:
                raise Unevaluated("unreadable case arm")
            patterns = [self._word(p.strip()) for p in am.group(1).split("|")]
            if any(fnmatch.fnmatchcase(word, p) for p in patterns):
                return self.run(am.group(2), "") if am.group(2).strip() else ""
        return ""

    def _word(self, text: str) -> str:
        words = self._words(text)
        return " ".join(words)

    def _words(self, text: str) -> list[str]:
        text = self._substitute(text)
        if _has_variable(text):
            raise Unevaluated(f"shell variables in {text.strip()!r}")
        try:
            return shlex.split(text, posix=True)
        except ValueError as exc:
            raise Unevaluated(str(exc)) from None

    def _substitute(self, text: str) -> str:
        while True:
            start = text.find("$(")
            if start < 0:
                return text
            end = _matching(text, start + 1, "(", ")")
            if end < 0:
                raise Unevaluated("unbalanced $(")
            value = self.run(text[start + 2:end], "").rstrip("\n")
            text = text[:start] + value + text[end + 1:]

    def _pipeline(self, text: str, stdin: str) -> tuple[str, int]:
        data = stdin
        status = 0
        for part in _split_top(text, "|"):
            data, status = self._simple(part, data)
        return data, status

    def _simple(self, text: str, stdin: str) -> tuple[str, int]:
        words = self._words(text)
        discard = False
        kept: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            m = re.match(r"^(\d?)>(.*)$", w)
            if not m:
                kept.append(w)
                i += 1
                continue
            target = m.group(2)
            if not target and i + 1 < len(words):
                target = words[i + 1]
                i += 1
            if target not in ("/dev/null", "&1", "&2"):
                raise Unevaluated(f"the redirection {w!r}")
            if m.group(1) in ("", "1") and target == "/dev/null":
                discard = True
            i += 1
        words = kept
        if not words:
            return "", 0
        out, status = self._command(words, stdin)
        return ("" if discard else out), status

    def _command(self, words: list[str], stdin: str) -> tuple[str, int]:
        cmd, args = words[0], words[1:]
        if cmd == "echo":
            newline = True
            while args and args[0] in ("-n", "-e", "-E"):
                if args[0] == "-n":
                    newline = False
                args = args[1:]
            return " ".join(args) + ("\n" if newline else ""), 0
        if cmd == "cut":
            return _cut(args, stdin), 0
        if cmd == "sed":
            return _sed(args, stdin), 0
        if cmd == "tr":
            return _tr(args, stdin), 0
        if cmd == "grep":
            return _grep(args, stdin)
        if cmd == "uname":
            flag = args[0] if args else "-s"
            if flag == "-s":
                return "Linux\n", 0
            if flag in ("-m", "-p", "-i"):
                return self.context.machine + "\n", 0
            raise Unevaluated(f"uname {flag}")
        if cmd == "true":
            return "", 0
        if cmd == "false":
            return "", 1
        raise Unevaluated(f"the command {cmd!r} is outside the supported shell subset")


def _has_variable(text: str) -> bool:
    """Whether *text* expands a shell variable (``$x``, ``${x}``) outside single quotes."""
    quote: str | None = None
    for i, c in enumerate(text):
        if quote == "'":
            if c == "'":
                quote = None
            continue
        if c == "'" and quote is None:
            quote = c
            continue
        if c == '"':
            quote = None if quote == '"' else '"'
            continue
        if c == "$" and i + 1 < len(text) and (text[i + 1].isalnum() or text[i + 1] in "_{@*#?!"):
            return True
    return False


def _split_list(command: str) -> Iterator[tuple[str, str]]:
    """Split on ``;``, ``&&``, ``||`` at the top level: (operator before, part)."""
    parts: list[tuple[str, str]] = []
    op = ";"
    buf: list[str] = []
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(command):
        c = command[i]
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if depth == 0 and (command.startswith("&&", i) or command.startswith("||", i)):
            parts.append((op, "".join(buf)))
            op = command[i:i + 2]
            buf = []
            i += 2
            continue
        if depth == 0 and c == ";":
            parts.append((op, "".join(buf)))
            op = ";"
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    parts.append((op, "".join(buf)))
    for op, part in parts:
        if part.strip():
            stripped = part.strip()
            if re.match(r"^(if|for|while|until|do|done|then|fi|function)\b", stripped):
                raise Unevaluated(f"'{stripped.split()[0]}' is outside the supported shell subset")
            yield op, part


def _split_top(text: str, sep: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    depth = 0
    for c in text:
        if quote:
            if c == quote:
                quote = None
            buf.append(c)
            continue
        if c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == sep and depth == 0:
            out.append("".join(buf))
            buf = []
            continue
        buf.append(c)
    out.append("".join(buf))
    return out


def _opt(args: list[str], letter: str) -> tuple[str | None, list[str]]:
    """Take ``-X value`` or ``-Xvalue`` out of *args*."""
    rest: list[str] = []
    value: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == f"-{letter}" and i + 1 < len(args):
            value = args[i + 1]
            i += 2
            continue
        if a.startswith(f"-{letter}") and len(a) > 2:
            value = a[2:]
            i += 1
            continue
        rest.append(a)
        i += 1
    return value, rest


def _ranges(spec: str) -> Callable[[int], bool]:
    pieces: list[tuple[int, int]] = []
    for piece in spec.split(","):
        if "-" in piece:
            lo, _, hi = piece.partition("-")
            pieces.append((int(lo) if lo else 1, int(hi) if hi else 10**9))
        else:
            pieces.append((int(piece), int(piece)))
    return lambda k: any(lo <= k <= hi for lo, hi in pieces)


def _lines(stdin: str) -> list[str]:
    return stdin.split("\n")[:-1] if stdin.endswith("\n") else stdin.split("\n") if stdin else []


def _cut(args: list[str], stdin: str) -> str:
    fields, args = _opt(args, "f")
    delim, args = _opt(args, "d")
    chars, args = _opt(args, "c")
    if args:
        raise Unevaluated(f"cut {' '.join(args)}")
    out: list[str] = []
    try:
        for line in _lines(stdin):
            if fields is not None:
                d = delim if delim is not None else "\t"
                want = _ranges(fields)
                parts = line.split(d)
                if len(parts) == 1:
                    out.append(line)
                else:
                    out.append(d.join(p for k, p in enumerate(parts, 1) if want(k)))
            elif chars is not None:
                want = _ranges(chars)
                out.append("".join(ch for k, ch in enumerate(line, 1) if want(k)))
            else:
                raise Unevaluated("cut without -f or -c")
    except ValueError:
        raise Unevaluated(f"cut list {fields or chars!r}") from None
    return "".join(x + "\n" for x in out)


def _bre_to_python(pattern: str, extended: bool) -> str:
    if extended:
        return pattern
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            d = pattern[i + 1]
            out.append(d if d in "(){}|+?" else "\\" + d)
            i += 2
            continue
        out.append("\\" + c if c in "(){}|+?" else c)
        i += 1
    return "".join(out)


def _sed(args: list[str], stdin: str) -> str:
    scripts: list[str] = []
    extended = False
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-e" and i + 1 < len(args):
            scripts.append(args[i + 1])
            i += 2
            continue
        if a.startswith("-e") and len(a) > 2:
            scripts.append(a[2:])
            i += 1
            continue
        if a in ("-E", "-r"):
            extended = True
        elif a.startswith("-"):
            raise Unevaluated(f"sed {a}")
        else:
            rest.append(a)
        i += 1
    if not scripts:
        if not rest:
            raise Unevaluated("sed without a script")
        scripts.append(rest.pop(0))
    if rest:
        raise Unevaluated("sed on files")
    commands: list[tuple[re.Pattern[str], str, int]] = []
    for script in scripts:
        for piece in _sed_pieces(script):
            if len(piece) < 2 or piece[0] != "s":
                raise Unevaluated(f"sed script {script!r}")
            delim = piece[1]
            parts = _split_unescaped(piece[2:], delim)
            if len(parts) != 3:
                raise Unevaluated(f"sed script {script!r}")
            pattern, repl, flags = parts
            if set(flags) - {"g"}:
                raise Unevaluated(f"sed flags {flags!r}")
            try:
                regex = re.compile(_bre_to_python(pattern, extended))
            except re.error:
                raise Unevaluated(f"sed pattern {pattern!r}") from None
            py_repl = re.sub(r"\\(\d)", r"\\g<\1>", repl.replace("&", r"\g<0>").replace(r"\\g<0>", "&"))
            commands.append((regex, py_repl, 0 if "g" in flags else 1))
    out: list[str] = []
    for line in _lines(stdin):
        for regex, repl, count in commands:
            try:
                line = regex.sub(repl, line, count=count)
            except (re.error, IndexError):
                raise Unevaluated("sed replacement") from None
        out.append(line)
    return "".join(x + "\n" for x in out)


def _sed_pieces(script: str) -> list[str]:
    # s commands separated by ';' (outside their delimiters)
    pieces: list[str] = []
    i = 0
    while i < len(script):
        while i < len(script) and script[i] in " ;\n":
            i += 1
        if i >= len(script):
            break
        if script[i] != "s" or i + 1 >= len(script):
            raise Unevaluated(f"sed script {script!r}")
        delim = script[i + 1]
        j = i + 2
        count = 0
        while j < len(script) and count < 2:
            if script[j] == "\\":
                j += 2
                continue
            if script[j] == delim:
                count += 1
            j += 1
        while j < len(script) and script[j] not in ";\n":
            j += 1
        pieces.append(script[i:j])
        i = j
    return pieces


def _split_unescaped(text: str, delim: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            if text[i + 1] == delim:
                buf.append(delim)
            else:
                buf.append(text[i:i + 2])
            i += 2
            continue
        if c == delim:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    parts.append("".join(buf))
    return parts


def _tr_set(spec: str) -> list[str]:
    chars: list[str] = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "\\": "\\"}
    while i < len(spec):
        c = spec[i]
        if c == "\\" and i + 1 < len(spec):
            chars.append(escapes.get(spec[i + 1], spec[i + 1]))
            i += 2
            continue
        if i + 2 < len(spec) and spec[i + 1] == "-":
            lo, hi = ord(c), ord(spec[i + 2])
            if lo <= hi:
                chars.extend(chr(k) for k in range(lo, hi + 1))
                i += 3
                continue
        chars.append(c)
        i += 1
    return chars


def _tr(args: list[str], stdin: str) -> str:
    if args and args[0] == "-d" and len(args) == 2:
        drop = set(_tr_set(args[1]))
        return "".join(c for c in stdin if c not in drop)
    if len(args) != 2 or (args[0].startswith("-") and len(args[0]) == 2 and args[0][1].isalpha()):
        raise Unevaluated(f"tr {' '.join(args)}")
    src, dst = _tr_set(args[0]), _tr_set(args[1])
    if not dst:
        raise Unevaluated("tr with an empty second set")
    table: dict[int, str] = {}
    for k, ch in enumerate(src):
        table.setdefault(ord(ch), dst[min(k, len(dst) - 1)])
    return stdin.translate(table)


def _grep(args: list[str], stdin: str) -> tuple[str, int]:
    quiet = invert = ignore = False
    patterns: list[str] = []
    for a in args:
        if a.startswith("-") and len(a) > 1:
            for flag in a[1:]:
                if flag == "q":
                    quiet = True
                elif flag == "v":
                    invert = True
                elif flag == "i":
                    ignore = True
                else:
                    raise Unevaluated(f"grep -{flag}")
        else:
            patterns.append(a)
    if len(patterns) != 1:
        raise Unevaluated("grep on files")
    try:
        regex = re.compile(_bre_to_python(patterns[0], False), re.I if ignore else 0)
    except re.error:
        raise Unevaluated(f"grep pattern {patterns[0]!r}") from None
    hits = [line for line in _lines(stdin) if bool(regex.search(line)) != invert]
    return ("" if quiet else "".join(x + "\n" for x in hits)), (0 if hits else 1)


# -- rpm expressions ----------------------------------------------------------------------


_TOKEN = re.compile(r"\s*(\"(?:[^\"\\]|\\.)*\"|\d+|&&|\|\||==|!=|<=|>=|[<>!()+\-*/]|[A-Za-z_][\w.]*)")


def evaluate_expression(text: str) -> int | str | None:
    """The value of an rpm ``%if`` expression (after expansion), or None if unreadable."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            return None
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        return None
    parser = _ExprParser(tokens)
    try:
        value = parser.parse_or()
    except (IndexError, ValueError, ZeroDivisionError):
        return None
    if parser.pos != len(tokens):
        return None
    return value


class _ExprParser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse_or(self) -> int | str:
        left = self.parse_and()
        while self.peek() == "||":
            self.take()
            right = self.parse_and()
            left = left if _truth(left) else right
        return left

    def parse_and(self) -> int | str:
        left = self.parse_cmp()
        while self.peek() == "&&":
            self.take()
            right = self.parse_cmp()
            left = right if _truth(left) else left
        return left

    def parse_cmp(self) -> int | str:
        left = self.parse_add()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()
            right = self.parse_add()
            if type(left) is not type(right):
                raise ValueError("types differ")
            result = {
                "==": left == right, "!=": left != right,
                "<": left < right,  # type: ignore[operator]
                ">": left > right,  # type: ignore[operator]
                "<=": left <= right,  # type: ignore[operator]
                ">=": left >= right,  # type: ignore[operator]
            }[op]
            left = int(result)
        return left

    def parse_add(self) -> int | str:
        left = self.parse_mul()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.parse_mul()
            if isinstance(left, int) and isinstance(right, int):
                left = left + right if op == "+" else left - right
            elif op == "+" and isinstance(left, str) and isinstance(right, str):
                left = left + right
            else:
                raise ValueError("bad operands")
        return left

    def parse_mul(self) -> int | str:
        left = self.parse_unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.parse_unary()
            if not (isinstance(left, int) and isinstance(right, int)):
                raise ValueError("bad operands")
            left = left * right if op == "*" else left // right
        return left

    def parse_unary(self) -> int | str:
        tok = self.peek()
        if tok == "!":
            self.take()
            return int(not _truth(self.parse_unary()))
        if tok == "-":
            self.take()
            value = self.parse_unary()
            if not isinstance(value, int):
                raise ValueError("minus on a string")
            return -value
        return self.parse_primary()

    def parse_primary(self) -> int | str:
        tok = self.take()
        if tok == "(":
            value = self.parse_or()
            if self.take() != ")":
                raise ValueError("no )")
            return value
        if tok.startswith('"'):
            return re.sub(r"\\(.)", r"\1", tok[1:-1])
        if tok.isdigit():
            return int(tok)
        raise ValueError(f"bare word {tok}")


def _truth(value: int | str) -> bool:
    return bool(value)


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

    def value(self, name: str, expander_context: Context) -> str | None:
        """The expanded value of macro *name*, or None if undefined."""
        if name not in self.macros:
            return None
        exp = Expander(macros=dict(self.macros), context=expander_context)
        return exp.expand(f"%{{{name}}}")


def evaluate(lines: list[Line], macros: Mapping[str, Macro], context: Context) -> Evaluated:
    """Evaluate preamble *lines* in order, starting from *macros* (not changed)."""
    exp = Expander(macros=dict(macros), context=context)
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
            return _truth(value)
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


def body_facts(spec_text: str, body: list[Line]) -> BodyFacts:
    """The BODY-FACTS line of a reduced spec, or the same facts read from a full body."""
    for raw in reversed(spec_text.splitlines()):
        m = _BODY_FACTS.match(raw.strip())
        if m:
            fields = dict(part.split("=", 1) for part in m.group(1).split() if "=" in part)
            return BodyFacts(copies=fields.get("copies") == "yes",
                             site_packages=_majors(fields.get("site-packages", "")),
                             uses=_majors(fields.get("uses", "")))
    copies = False
    site: set[int] = set()
    uses: set[int] = set()
    for line in body:
        text = line.text
        if text.lstrip().startswith("## INITENV"):
            continue
        if "builddirectpkgreqs" in text:
            copies = True
        if re.search(r"\$\{?PYTHON_LIB_SITE_PACKAGES\b", text):
            site.add(2)
        if re.search(r"\$\{?PYTHON3_LIB_SITE_PACKAGES\b", text):
            site.add(3)
        if _USES2.search(text):
            uses.add(2)
        if _USES3.search(text):
            uses.add(3)
    return BodyFacts(copies=copies, site_packages=frozenset(site), uses=frozenset(uses))
