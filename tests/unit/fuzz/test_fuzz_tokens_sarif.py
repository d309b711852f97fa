"""Fuzzing JWT parsing and SARIF writing (see ``tests.unit.fuzz`` for the example count).
``keyless.tokens.peek`` on random and mangled tokens raises nothing but ``KeylessError``; the
SARIF lint writes for random findings (control characters, any Unicode) is valid JSON in the
structure GitHub code scanning reads."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from keyless import tokens
from keyless.errors import KeylessError
from keyless.trust.lint import RULES, Finding, LintedFile, Severity, sarif
from tests.unit.fuzz import fuzz


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GOOD = ".".join(
    (_b64(b'{"alg":"RS256","kid":"k"}'), _b64(b'{"iss":"https://x","sub":"s"}'), _b64(b"sig"))
)
json_text = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
).map(json.dumps)
segment = st.one_of(
    st.binary(max_size=60).map(_b64),
    json_text.map(lambda text: _b64(text.encode())),
    st.text(max_size=40),
    st.integers(0, 1200).map(lambda depth: _b64(("[" * depth + "]" * depth).encode())),
)


def _peek(raw: str) -> None:
    with contextlib.suppress(KeylessError):
        tokens.peek(raw)


@fuzz
@given(st.text(max_size=300))
def test_random_text_is_a_token_or_a_keyless_error(raw: str) -> None:
    _peek(raw)


@fuzz
@given(st.lists(segment, min_size=1, max_size=5).map(".".join))
def test_random_segments_are_a_token_or_a_keyless_error(raw: str) -> None:
    _peek(raw)


@fuzz
@given(st.integers(0, len(GOOD) - 1), st.characters(), st.booleans())
def test_a_mangled_token_is_a_token_or_a_keyless_error(at: int, char: str, insert: bool) -> None:
    _peek(GOOD[:at] + char + GOOD[at + (0 if insert else 1) :])


hostile_text = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from('\x00\x1b\n\r\t\u2028\ufeff"\\'),
    max_size=40,
)
finding = st.builds(
    Finding,
    rule=st.sampled_from([rule.id for rule in RULES]),
    severity=st.sampled_from(list(Severity)),
    message=hostile_text,
    statement=st.none() | st.integers(0, 5),
    location=hostile_text,
    fix=hostile_text,
    sid=st.none() | hostile_text,
    element=st.none() | hostile_text,
)
linted = st.builds(
    LintedFile,
    path=hostile_text,
    text=hostile_text,
    findings=st.lists(finding, max_size=4).map(tuple),
)


def _check_sarif(log: dict[str, Any], files: list[LintedFile]) -> None:
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [rule.id for rule in RULES]
    results = run["results"]
    assert len(results) == sum(len(file.findings) for file in files)
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note", "none")
        assert isinstance(result["message"]["text"], str)
        (location,) = result["locations"]
        assert isinstance(location["physicalLocation"]["artifactLocation"]["uri"], str)
        line = location["physicalLocation"]["region"]["startLine"]
        assert isinstance(line, int)
        assert line >= 1


@fuzz
@given(st.lists(linted, max_size=3))
def test_sarif_of_any_findings_is_valid_json_in_the_sarif_shape(files: list[LintedFile]) -> None:
    log = sarif(files, tool_version="0.0.0")
    text = json.dumps(log, ensure_ascii=False)
    again = json.loads(text)
    assert again == log
    _check_sarif(again, files)
