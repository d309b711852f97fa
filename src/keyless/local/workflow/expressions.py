"""A small, bounded evaluator of GitHub Actions ``${{ }}`` expressions, as GitHub documents them
("Evaluate expressions in workflows and actions"): literals (``null``, ``true``/``false``, numbers,
``'strings'`` with ``''`` for a quote), the contexts ``env``, ``inputs``, ``steps``, ``github``,
``secrets``, ``vars``, property access (``a.b``, ``a['b']``), ``!``, ``==``/``!=`` (strings compared
ignoring case, mismatched types as numbers), ``&&``/``||`` (they yield an operand, not a boolean),
the functions ``format``, ``contains``, ``startsWith``, ``endsWith`` and the status checks
``success``, ``failure``, ``always``, ``cancelled``. Anything else is refused with a message naming
it, never guessed at.

Bounded by construction: an expression is at most ``WORKFLOW_EXPRESSION_MAX_CHARS`` characters and
``WORKFLOW_EXPRESSION_MAX_DEPTH`` levels deep (the runner's own bounds), a built string at most
``WORKFLOW_VALUE_MAX_CHARS``; the parser reads each character once and evaluates as it parses (no
side effects, so both operands of ``&&`` may be evaluated).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias, Union

from keyless.errors import UsageError
from keyless.limits import (
    WORKFLOW_EXPRESSION_MAX_CHARS,
    WORKFLOW_EXPRESSION_MAX_DEPTH,
    WORKFLOW_VALUE_MAX_CHARS,
)

__all__ = [
    "CONTEXTS",
    "Contexts",
    "ExpressionError",
    "Value",
    "condition",
    "evaluate",
    "interpolate",
    "to_string",
]

#: What an expression yields; contexts are (nested) mappings.
Value: TypeAlias = Union[bool, float, str, Mapping[str, object], None]  # noqa: UP007 - 3.10

CONTEXTS: Final = ("env", "inputs", "steps", "github", "secrets", "vars")
_STATUS_FUNCTIONS: Final = frozenset({"success", "failure", "always", "cancelled"})
_FUNCTIONS: Final = frozenset({"format", "contains", "startswith", "endswith"}) | _STATUS_FUNCTIONS
_TOKEN: Final = re.compile(
    r"""\s*(?:
      (?P<number>-?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
    | (?P<string>'(?:[^']|'')*')
    | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<op>==|!=|&&|\|\||[!().\[\],])
    | (?P<refused><=|>=|[<>*])
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


class ExpressionError(UsageError):
    """An expression keyless cannot evaluate (malformed, too long, or not supported here)."""

    kind = "workflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class Contexts:
    """The values expressions see, by context name, and the job's status so far."""

    values: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: A step before this one failed (``failure()``; ``success()`` is its negation).
    failed: bool = False


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only whitespace is left
            break
        kind = match.lastgroup or "other"
        value = match.group(kind)
        at = match.start(kind)
        if kind == "refused":
            raise ExpressionError(f"operator {value!r} is not supported by keyless local workflow")
        if kind == "other" and value == "'":
            raise ExpressionError(f"a string opened at {at + 1} is not closed with '")
        if kind == "other":
            raise ExpressionError(f"unexpected character {value!r} at {at + 1} in the expression")
        found.append(_Token(kind, value, at))
        position = match.end()
    return found


