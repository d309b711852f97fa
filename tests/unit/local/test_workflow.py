"""keyless local workflow's pure parts: the ``${{ }}`` evaluator (GitHub's documented semantics,
hostile input bounded), the environment-file reader (delimiters, hostile ones included), the
masker and the ``::command::`` lines, and the workflow file's permissions and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.limits import WORKFLOW_EXPRESSION_MAX_CHARS, WORKFLOW_EXPRESSION_MAX_DEPTH
from keyless.local.workflow import WorkflowError, id_token_granted, load_workflow
from keyless.local.workflow.commands import (
    FileCommandError,
    Masker,
    StdoutCommands,
    parse_env_file,
    parse_path_file,
)
from keyless.local.workflow.expressions import (
    Contexts,
    ExpressionError,
    condition,
    evaluate,
    interpolate,
)

CONTEXTS = Contexts(
    values={
        "env": {"STAGE": "Prod", "EMPTY": ""},
        "inputs": {"who": "octo"},
        "steps": {"build": {"outputs": {"aws-account-id": "123456789012"}, "outcome": "success"}},
        "github": {"ref": "refs/heads/main", "event_name": "push"},
        "secrets": {"TOKEN": "s3cr3t-value"},
        "vars": {"BUCKET": "site"},
    }
)
FAILED = Contexts(values=CONTEXTS.values, failed=True)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("env.STAGE == 'prod'", True),  # strings compare ignoring case
        ("env.STAGE != 'prod'", False),
        ("inputs.who", "octo"),
        ("steps.build.outputs.aws-account-id", "123456789012"),
        ("steps.build.outputs['aws-account-id']", "123456789012"),
        ("steps.missing.outputs.x", None),
        ("github.ref == 'refs/heads/main' && 'yes' || 'no'", "yes"),
        ("github.ref == 'refs/tags/v1' && 'yes' || 'no'", "no"),
        ("env.EMPTY || 'fallback'", "fallback"),
        ("!env.EMPTY", True),
        ("!!inputs.who", True),
        ("1 == '1'", True),  # mismatched types compare as numbers
        ("null == 0", True),
        ("true == 1", True),
        ("'abc' == 0", False),  # NaN equals nothing
        ("0x10 == 16", True),
        ("format('{0}/{1}-{{x}}', vars.BUCKET, 3)", "site/3-{x}"),
        ("contains(github.ref, 'MAIN')", True),
        ("startsWith(github.ref, 'refs/heads/')", True),
        ("endsWith(github.ref, 'main')", True),
        ("'it''s'", "it's"),
        ("(true || false) && !false", True),
        ("secrets.TOKEN", "s3cr3t-value"),
        ("secrets.MISSING", None),
    ],
)
def test_expressions_follow_githubs_documented_semantics(expression: str, expected: object) -> None:
    assert evaluate(expression, CONTEXTS) == expected


def test_interpolation_renders_values_as_github_does() -> None:
    text = "${{ 1 }} ${{ 1.5 }} ${{ true }} [${{ null }}] ${{ inputs.who }} ${{ '}}' }}"
    assert interpolate(text, CONTEXTS) == "1 1.5 true [] octo }}"
    assert interpolate("no expressions $HOME", CONTEXTS) == "no expressions $HOME"


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("runner.os", "context 'runner'"),
        ("matrix.python", "context 'matrix'"),
        ("hashFiles('**/x')", "hashFiles()"),
        ("toJSON(github)", "toJSON()"),
        ("1 < 2", "'<'"),
        ("github.*", "'*'"),
        ("env.A ; rm -rf /", "';'"),
        ("format('{1}', 'a')", "'{1}'"),
        ("(", "ends where"),
        ("'unterminated", "not closed"),
    ],
)
def test_what_is_not_supported_is_refused_naming_it(expression: str, named: str) -> None:
    with pytest.raises(ExpressionError) as refused:
        evaluate(expression, CONTEXTS)
    assert named in refused.value.message
    assert "\n" not in refused.value.message


def test_hostile_expressions_are_bounded() -> None:
    # Past the runner's length bound: refused before any parsing.
    with pytest.raises(ExpressionError, match="longer than"):
        evaluate("'" + "a" * WORKFLOW_EXPRESSION_MAX_CHARS + "'", CONTEXTS)
    # Deep nesting within the length bound: refused at the depth bound, no RecursionError.
    for opener in ("(", "!", "format('{0}', "):
        deep = opener * (WORKFLOW_EXPRESSION_MAX_DEPTH + 1) + "true"
        with pytest.raises(ExpressionError, match="deeper than"):
            evaluate(deep, CONTEXTS)
    # At the bound it evaluates.
    assert evaluate("(" * (WORKFLOW_EXPRESSION_MAX_DEPTH - 1) + "1" + ")" * 49, CONTEXTS) == 1
    # format() cannot build more than the value bound.
    growing = "format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', " * 7 + "'aaaaaaaaaa'" + ")" * 7
    with pytest.raises(ExpressionError, match="more than"):
        evaluate(growing, CONTEXTS)
    with pytest.raises(ExpressionError, match="not closed"):
        interpolate("${{ 'a' ", CONTEXTS)


def test_if_gets_githubs_implicit_success_and_its_optional_braces() -> None:
    assert condition(None, CONTEXTS) is True
    assert condition(None, FAILED) is False
    assert condition("inputs.who == 'octo'", CONTEXTS) is True
    assert condition("inputs.who == 'octo'", FAILED) is False  # success() && ...
    assert condition("${{ inputs.who == 'octo' }}", CONTEXTS) is True
    assert condition("failure()", FAILED) is True
    assert condition("failure()", CONTEXTS) is False
    assert condition("always() && inputs.who == 'octo'", FAILED) is True
    assert condition("success() || failure()", FAILED) is True
    # Text around ${{ }} makes the condition a string: any non-empty string is true on GitHub.
    assert condition("${{ false }} == 'x'", CONTEXTS) is True


def test_env_files_read_as_the_runner_reads_them() -> None:
    text = (
        "A=1\n"
        "B=x=y<<z\n"  # the first = comes first: NAME=value
        "\n"
        "C<<EOF\nline 1\n\nline=3\nEOF\n"
        "D<<=weird\nv\n=weird\n"  # << first: the delimiter is '=weird'
        "E=\n"
        "F<<EOF\nEOF\n"
    )
    assert parse_env_file(text, what="GITHUB_ENV") == [
        ("A", "1"),
        ("B", "x=y<<z"),
        ("C", "line 1\n\nline=3"),
        ("D", "v"),
        ("E", ""),
        ("F", ""),
    ]
    assert parse_path_file("/a\n\n/b c\n") == ["/a", "/b c"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NAME<<EOF\nvalue s3cr3t-value\n", "matching delimiter not found"),
        ("NAME<<EOF\nvalue\n EOF\n", "matching delimiter not found"),  # not alone on its line
        ("NAME<<\nvalue\n", "needs a delimiter"),
        ("=value\n", "the name is empty"),
        ("<<EOF\nx\nEOF\n", "the name is empty"),
        ("just text s3cr3t-value\n", "expected NAME=value"),
    ],
)
def test_hostile_env_files_fail_naming_the_line_never_its_value(text: str, message: str) -> None:
    with pytest.raises(FileCommandError) as refused:
        parse_env_file(text, what="GITHUB_OUTPUT")
    assert message in refused.value.message
    assert "line 1" in refused.value.message
    assert "s3cr3t" not in refused.value.message


def test_a_delimiter_repeated_many_times_costs_one_pass() -> None:
    # Each block ends at the next delimiter: many blocks, all read, no quadratic rescans.
    text = "".join(f"N{i}<<D\nv{i}\nD\n" for i in range(5000))
    pairs = parse_env_file(text, what="GITHUB_ENV")
    assert len(pairs) == 5000
    assert pairs[-1] == ("N4999", "v4999")


def test_the_masker_masks_values_their_lines_and_the_longest_first() -> None:
    masker = Masker(["s3cr3t-value", "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"])
    masker.add("s3cr3t")
    assert masker("x s3cr3t-value y s3cr3t") == "x *** y ***"
    assert masker("line AAAABBBBCCCC") == "line ***"
    assert masker("nothing here") == "nothing here"


def test_stdout_commands_mask_annotate_and_stop() -> None:
    masker = Masker()
    commands = StdoutCommands(masker)
    assert commands.line("::add-mask::hidden%0Avalue").text is None
    assert masker("a hidden b") == "a *** b"
    assert masker("value") == "***"
    assert commands.line("::warning file=app.py,title=Careful::look").text == (
        "Warning (app.py): Careful: look"
    )
    assert commands.line("::group::Install").text == "> Install"
    assert commands.line("::endgroup::").text is None
    assert commands.line("::stop-commands::pause123").text is None
    assert commands.line("::add-mask::notmasked").text == "::add-mask::notmasked"
    assert commands.line("::pause123::").text is None
    assert commands.line("::add-mask::nowmasked").text is None
    assert "nowmasked" in masker
    assert "notmasked" not in masker
    legacy = commands.line("::set-output name=x::1")
    assert legacy.output == ("x", "1")
    assert commands.line("plain ::text::").text == "plain ::text::"


def _workflow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("workflow_level", "job_level", "granted"),
    [
        ("permissions:\n  id-token: write\n", "", True),
        ("permissions: write-all\n", "", True),
        ("", "    permissions:\n      id-token: write\n", True),
        ("", "", False),  # GitHub's default for id-token is none
        ("permissions: read-all\n", "", False),
        # A job's permissions replace the workflow's entirely.
        ("permissions:\n  id-token: write\n", "    permissions:\n      contents: read\n", False),
    ],
)
def test_id_token_needs_write_permission(
    tmp_path: Path, workflow_level: str, job_level: str, granted: bool
) -> None:
    text = (
        f"on: push\n{workflow_level}jobs:\n  deploy:\n{job_level}    steps:\n      - run: 'true'\n"
    )
    workflow = load_workflow(_workflow(tmp_path, text))
    assert id_token_granted(workflow, workflow.job("deploy")) is granted


@pytest.mark.parametrize(
    ("job", "named"),
    [
        ("    strategy: {matrix: {py: [1]}}\n    steps: [{run: 'true'}]\n", "strategy"),
        ("    services: {db: {image: x}}\n    steps: [{run: 'true'}]\n", "services"),
        ("    needs: build\n    steps: [{run: 'true'}]\n", "needs"),
        ("    uses: ./.github/workflows/other.yml\n", "uses"),
        ("    steps: [{run: 'a', uses: 'b'}]\n", "exactly one of"),
    ],
)
def test_jobs_a_local_run_cannot_honour_are_refused(tmp_path: Path, job: str, named: str) -> None:
    path = _workflow(tmp_path, f"on: push\njobs:\n  deploy:\n{job}")
    with pytest.raises(WorkflowError, match=named):
        load_workflow(path).job("deploy")


def test_the_job_is_named_or_the_only_one(tmp_path: Path) -> None:
    two = "on: push\njobs:\n  a: {steps: [{run: 'true'}]}\n  b: {steps: [{run: 'true'}]}\n"
    workflow = load_workflow(_workflow(tmp_path, two))
    with pytest.raises(WorkflowError, match="choose one with --job"):
        workflow.job(None)
    with pytest.raises(WorkflowError, match="no job 'c'"):
        workflow.job("c")
    assert workflow.job("b").id == "b"
