"""YAML keyless reads is bounded: size, nodes with aliases expanded, alias uses, nesting depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyless import limits
from keyless.errors import UsageError
from keyless.local.pipeline import PipelineError, load_pipeline_file, load_variables
from keyless.yamlsafe import YamlLimits, YamlWork, load_yaml_file, load_yaml_text
from tests.cli.helpers import run_cli


def bomb(levels: int, width: int) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: width**levels
    scalars to whatever walks it, in a few hundred bytes (the review's 517-byte file: 10 x 10)."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    lines.append("pipelines:\n  default:\n    - step:\n        services: *a" + str(levels - 1))
    lines.append("        script: [echo]")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def expanded_nodes(value: Any) -> int:
    """The oracle: nodes of the built Python value, counting every alias use in full."""
    if isinstance(value, list):
        return 1 + sum(expanded_nodes(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(expanded_nodes(k) + expanded_nodes(v) for k, v in value.items())
    return 1


def test_the_reviewed_bomb_is_refused_naming_the_file_limit_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bitbucket-pipelines.yml"
    path.write_text(bomb(10, 10))
    assert len(path.read_bytes()) < 700
    with pytest.raises(PipelineError) as caught:
        load_pipeline_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line ")
    assert "200,000 nodes" in message
    assert "YAML_MAX_NODES" in message
    assert "\n" not in message


def test_a_bomb_costs_its_text_not_its_expansion() -> None:
    # Every node's children are listed twice (on entering and on finishing it), once per distinct
    # node however many aliases point at it: the 10 x 10 bomb has about 130 distinct nodes.
    work = YamlWork()
    with pytest.raises(UsageError, match="nodes with aliases expanded"):
        load_yaml_text(bomb(10, 10), source="bomb.yml", work=work)
    assert 0 < work.listings <= 2 * 140


@pytest.mark.parametrize(
    ("levels", "width", "limit"),
    [
        (10, 10, "YAML_MAX_NODES"),
        (30, 2, "YAML_MAX_NODES"),  # deeper: 2**30
        (3, 1000, "YAML_MAX_NODES"),  # wider: 10**9, 2,000 alias uses
        (120, 1, "YAML_MAX_DEPTH"),  # a chain of single aliases nests one level per anchor
    ],
)
def test_deeper_and_wider_bombs_are_refused(levels: int, width: int, limit: str) -> None:
    with pytest.raises(UsageError, match=limit):
        load_yaml_text(bomb(levels, width), source="bomb.yml")


def test_a_bomb_of_many_aliases_stops_at_the_alias_limit() -> None:
    bounds = YamlLimits(max_aliases=50)
    with pytest.raises(
        UsageError, match=r"line 2: more than 50 alias uses \(limit YAML_MAX_ALIASES"
    ):
        load_yaml_text(bomb(2, 51), source="bomb.yml", bounds=bounds)


@pytest.mark.parametrize(
    "text",
    [
        nested(10_000),
        "{a: " * 10_000 + "}" * 10_000,
        "".join(f"{'  ' * level}a:\n" for level in range(300)) + "  " * 300 + "x\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_refused_before_python_recursion_runs_out(text: str) -> None:
    with pytest.raises(UsageError, match=r"line \d+: nesting deeper than 100 levels"):
        load_yaml_text(text, source="deep.yml")


def test_the_depth_limit_itself_passes_and_one_more_fails() -> None:
    depth = limits.YAML_MAX_DEPTH
    assert load_yaml_text(nested(depth), source="ok.yml") is not None
    with pytest.raises(UsageError, match="YAML_MAX_DEPTH"):
        load_yaml_text(nested(depth + 1), source="deep.yml")


def test_depth_counts_what_aliases_add() -> None:
    # Each anchor nests 60 levels and the second holds the first: 120 levels when walked, though
    # no part of the text nests past 61.
    inner = "[" * 59 + "x" + "]" * 59
    text = f"a: &a [{inner}]\nb: &b [{'[' * 58}*a{']' * 58}]\n"
    with pytest.raises(UsageError, match="nesting deeper than 100 levels with aliases expanded"):
        load_yaml_text(text, source="deep.yml")


def test_the_node_limit_is_exact_with_aliases_expanded() -> None:
    text = "a: &a [x, y, {k: &s [1, 2]}]\nb: [*a, *a, *s]\nc: {<<: {m: *a}}\n"
    count = expanded_nodes(load_yaml_text(text, source="t.yml"))
    # The merge key `<<` and its mapping are nodes of the text that the built value folds away.
    count += 2
    assert load_yaml_text(text, source="t.yml", bounds=YamlLimits(max_nodes=count))
    with pytest.raises(UsageError, match=f"more than {count - 1} nodes"):
        load_yaml_text(text, source="t.yml", bounds=YamlLimits(max_nodes=count - 1))


def test_the_alias_limit_is_exact() -> None:
    text = "a: &a x\nb: [*a, *a, *a]\n"
    assert load_yaml_text(text, source="t.yml", bounds=YamlLimits(max_aliases=3))
    with pytest.raises(UsageError, match=r"t.yml line 2: more than 2 alias uses"):
        load_yaml_text(text, source="t.yml", bounds=YamlLimits(max_aliases=2))


def test_the_size_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "v.yml"
    path.write_text("a: " + "b" * 97)
    assert len(path.read_bytes()) == 100
    assert load_yaml_file(path, bounds=YamlLimits(max_bytes=100)) == {"a": "b" * 97}
    with pytest.raises(UsageError, match="larger than 99 bytes"):
        load_yaml_file(path, bounds=YamlLimits(max_bytes=99))
    # Counted in UTF-8 bytes, not characters.
    with pytest.raises(UsageError, match="larger than 10 bytes"):
        load_yaml_text("a: " + "é" * 4, source="v.yml", bounds=YamlLimits(max_bytes=10))


def test_an_anchor_that_contains_itself_is_refused() -> None:
    with pytest.raises(UsageError, match=r"line 1: an anchor contains an alias of itself"):
        load_yaml_text("a: &a [x, {b: *a}]\n", source="loop.yml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when: 2024-13-45\n", "has a value YAML cannot represent"),
        ("n: " + "1" * 5000 + "\n", "has a value YAML cannot represent"),
        ("a: [\n", r"is not valid YAML \(line 2\)"),
        ("a: \x07\n", r"is not valid YAML \(character 3\)"),
        ("a: 1\n---\nb: 2\n", "is not valid YAML"),
    ],
)
def test_values_and_syntax_yaml_cannot_build_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load_yaml_text(text, source="bad.yml")
    assert "\n" not in str(caught.value)


def test_real_anchors_and_merges_still_load() -> None:
    text = (
        "definitions:\n  steps:\n    - step: &build\n        name: Build\n        script: [make]\n"
        "pipelines:\n  default:\n    - step: *build\n    - step:\n        <<: *build\n"
        "        name: Again\n"
    )
    loaded = load_yaml_text(text, source="p.yml")
    assert loaded["pipelines"]["default"][1]["step"] == {"name": "Again", "script": ["make"]}


def test_a_variables_file_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "variables.yml"
    path.write_text("repository: " + nested(500) + "\n")
    with pytest.raises(PipelineError, match=r"--variables .* line 1: nesting deeper"):
        load_variables(path)


def test_the_cli_refuses_a_bomb_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yml").write_text(bomb(10, 10))
    # Past Python's recursion limit of 1000 frames (the old `internal error (RecursionError)`).
    (tmp_path / "deep.yml").write_text("pipelines:\n  default: " + nested(1500) + "\n")
    for name in ("bomb.yml", "deep.yml"):
        result = run_cli(["local", "pipeline", name])
        assert result.code == 2
        assert result.stderr.startswith(f"error: {name} line ")
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
