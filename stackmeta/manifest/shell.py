"""The small shell of cmsdist's ``%(...)`` snippets: echo, cut, sed, tr, grep, case, uname, ``;``,
``|``, ``&&``, ``||``, ``for NAME in WORDS; do ...; done`` loops with the variables they and
``NAME=value`` / ``let NAME=EXPR`` set, run in Python for the machine a spec is evaluated for
(:class:`Context`).
Anything else raises :class:`Unevaluated`, which the macro expander (:mod:`stackmeta.manifest.spec`)
reports as a construct left as written; nothing is guessed."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType


class Unevaluated(Exception):
    """Raised inside the shell subset; turned into an Issue by the expander."""


@dataclass(kw_only=True, slots=True)
class Context:
    """The machine a spec is evaluated for."""

    machine: str  # x86_64, aarch64, ppc64le
    os: str = "linux"


def matching(text: str, start: int, opening: str, closing: str) -> int:
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


def run_shell(command: str, context: Context) -> str:
    """Run *command* in the small shell subset; raise Unevaluated for anything else."""
    return _Shell(context).run(command, "")


MAX_ITERATIONS = 10_000  # loop bodies run in one snippet: a bound, not a guess


class _Shell:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.vars: dict[str, str] = {}  # set by NAME=value, let and for in this snippet
        self.iterations = 0

    def run(self, command: str, stdin: str) -> str:
        command = command.strip()
        if command.startswith("case ") or command.startswith("case\t"):
            return self._case(command)
        return self._sequence(list(_split_list(command)), stdin)[0]

    def _sequence(self, parts: list[tuple[str, str]], stdin: str) -> tuple[str, int]:
        out: list[str] = []
        status = 0
        i = 0
        while i < len(parts):
            op, part = parts[i]
            if _keyword(part) == "for":
                end = _loop_end(parts, i)
                if not ((op == "&&" and status != 0) or (op == "||" and status == 0)):
                    text, status = self._for(part, parts[i + 1:end], stdin)
                    out.append(text)
                i = end + 1
                continue
            if _keyword(part) in ("do", "done"):
                raise Unevaluated(f"'{_keyword(part)}' outside a for loop")
            i += 1
            if (op == "&&" and status != 0) or (op == "||" and status == 0):
                continue
            text, status = self._pipeline(part, stdin)
            out.append(text)
        return "".join(out), status

    def _for(self, head: str, body: list[tuple[str, str]], stdin: str) -> tuple[str, int]:
        """``for NAME in WORDS`` then *body* = ``do ...`` parts (the ``done`` left out)."""
        m = re.match(r"^\s*for\s+([A-Za-z_][A-Za-z0-9_]*)\s+in(?:\s+(.*))?$", head, re.S)
        if not m or not body:
            raise Unevaluated(f"unreadable for loop {head.strip()!r}")
        first = body[0][1].strip()[len("do"):]
        steps = [(";", first), *body[1:]] if first.strip() else list(body[1:])
        out: list[str] = []
        status = 0
        for word in self._words(m.group(2) or ""):
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise Unevaluated(f"more than {MAX_ITERATIONS} loop iterations")
            self.vars[m.group(1)] = word
            text, status = self._sequence(steps, stdin)
            out.append(text)
        return "".join(out), status

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
        text = self._expand_variables(self._substitute(text))
        try:
            return shlex.split(text, posix=True)
        except ValueError as exc:
            raise Unevaluated(str(exc)) from None

    def _expand_variables(self, text: str) -> str:
        """``$name`` and ``${name}`` of the variables this snippet set; any other one (the
        environment's, ``$@``, ...) is not evaluated. Single quotes keep ``$`` as it is."""
        if not _has_variable(text):
            return text
        out: list[str] = []
        quote: str | None = None
        i = 0
        while i < len(text):
            c = text[i]
            if quote == "'":
                quote = None if c == "'" else quote
                out.append(c)
                i += 1
                continue
            if c == "'" and quote is None:
                quote = c
            elif c == '"':
                quote = None if quote == '"' else '"'
            elif c == "$":
                m = _VARIABLE.match(text, i)
                if m:
                    name = m.group(1) or m.group(2)
                    if name not in self.vars:
                        raise Unevaluated(f"the shell variable ${name} in {text.strip()!r}")
                    value = self.vars[name]
                    # the value's words, as the shell splits them, never read as quotes again
                    out.append(value.replace("\\", "\\\\").replace('"', '\\"') if quote == '"'
                               else " ".join(shlex.quote(w) for w in value.split()))
                    i = m.end()
                    continue
                if i + 1 < len(text) and (text[i + 1].isalnum() or text[i + 1] in "_{@*#?!"):
                    raise Unevaluated(f"shell variables in {text.strip()!r}")
            out.append(c)
            i += 1
        return "".join(out)

    def _substitute(self, text: str) -> str:
        while True:
            start = text.find("$(")
            if start < 0:
                return text
            end = matching(text, start + 1, "(", ")")
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
        if all(_ASSIGNMENT.match(w) for w in words):
            for w in words:
                name, _, value = w.partition("=")
                self.vars[name] = value
            return "", 0
        if words[0] == "let":
            for expression in words[1:]:
                m = _ASSIGNMENT.match(expression)
                if not m:
                    raise Unevaluated(f"let {expression!r}")
                name, _, value = expression.partition("=")
                self.vars[name] = str(_arithmetic(value, self.vars))
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


_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KEYWORD = re.compile(r"^\s*(for|do|done)(?:\s|$)")


def _keyword(part: str) -> str | None:
    m = _KEYWORD.match(part)
    return m.group(1) if m else None


def _loop_end(parts: list[tuple[str, str]], start: int) -> int:
    """The index of the ``done`` closing the ``for`` at *start* (its next part is ``do ...``)."""
    if start + 1 >= len(parts) or _keyword(parts[start + 1][1]) != "do":
        raise Unevaluated(f"for without do in {parts[start][1].strip()!r}")
    depth = 0
    for i in range(start + 1, len(parts)):
        word = _keyword(parts[i][1])
        if word == "do":
            depth += 1
        elif word == "done":
            if parts[i][1].strip() != "done":
                raise Unevaluated(f"{parts[i][1].strip()!r} after a loop")
            depth -= 1
            if depth == 0:
                return i
    raise Unevaluated("for without done")


def _arithmetic(text: str, variables: dict[str, str]) -> int:
    """An integer expression of ``let``: numbers, variables, + - * / % and parentheses."""
    if len(text) > 200:
        raise Unevaluated(f"the arithmetic {text[:40]!r}... (too long)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise Unevaluated(f"the arithmetic {text!r}") from None

    def value(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name):
            try:
                return int(variables.get(node.id, "0") or "0")
            except ValueError:
                raise Unevaluated(f"the arithmetic {text!r}") from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult) and abs(a) < 1 << 32 and abs(b) < 1 << 32:
                return a * b
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b != 0:
                q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # the shell truncates
                return q if not isinstance(node.op, ast.Mod) else a - q * b
        raise Unevaluated(f"the arithmetic {text!r}")

    return value(tree.body)


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
            if re.match(r"^(if|while|until|then|fi|function)\b", stripped):
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


# What one sed or grep may cost: real specs' snippets read under 30 characters and match in
# microseconds (measured over the excerpts and 450 tags of the cmsdist history); a pattern that
# repeats a repetition ((a+)+, (a|aa)*: exponential backtracking) is refused before it runs,
# and any other is stopped after REGEX_SECONDS (SIGALRM interrupts Python's regex engine; in
# the main thread, where stackmeta reads manifests).
MAX_INPUT = 64 * 1024  # characters a sed or grep reads
REGEX_SECONDS = 2.0


class _Expired(Exception):
    pass


@contextmanager
def _deadline(what: str) -> Iterator[None]:
    """Raise Unevaluated when the block runs longer than REGEX_SECONDS (main thread only, and
    not over a timer someone else set)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer") \
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise _Expired

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, REGEX_SECONDS)
    try:
        yield
    except _Expired:
        raise Unevaluated(f"{what} ran for more than {REGEX_SECONDS:.0f} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _bounded_input(command: str, stdin: str) -> None:
    if len(stdin) > MAX_INPUT:
        raise Unevaluated(f"{command} reads {len(stdin)} characters, more than {MAX_INPUT}")


def repeats_a_repetition(pattern: str) -> bool:
    """Whether the (Python syntax) *pattern* repeats a group that itself repeats or holds
    alternatives: ``(a+)+``, ``(a*b?)*``, ``(a|ab){2,}``, the shapes that backtrack
    exponentially."""
    stack: list[bool] = []  # per open group: it holds a repetition or an alternative
    closed: bool | None = None  # the atom just before: a group (is it risky?), else None
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            closed, i = None, i + 2
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            closed, i = None, j + 1
            continue
        if c == "(":
            stack.append(False)
            closed, i = None, i + 1
            continue
        if c == ")":
            risky = stack.pop() if stack else False
            if stack:
                stack[-1] = stack[-1] or risky
            closed, i = risky, i + 1
            continue
        if c == "|":
            if stack:
                stack[-1] = True
            closed, i = None, i + 1
            continue
        if c in "*+?{":
            end = i + 1
            many = c in "*+"
            if c == "{":
                m = re.match(r"\{(\d*)(,?)(\d*)\}", pattern[i:])
                if m is None:  # a literal brace
                    closed, i = None, i + 1
                    continue
                end = i + m.end()
                many = bool(m.group(2)) or int(m.group(1) or 0) > 1
            if many and closed:
                return True
            if stack:
                stack[-1] = True
            closed, i = None, end
            continue
        closed, i = None, i + 1
    return False


def _compile(pattern: str, flags: int, command: str) -> re.Pattern[str]:
    if repeats_a_repetition(pattern):
        raise Unevaluated(f"{command} pattern {pattern!r} repeats a repetition (it can backtrack for ever)")
    try:
        return re.compile(pattern, flags)
    except re.error:
        raise Unevaluated(f"{command} pattern {pattern!r}") from None


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
            regex = _compile(_bre_to_python(pattern, extended), 0, "sed")
            py_repl = re.sub(r"\\(\d)", r"\\g<\1>", repl.replace("&", r"\g<0>").replace(r"\\g<0>", "&"))
            commands.append((regex, py_repl, 0 if "g" in flags else 1))
    _bounded_input("sed", stdin)
    out: list[str] = []
    with _deadline("sed"):
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
    regex = _compile(_bre_to_python(patterns[0], False), re.I if ignore else 0, "grep")
    _bounded_input("grep", stdin)
    with _deadline("grep"):
        hits = [line for line in _lines(stdin) if bool(regex.search(line)) != invert]
    return ("" if quiet else "".join(x + "\n" for x in hits)), (0 if hits else 1)