class _Parser:
    def __init__(self, text: str, contexts: Contexts) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0
        self.contexts = contexts
        self.status_called = False

    # --- the grammar (precedence, lowest first: ||, &&, == !=, !, property access) ----------

    def parse(self) -> Value:
        if not self.tokens:
            raise ExpressionError("the expression is empty")
        value = self.either()
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            raise ExpressionError(f"unexpected {token.text!r} at {token.at + 1} in the expression")
        return value

    def either(self) -> Value:
        self.enter()
        value = self.both()
        while self.accept("||"):
            right = self.both()
            value = value if truthy(value) else right
        self.depth -= 1
        return value

    def both(self) -> Value:
        value = self.equality()
        while self.accept("&&"):
            right = self.equality()
            value = right if truthy(value) else value
        return value

    def equality(self) -> Value:
        value = self.unary()
        while True:
            if self.accept("=="):
                value = equal(value, self.unary())
            elif self.accept("!="):
                value = not equal(value, self.unary())
            else:
                return value

    def unary(self) -> Value:
        if self.accept("!"):
            self.enter()
            value = not truthy(self.unary())
            self.depth -= 1
            return value
        return self.postfix()

    def postfix(self) -> Value:
        value = self.primary()
        while True:
            if self.accept("."):
                token = self.expect("name", "a property name after '.'")
                value = _property(value, token.text)
            elif self.accept("["):
                key = self.either()
                self.expect_op("]")
                value = _property(value, to_string(key)) if isinstance(key, str) else None
            else:
                return value

    def primary(self) -> Value:
        token = self.next("a value")
        if token.kind == "number":
            return _number_literal(token.text)
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "op" and token.text == "(":
            value = self.either()
            self.expect_op(")")
            return value
        if token.kind != "name":
            raise ExpressionError(f"unexpected {token.text!r} at {token.at + 1} in the expression")
        name = token.text
        if name in ("true", "false"):
            return name == "true"
        if name == "null":
            return None
        if self.accept("("):
            return self.call(name)
        lowered = name.lower()
        if lowered not in CONTEXTS:
            raise ExpressionError(
                f"context {name!r} is not supported by keyless local workflow"
                f" (it has {', '.join(CONTEXTS)})"
            )
        return self.contexts.values.get(lowered, {})

    def call(self, name: str) -> Value:
        lowered = name.lower()
        if lowered not in _FUNCTIONS:
            raise ExpressionError(f"function {name}() is not supported by keyless local workflow")
        self.enter()
        args: list[Value] = []
        if not self.accept(")"):
            args.append(self.either())
            while self.accept(","):
                args.append(self.either())
            self.expect_op(")")
        self.depth -= 1
        if lowered in _STATUS_FUNCTIONS:
            if args:
                raise ExpressionError(f"{name}() takes no arguments")
            self.status_called = True
            failed = self.contexts.failed
            return {
                "success": not failed,
                "failure": failed,
                "always": True,
                "cancelled": False,
            }[lowered]
        if lowered == "format":
            if not args:
                raise ExpressionError("format() needs a format string")
            return _format(to_string(args[0]), args[1:])
        if len(args) != 2:
            raise ExpressionError(f"{name}() takes two arguments, not {len(args)}")
        left, right = to_string(args[0]).casefold(), to_string(args[1]).casefold()
        if lowered == "contains":
            return right in left if isinstance(args[0], str | float | bool) else False
        if lowered == "startswith":
            return left.startswith(right)
        return left.endswith(right)

    # --- tokens ---------------------------------------------------------------------------

    def enter(self) -> None:
        self.depth += 1
        if self.depth > WORKFLOW_EXPRESSION_MAX_DEPTH:
            raise ExpressionError(
                f"the expression nests deeper than {WORKFLOW_EXPRESSION_MAX_DEPTH} levels"
            )

    def accept(self, op: str) -> bool:
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            if token.kind == "op" and token.text == op:
                self.index += 1
                return True
        return False

    def next(self, wanted: str) -> _Token:
        if self.index >= len(self.tokens):
            raise ExpressionError(f"the expression ends where {wanted} was expected")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, wanted: str) -> _Token:
        token = self.next(wanted)
        if token.kind != kind:
            raise ExpressionError(f"expected {wanted} at {token.at + 1}, found {token.text!r}")
        return token

    def expect_op(self, op: str) -> None:
        if not self.accept(op):
            found = self.tokens[self.index].text if self.index < len(self.tokens) else "the end"
            raise ExpressionError(f"expected {op!r} in the expression, found {found!r}")


def _number_literal(text: str) -> float:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = float(int(digits, 16)) if digits.lower().startswith("0x") else float(digits)
    return -value if negative else value


def _property(value: Value | object, name: str) -> Value:
    """``value.name``: case-insensitive, as GitHub's contexts are; null when absent."""
    if not isinstance(value, Mapping):
        return None
    found = value.get(name)
    if found is None:
        lowered = name.lower()
        found = next((v for k, v in value.items() if str(k).lower() == lowered), None)
    if found is None or isinstance(found, bool | str | float | Mapping):
        return found
    if isinstance(found, int):
        return float(found)
    return str(found)


