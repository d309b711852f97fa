"""IAM condition operators as a table from name to a small comparison function, plus set logic.

Semantics: IAM User Guide, "Condition operators" (reference_policies_elements_condition_operators)
and "Single-valued vs. multivalued context keys" (reference_policies_condition-single-vs-multi-
valued-context-keys). Results are three-valued: ``None`` means AWS does not document the outcome
(or keyless cannot know the value offline), and callers must never read it as a match.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import ipaddress
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from keyless.compat import UTC, StrEnum, fromisoformat
from keyless.errors import PolicyError
from keyless.limits import MATCH_TEXT_MAX_CHARS
from keyless.trust.glob import Glob, compile_glob, glob_of

__all__ = [
    "OPERATORS",
    "UNKNOWN",
    "BaseOperator",
    "Category",
    "Chunk",
    "ContextValue",
    "Operator",
    "Pattern",
    "Qualifier",
    "Truth",
    "Unknown",
    "all3",
    "any3",
    "literal_pattern",
    "parse_operator",
    "pattern_glob",
    "test_condition",
]

#: Three-valued truth: True, False, or None for "undocumented / not knowable".
Truth = bool | None


class Unknown(enum.Enum):
    """A context key whose value keyless cannot know offline (e.g. ``aws:SourceIp``)."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN

