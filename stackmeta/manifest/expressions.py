"""rpm expressions (``%if`` conditions and ``%[...]``): integers, strings, comparisons, ``&&``,
``||``, ``!`` and arithmetic, evaluated without running anything."""

from __future__ import annotations

import re

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
            left = left if truth(left) else right
        return left

    def parse_and(self) -> int | str:
        left = self.parse_cmp()
        while self.peek() == "&&":
            self.take()
            right = self.parse_cmp()
            left = right if truth(left) else left
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
            return int(not truth(self.parse_unary()))
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


def truth(value: int | str) -> bool:
    return bool(value)