def _format(template: str, args: list[Value]) -> str:
    """``format('{0} {1}', a, b)``: ``{N}`` replaced, ``{{``/``}}`` are literal braces."""
    out: list[str] = []
    size = 0
    position = 0
    while position < len(template):
        char = template[position]
        if char == "{" and template.startswith("{{", position):
            piece, position = "{", position + 2
        elif char == "}" and template.startswith("}}", position):
            piece, position = "}", position + 2
        elif char == "{":
            end = template.find("}", position)
            index = template[position + 1 : end] if end != -1 else ""
            if not index.isdigit() or int(index) >= len(args):
                raise ExpressionError(
                    f"format() string has {template[position : position + 12]!r} with no argument"
                )
            piece, position = to_string(args[int(index)]), end + 1
        elif char == "}":
            raise ExpressionError("format() string has a '}' that opens nothing; write '}}'")
        else:
            piece, position = char, position + 1
        size += len(piece)
        if size > WORKFLOW_VALUE_MAX_CHARS:
            raise ExpressionError(f"format() builds more than {WORKFLOW_VALUE_MAX_CHARS} chars")
        out.append(piece)
    return "".join(out)


# --- GitHub's conversions ------------------------------------------------------------------------


def truthy(value: Value) -> bool:
    """Falsy: ``false``, ``0``, ``-0``, NaN, ``''`` and ``null``; everything else is truthy."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value: Value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        if _JSON_NUMBER.fullmatch(text):
            return float(text)
        if re.fullmatch(r"0x[0-9a-fA-F]+", text):
            return float(int(text, 16))
        return math.nan
    return math.nan


def to_string(value: Value) -> str:
    """How a value reads when interpolated: null is empty, numbers without a needless ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return value
    text = json.dumps(value, indent=2, default=str)
    if len(text) > WORKFLOW_VALUE_MAX_CHARS:
        raise ExpressionError(f"an object of more than {WORKFLOW_VALUE_MAX_CHARS} chars as text")
    return text


def equal(left: Value, right: Value) -> bool:
    """``==``: same types compare directly (strings ignoring case); others as numbers."""
    if left is None and right is None:
        return True
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, bool) and isinstance(right, bool):
        return left == right
    if isinstance(left, Mapping) or isinstance(right, Mapping):
        return left is right
    return to_number(left) == to_number(right)


# --- the entry points ----------------------------------------------------------------------------


def _bounded(text: str) -> str:
    if len(text) > WORKFLOW_EXPRESSION_MAX_CHARS:
        raise ExpressionError(
            f"an expression of {len(text)} characters is longer than GitHub's"
            f" {WORKFLOW_EXPRESSION_MAX_CHARS}"
        )
    return text


def evaluate(text: str, contexts: Contexts) -> Value:
    """The value of the expression ``text`` (what is inside ``${{ }}``)."""
    return _Parser(_bounded(text), contexts).parse()


def _closing(text: str, start: int) -> int:
    """Index of the ``}}`` that closes the expression starting at ``start`` (quotes skipped)."""
    position = start
    quoted = False
    while position < len(text):
        char = text[position]
        if char == "'":
            quoted = not quoted  # '' inside a string toggles twice: still inside
        elif not quoted and text.startswith("}}", position):
            return position
        position += 1
    raise ExpressionError(f"an expression opened with ${{{{ at {start - 2} is not closed with }}}}")


def interpolate(text: str, contexts: Contexts) -> str:
    """``text`` with every ``${{ expression }}`` replaced by its value as a string."""
    out: list[str] = []
    size = 0
    position = 0
    while True:
        start = text.find("${{", position)
        if start == -1:
            out.append(text[position:])
            break
        end = _closing(text, start + 3)
        out.append(text[position:start])
        value = to_string(evaluate(text[start + 3 : end], contexts))
        size += len(value)
        if size > WORKFLOW_VALUE_MAX_CHARS:
            raise ExpressionError(f"expressions build more than {WORKFLOW_VALUE_MAX_CHARS} chars")
        out.append(value)
        position = end + 2
    return "".join(out)


def condition(text: str | bool | float | None, contexts: Contexts) -> bool:
    """An ``if:``: its ``${{ }}`` is optional; without a status check it means ``success() &&``
    (GitHub: "a default status check of success() is applied")."""
    if text is None:
        return not contexts.failed
    if isinstance(text, bool | float | int):
        return bool(text) and not contexts.failed
    stripped = text.strip()
    if (
        stripped.startswith("${{")
        and stripped.endswith("}}")
        and _closing(stripped, 3) == len(stripped) - 2
    ):
        stripped = stripped[3:-2]
    elif "${{" in stripped:
        # GitHub interpolates such a condition into a string: any non-empty text is true.
        return interpolate(stripped, contexts) != "" and not contexts.failed
    parser = _Parser(_bounded(stripped), contexts)
    value = truthy(parser.parse())
    return value if parser.status_called else value and not contexts.failed