#: A value in the request context: one string, or a tuple for a multivalued key.
ContextValue = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Part of a policy value. ``active`` text came from the policy itself, so ``*`` and ``?``
    are wildcards in it; inactive text came from a policy variable and is always literal."""

    text: str
    active: bool = True


#: A policy value after variable substitution, as chunks.
Pattern = tuple[Chunk, ...]


def literal_pattern(text: str) -> Pattern:
    """A policy value that contains no variable."""
    return (Chunk(text),)


def _joined(pattern: Pattern) -> str:
    return "".join(chunk.text for chunk in pattern)


class Category(StrEnum):
    STRING = "string"
    NUMERIC = "numeric"
    DATE = "date"
    BOOL = "bool"
    BINARY = "binary"
    IP = "ip"
    ARN = "arn"
    NULL = "null"


class Qualifier(StrEnum):
    NONE = ""
    FOR_ANY_VALUE = "ForAnyValue"
    FOR_ALL_VALUES = "ForAllValues"


Comparator = Callable[[Pattern, str], Truth]
Validator = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseOperator:
    """One IAM operator without qualifier or ``IfExists``.

    ``compare`` is the positive test of one policy value against one request value; a negated
    operator (``StringNotLike``) uses its positive counterpart and negates the OR over values.
    """

    name: str
    category: Category
    negated: bool
    compare: Comparator
    validate: Validator

    @property
    def supports_variables(self) -> bool:
        # Policy variables work only in string and ARN operators (reference_policies_variables).
        return self.category in (Category.STRING, Category.ARN)

    @property
    def wildcards(self) -> bool:
        """True when ``*`` and ``?`` in a policy value are wildcards for this operator."""
        return self.name in ("StringLike", "StringNotLike") or self.category is Category.ARN


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """An operator as written in a policy: ``ForAllValues:StringLikeIfExists``."""

    name: str
    qualifier: Qualifier
    base: BaseOperator
    if_exists: bool

    @property
    def negated(self) -> bool:
        return self.base.negated

    @property
    def category(self) -> Category:
        return self.base.category


# --- comparisons ---------------------------------------------------------------------------------


def _string_equals(pattern: Pattern, actual: str) -> Truth:
    # StringEquals compares literally: `*` is an ordinary character here (fail-closed).
    return _joined(pattern) == actual


def _string_equals_ignore_case(pattern: Pattern, actual: str) -> Truth:
    return _joined(pattern).lower() == actual.lower()


def pattern_glob(pattern: Pattern) -> Glob:
    """IAM's ``StringLike`` glob for a policy value: ``*`` and ``?`` are wildcards in text the
    policy wrote and literal in a variable's value (keyless.trust.glob matches in bounded time;
    a regex would backtrack exponentially)."""
    if len(pattern) == 1 and pattern[0].active:
        return compile_glob(pattern[0].text)
    return _chunks_glob(pattern)


@functools.lru_cache(maxsize=4096)
def _chunks_glob(pattern: Pattern) -> Glob:
    return glob_of((chunk.text, chunk.active) for chunk in pattern)


def _glob_match(pattern: Pattern, actual: str) -> Truth:
    if len(actual) > MATCH_TEXT_MAX_CHARS:
        # No token STS accepts carries such a value, so IAM never compares one.
        return None
    return pattern_glob(pattern).match(actual)


def _string_like(pattern: Pattern, actual: str) -> Truth:
    return _glob_match(pattern, actual)


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _number(text: str) -> Decimal | None:
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None


_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")


def _date(text: str) -> datetime | None:
    # IAM accepts W3C ISO 8601 dates and epoch seconds (condition operators, "Date").
    if _EPOCH.fullmatch(text):
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Decimal for numeric operators, datetime for date operators.
Relation = Callable[[Any, Any], bool]


def _numeric(relation: Relation) -> Comparator:
    def compare(pattern: Pattern, actual: str) -> Truth:
        expected, value = _number(_joined(pattern)), _number(actual)
        if expected is None or value is None:
            # A request value that is not a number: IAM does not document the outcome.
            return None
        return relation(value, expected)

    return compare


def _dated(relation: Relation) -> Comparator:
    def compare(pattern: Pattern, actual: str) -> Truth:
        expected, value = _date(_joined(pattern)), _date(actual)
        if expected is None or value is None:
            return None
        return relation(value, expected)

    return compare


def _bool(pattern: Pattern, actual: str) -> Truth:
    if actual not in ("true", "false"):
        return None
    return _joined(pattern).lower() == actual


def _binary(pattern: Pattern, actual: str) -> Truth:
    try:
        return base64.b64decode(_joined(pattern), validate=True) == base64.b64decode(
            actual, validate=True
        )
    except (binascii.Error, ValueError):
        return None


def _ip(pattern: Pattern, actual: str) -> Truth:
    try:
        network = ipaddress.ip_network(_joined(pattern), strict=False)
        address = ipaddress.ip_address(actual)
    except ValueError:
        return None
    return address.version == network.version and address in network


def _split_arn(pattern: Pattern) -> list[Pattern]:
    """The six colon-delimited components of an ARN pattern (the last keeps further colons)."""
    components: list[list[Chunk]] = [[]]
    for chunk in pattern:
        pieces = chunk.text.split(":")
        for index, piece in enumerate(pieces):
            if index and len(components) < 6:
                components.append([])
            elif index:
                components[-1].append(Chunk(":", chunk.active))
            if piece:
                components[-1].append(Chunk(piece, chunk.active))
    return [tuple(component) for component in components]


def _arn_like(pattern: Pattern, actual: str) -> Truth:
    # ArnEquals and ArnLike are the same test: each of the six components is matched on its own
    # and may hold `*` and `?` (condition operators, "Amazon Resource Name (ARN)").
    if pattern == (Chunk("*"),):
        return True
    expected = _split_arn(pattern)
    if len(expected) != 6:
        # IAM documents ARN operators for six-component values only.
        return None
    if len(actual) > MATCH_TEXT_MAX_CHARS:
        return None  # as in _glob_match: no token carries it
    parts = actual.split(":", 5)
    if len(parts) != 6:
        return False
    return all3(
        _glob_match(component, part) for component, part in zip(expected, parts, strict=True)
    )


def _never(pattern: Pattern, actual: str) -> Truth:  # Null is handled by test_condition
    raise AssertionError("Null has no per-value comparison")


# --- validation of policy values -----------------------------------------------------------------


def _any_string(value: str) -> str | None:
    return None


def _numeric_value(value: str) -> str | None:
    return None if _number(value) is not None else f"{value!r} is not a number"


def _date_value(value: str) -> str | None:
    if _date(value) is not None:
        return None
    return f"{value!r} is not an ISO 8601 date or epoch seconds"


def _bool_value(value: str) -> str | None:
    return None if value.lower() in ("true", "false") else f"{value!r} is not true or false"


def _null_value(value: str) -> str | None:
    return None if value in ("true", "false") else f"{value!r} is not true or false"


def _binary_value(value: str) -> str | None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"{value!r} is not base64"
    return None


def _ip_value(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{value!r} is not an IP address or CIDR range"
    return None


def _arn_value(value: str) -> str | None:
    if value == "*" or value.startswith("arn") or "${" in value:
        return None
    return f"{value!r} is not an ARN (arn:partition:service:region:account:resource)"


def _table() -> dict[str, BaseOperator]:
    table: dict[str, BaseOperator] = {}

    def add(
        name: str, category: Category, compare: Comparator, validate: Validator, *, negated: bool
    ) -> None:
        table[name] = BaseOperator(
            name=name, category=category, negated=negated, compare=compare, validate=validate
        )

    string = Category.STRING
    add("StringEquals", string, _string_equals, _any_string, negated=False)
    add("StringNotEquals", string, _string_equals, _any_string, negated=True)
    add("StringEqualsIgnoreCase", string, _string_equals_ignore_case, _any_string, negated=False)
    add("StringNotEqualsIgnoreCase", string, _string_equals_ignore_case, _any_string, negated=True)
    add("StringLike", string, _string_like, _any_string, negated=False)
    add("StringNotLike", string, _string_like, _any_string, negated=True)
    relations: dict[str, Relation] = {
        "Equals": operator.eq,
        "LessThan": operator.lt,
        "LessThanEquals": operator.le,
        "GreaterThan": operator.gt,
        "GreaterThanEquals": operator.ge,
    }
    typed: tuple[tuple[str, Category, Callable[[Relation], Comparator], Validator], ...] = (
        ("Numeric", Category.NUMERIC, _numeric, _numeric_value),
        ("Date", Category.DATE, _dated, _date_value),
    )
    for prefix, category, factory, validate in typed:
        for suffix, relation in relations.items():
            add(prefix + suffix, category, factory(relation), validate, negated=False)
        add(prefix + "NotEquals", category, factory(operator.eq), validate, negated=True)
    add("Bool", Category.BOOL, _bool, _bool_value, negated=False)
    add("BinaryEquals", Category.BINARY, _binary, _binary_value, negated=False)
    add("IpAddress", Category.IP, _ip, _ip_value, negated=False)
    add("NotIpAddress", Category.IP, _ip, _ip_value, negated=True)
    add("ArnEquals", Category.ARN, _arn_like, _arn_value, negated=False)
    add("ArnLike", Category.ARN, _arn_like, _arn_value, negated=False)
    add("ArnNotEquals", Category.ARN, _arn_like, _arn_value, negated=True)
    add("ArnNotLike", Category.ARN, _arn_like, _arn_value, negated=True)
    add("Null", Category.NULL, _never, _null_value, negated=False)
    return table


#: Every operator IAM documents, by name. Anything else is a ``PolicyError``.
OPERATORS: dict[str, BaseOperator] = _table()

_IF_EXISTS = "IfExists"


def parse_operator(name: str) -> Operator:
    """``name`` as written in a Condition block, or ``PolicyError`` for an unknown operator.

    Operator names are case-sensitive: IAM refuses ``stringequals`` when a policy is saved, so
    keyless refuses it too rather than guess.
    """
    qualifier = Qualifier.NONE
    rest = name
    for candidate in (Qualifier.FOR_ANY_VALUE, Qualifier.FOR_ALL_VALUES):
        if name.startswith(f"{candidate.value}:"):
            qualifier = candidate
            rest = name[len(candidate.value) + 1 :]
    if_exists = False
    base = OPERATORS.get(rest)
    if base is None and rest.endswith(_IF_EXISTS):
        base = OPERATORS.get(rest[: -len(_IF_EXISTS)])
        if_exists = base is not None
    if base is None:
        hint = _suggest(rest)
        raise PolicyError(
            f"unknown condition operator {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
        )
    if base.category is Category.NULL and (if_exists or qualifier is not Qualifier.NONE):
        # IAM documents IfExists "for any operator except Null", and no set form of Null.
        raise PolicyError(f"condition operator {name!r} is not valid: Null takes no qualifiers")
    return Operator(name=name, qualifier=qualifier, base=base, if_exists=if_exists)


def _suggest(name: str) -> str | None:
    lowered = name.lower()
    for known in OPERATORS:
        if known.lower() == lowered or f"{known}{_IF_EXISTS}".lower() == lowered:
            return known if known.lower() == lowered else f"{known}{_IF_EXISTS}"
    return None


# --- three-valued logic ---------------------------------------------------------------------


def any3(values: Iterable[Truth]) -> Truth:
    """OR: True if any is True, else None if any is unknown, else False."""
    unknown = False
    for value in values:
        if value is True:
            return True
        if value is None:
            unknown = True
    return None if unknown else False


def all3(values: Iterable[Truth]) -> Truth:
    """AND: False if any is False, else None if any is unknown, else True."""
    unknown = False
    for value in values:
        if value is False:
            return False
        if value is None:
            unknown = True
    return None if unknown else True


def _not3(value: Truth) -> Truth:
    return None if value is None else not value


#: A policy value after substitution: a pattern, ``None`` for a variable that resolved to null
#: (matches nothing), or ``UNKNOWN`` for a variable keyless cannot resolve.
Expanded = Pattern | Unknown | None


def _test_member(op: Operator, values: Sequence[Expanded], member: str) -> Truth:
    """One request value against all policy values: OR for positive operators, NOR for negated
    ones (multi-value conditions: "for negated operators every value must hold")."""
    results: list[Truth] = []
    for value in values:
        if value is UNKNOWN:
            results.append(None)
        elif value is None:
            results.append(False)
        else:
            results.append(op.base.compare(value, member))
    hit = any3(results)
    return _not3(hit) if op.negated else hit


def test_condition(
    op: Operator, values: Sequence[Expanded], actual: ContextValue | Unknown | None
) -> Truth:
    """Whether one ``operator: {key: values}`` entry holds for the key's request value.

    ``actual`` is ``None`` when the key is absent from the request context, a tuple for a
    multivalued key, ``UNKNOWN`` when keyless cannot know it.
    """
    if actual is UNKNOWN:
        return None
    if op.category is Category.NULL:
        if isinstance(actual, tuple) and not actual:
            return None  # an empty set under Null is not documented
        present = actual is not None
        # `Null: true` holds when the key is absent, `Null: false` when it is present.
        return any3(
            (_joined(value) == "true") != present if isinstance(value, tuple) else None
            for value in values
        )
    if op.qualifier is Qualifier.NONE:
        if actual is None:
            # Absent key: non-negated operators are false, negated ones true, IfExists true.
            return op.if_exists or op.negated
        if isinstance(actual, tuple):
            # A multivalued request value under a single-valued operator: AWS says such keys
            # "require a set operator" and documents no result without one
            # (docs/aws-sts-iam.md#set-operators).
            return None
        return _test_member(op, values, actual)
    members: tuple[str, ...]
    if actual is None:
        members = ()
    elif isinstance(actual, tuple):
        members = actual
    else:
        # "a null data set, such as an empty string" counts as empty for the set operators.
        members = (actual,) if actual else ()
    if op.qualifier is Qualifier.FOR_ALL_VALUES:
        # True when every request value matches, and also when there is none (documented).
        return all3(_test_member(op, values, member) for member in members)
    if not members:
        return bool(op.if_exists and actual is None)
    return any3(_test_member(op, values, member) for member in members)
