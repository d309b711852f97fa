"""Every example under examples/ is what it claims to be: its YAML parses (Bitbucket's also through
keyless' own pipeline reader), its shell parses, and every keyless command in it, with every
flag, is one the CLI accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from keyless.cli.main import build_parser
from keyless.local.pipeline import PipeCall, load_pipeline_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Files of examples/ that hold CI configuration or shell (the site's pages do not).
CONFIGS = sorted(
    path
    for path in EXAMPLES.rglob("*")
    if path.is_file() and path.suffix in (".yml", ".yaml", ".sh") and path.name != "variables.yml"
)
#: Words that start a shell command and are not the command itself.
_PREFIXES = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "time", "env"})
_SEPARATORS = frozenset({"&&", "||", ";", "|", "(", ")", "&", ";;"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_COMMENT_COMMAND = re.compile(r"^\s*#\s+(keyless .*)$", re.MULTILINE)
_REDIRECTION = re.compile(r"\d*(?:>>|>|<)(?:&\d+|\s*[^\s;|&]+)")


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def shell_texts(path: Path) -> list[str]:
    """The shell in ``path``: the file itself, or every string of the YAML; plus the commands
    its comments tell a person to run (``#   keyless provision ... \\`` and the lines after)."""
    text = path.read_text(encoding="utf-8")
    comments = "\n".join(
        match.group(1) for match in _COMMENT_COMMAND.finditer(text.replace("\\\n#", " "))
    )
    if path.suffix == ".sh":
        return [text, comments]
    return [*_strings(yaml.safe_load(text)), comments]


def _words(line: str) -> list[str]:
    # Redirections are the shell's, not the command's.
    line = _REDIRECTION.sub(" ", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def keyless_commands(text: str) -> list[list[str]]:
    """The argument lists of every `keyless ...` command in shell ``text`` (inside `$(...)` too,
    and after `keyless exec ... --`)."""
    text = text.replace("\\\n", " ")
    pieces = [text, *_SUBSTITUTION.findall(text)]
    found: list[list[str]] = []
    for piece in pieces:
        for line in piece.splitlines():
            try:
                words = _words(line)
            except ValueError:  # a line cut inside $(...) by the substitution pattern
                continue
            command: list[str] = []
            for word in [*words, ";"]:
                if word in _SEPARATORS:
                    found.extend(_keyless(command))
                    command = []
                else:
                    command.append(word)
    return found


def _keyless(command: list[str]) -> list[list[str]]:
    words = list(command)
    while words and (words[0] in _PREFIXES or _ASSIGNMENT.match(words[0])):
        words.pop(0)
    cleaned = words
    if not cleaned or Path(cleaned[0]).name != "keyless":
        return []
    argv = cleaned[1:]
    nested: list[list[str]] = []
    if argv[:1] == ["exec"] and "--" in argv:
        nested = _keyless(argv[argv.index("--") + 1 :])
    return [argv, *nested]


def check(argv: list[str]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # --help or an argparse exit
        pytest.fail(f"keyless {shlex.join(argv)}: exits {exc.code}")
    except Exception as exc:
        pytest.fail(f"keyless {shlex.join(argv)}: {exc}")


def test_the_examples_are_there() -> None:
    names = {path.relative_to(EXAMPLES).as_posix() for path in CONFIGS}
    assert {
        "bitbucket/bitbucket-pipelines.yml",
        "bitbucket/bitbucket-pipelines.keyless.yml",
        "bitbucket/recipe-snippet.sh",
        "bitbucket/keyless-snippet.sh",
        "github/deploy.yml",
        "gitlab/.gitlab-ci.yml",
        "circleci/config.yml",
    } <= names
    assert (EXAMPLES / "bitbucket" / "site" / "index.html").is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_keyless_command_and_flag_exists(path: Path) -> None:
    commands = [argv for text in shell_texts(path) for argv in keyless_commands(text)]
    if path.name.startswith("bitbucket-pipelines"):
        # An emulated pipe runs as `keyless pipe NAME` (locally; in Bitbucket, as the pipe).
        file = load_pipeline_file(path)
        pipelines = [file.default, *(p for _, p in file.branches), *file.custom.values()]
        steps = [step for pipeline in pipelines if pipeline for step in pipeline.steps]
        pipes = [c for s in steps for c in s.script if isinstance(c, PipeCall)]
        commands += [["pipe", str(pipe.emulated)] for pipe in pipes]
    if path.name != "recipe-snippet.sh":  # the snippet keyless replaces has none
        assert commands, f"{path} runs no keyless command"
    for argv in commands:
        check(argv)


@pytest.mark.parametrize(
    "path",
    [p for p in CONFIGS if p.suffix == ".sh"],
    ids=lambda p: p.name,
)
def test_the_shell_snippets_parse(path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - fixed program; the file is one of ours
        ["bash", "-n", str(path)],  # noqa: S607 - bash from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_bitbucket_pipelines_read_as_keyless_runs_them() -> None:
    pipes = load_pipeline_file(EXAMPLES / "bitbucket" / "bitbucket-pipelines.yml")
    main = pipes.select(branch="main")
    deploy = main.steps[-1]
    assert (deploy.name, deploy.oidc, deploy.deployment) == ("Deploy to S3", True, "production")
    (pipe,) = deploy.script
    assert isinstance(pipe, PipeCall)
    assert pipe.emulated == "aws-s3-deploy"
    assert set(pipe.variables) == {
        "AWS_DEFAULT_REGION",
        "AWS_OIDC_ROLE_ARN",
        "S3_BUCKET",
        "LOCAL_PATH",
    }
    assert [s.name for s in pipes.select(branch="feature/x").steps] == ["Check the site"]

    script = load_pipeline_file(EXAMPLES / "bitbucket" / "bitbucket-pipelines.keyless.yml")
    (step,) = script.select(branch="main").steps
    assert step.oidc
    assert step.deployment == "production"
    assert any("keyless assume" in str(command) for command in step.script)


def test_the_github_workflow_asks_for_a_token() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github" / "deploy.yml").read_text(encoding="utf-8"))
    assert workflow["permissions"]["id-token"] == "write"
    assert workflow["jobs"]["deploy"]["environment"] == "production"


def test_the_gitlab_job_has_an_id_token() -> None:
    config = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    assert config["deploy"]["id_tokens"]["AWS_OIDC_TOKEN"]["aud"] == "https://gitlab.com"


def test_the_checker_catches_a_flag_that_does_not_exist() -> None:
    (argv,) = keyless_commands('x="$(keyless assume --role_arn "$ARN")"')
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --role_arn"):
        check(argv)
    assert keyless_commands("keyless exec --role-arn A -- keyless deploy site s3://b") == [
        ["exec", "--role-arn", "A", "--", "keyless", "deploy", "site", "s3://b"],
        ["deploy", "site", "s3://b"],
    ]
    assert keyless_commands("if [ x ]; then keyless doctor > out 2>&1; fi") == [["doctor"]]
    assert keyless_commands("command -v keyless >/dev/null || pip install keyless") == []
