"""Hostile pipeline YAML through ``keyless local pipeline``'s parser: only ``KeylessError``
escapes, and whatever loads is within the bounds of ``keyless.limits`` (YAML_MAX_*).

Small by default; a longer run: ``KEYLESS_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/unit/fuzz``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyless import limits
from keyless.errors import KeylessError
from keyless.local.pipeline import load_pipeline_file, load_variables
from keyless.yamlsafe import load_yaml_text

EXAMPLES = int(os.environ.get("KEYLESS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEYS = ["pipelines", "default", "branches", "custom", "step", "script", "name", "services",
         "parallel", "stage", "steps", "oidc", "deployment", "image", "variables", "pipe",
         "<<", "max-time", "workspace", "repository", "deployments"]  # fmt: skip
_SYNTAX = [*"[]{}:,-&*!|>'\"#?%@`\\\n\t ", "&a ", "*a", "<<: ", "- ", "---", "..."]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(_KEYS),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=30,
)
#: Text made of YAML's own punctuation, keywords and anything else.
hostile_text = st.lists(
    st.sampled_from(_SYNTAX) | st.sampled_from(_KEYS) | st.text(max_size=4), max_size=80
).map("".join)


def bomb(levels: int, width: int, where: str) -> str:
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    top = f"*a{levels - 1}"
    body = {"services": f"services: {top}\n        script: [echo]", "script": f"script: {top}"}
    return "\n".join(lines) + f"\npipelines:\n  default:\n    - step:\n        {body[where]}\n"


def walked(value: Any) -> tuple[int, int]:
    """(nodes, depth) of a loaded value with every shared reference counted in full (memoised on
    identity, so a value that did load is measured without expanding it)."""
    memo: dict[int, tuple[int, int]] = {}

    def measure(item: Any) -> tuple[int, int]:
        if id(item) in memo:
            return memo[id(item)]
        if isinstance(item, list):
            parts = [measure(child) for child in item]
        elif isinstance(item, dict):
            parts = [measure(child) for pair in item.items() for child in pair]
        else:
            return (1, 1)
        found = (1 + sum(n for n, _ in parts), 1 + max((d for _, d in parts), default=0))
        memo[id(item)] = found
        return found

    return measure(value)


def _one_line(exc: KeylessError) -> None:
    assert "\n" not in str(exc), str(exc)


def _parse(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "bitbucket-pipelines.yml")
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        for load in (load_pipeline_file, load_variables):
            try:
                load(path)
            except KeylessError as exc:
                _one_line(exc)


def _within_limits(text: str) -> None:
    try:
        loaded = load_yaml_text(text, source="fuzz.yml")
    except KeylessError as exc:
        _one_line(exc)
        return
    nodes, depth = walked(loaded)
    assert nodes <= limits.YAML_MAX_NODES
    assert depth <= limits.YAML_MAX_DEPTH


@FUZZ
@given(hostile_text)
def test_hostile_text_raises_only_keyless_errors(text: str) -> None:
    _parse(text)
    _within_limits(text)


@FUZZ
@given(documents)
def test_random_documents_raise_only_keyless_errors(document: Any) -> None:
    text = yaml.safe_dump({"pipelines": document})
    _parse(text)
    _within_limits(text)


@FUZZ
@given(
    st.integers(1, 40),
    st.integers(1, 60),
    st.sampled_from(["services", "script"]),
)
def test_anchor_bombs_are_refused_or_within_the_limits(levels: int, width: int, where: str) -> None:
    text = bomb(levels, width, where)
    _parse(text)
    _within_limits(text)
