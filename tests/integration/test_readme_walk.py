"""README.md walked top to bottom on a fresh stack: every ``sh`` block, in order, run by bash in a
copy of this repository, against one ``keyless local serve`` whose ``export`` lines are in every
block's environment (the README's "paste the export lines"; they are also the credentials that
may write IAM). Each block must exit 0, or the code its ``<!-- readme-walk: exit N -->`` names.

The substitutions a user following the README on a laptop makes, each one here:

- ``make dev``/``make test`` are no-ops (this suite is ``make test``, run from the ``.venv`` that
  ``make dev`` made; the copy's ``.venv`` links to it), ``make demo`` is ``keyless demo`` (what it
  runs once ``.venv`` exists), ``pip install keyless`` is a no-op (keyless is on PATH);
- ``keyless local serve`` is the walk's own stack, already running (ephemeral ports: the machine is
  shared, so not the README's ``--port 4600``);
- ``keyless provision`` and ``trust build`` name the local stack's issuer of their scope
  (``--issuer``), as ``local pipeline --print-scope`` does;
- ``E2EXAMPLE123`` is the id of the user's distribution (one in front of ``acme-site``); the
  bucket ``acme-site`` exists, ``public/`` is a small site (a user's build output), and
  ``infra/role.yaml`` and ``main.tf`` are IaC of a role (``trust build``'s templates);
- the quick starts are alternatives (one per CI) that one account holds side by side: each one's
  ``site-deploy`` role is its own (``site-deploy-bitbucket``, ...); ``$AWS_OIDC_ROLE_ARN`` and
  ``$ROLE`` are the ARN the last ``provision`` of the job's CI printed;
- a block that runs in a CI job (``<!-- readme-walk: job CI SCOPE... -->``) runs under
  ``keyless local run --ci CI SCOPE...``, the laptop's way to be that job;
- ``<!-- readme-walk: cwd site-repo -->`` runs a block in "your repository": the example
  workflow as .github/workflows/deploy.yml and the example site;
- ``<!-- readme-walk: skip (reason) -->`` skips a block that cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless.cli.main import build_parser
from keyless.cli.scope_args import scope_from_args
from keyless.local.jobs import emulated
from keyless.local.served import find_running, scope_issuer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
#: Seconds one block may take (the demos included, on a busy 2-core machine).
BLOCK_TIMEOUT_SECONDS = 300
SERVE_TIMEOUT_SECONDS = 60
_FENCE = re.compile(r"^( *)```(sh)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_DIRECTIVE = re.compile(r"^ *<!-- readme-walk: (.+?) -->\n", re.MULTILINE)
_ARN = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+")
_LINE_SUBSTITUTIONS = {
    re.compile(r"^(\s*)make (dev|test)\b.*$"): r"\1true",
    re.compile(r"^(\s*)make demo\b.*$"): r"\1keyless demo",
    re.compile(r"^(\s*)keyless local serve\b.*$"): r"\1true",
    re.compile(r"^(\s*)pip install keyless\S*\s*$"): r"\1true",
    re.compile(r"\bsome-program\b"): "cat >/dev/null",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    line: int
    text: str
    directives: tuple[str, ...]
    #: The ``## `` heading the block is under.
    section: str

    def directive(self, name: str) -> str | None:
        for directive in self.directives:
            word, _, rest = directive.partition(" ")
            if word == name:
                return rest
        return None


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        directives: list[str] = []
        # The directives are the comment lines right above the fence.
        while found := re.search(r"^ *<!-- readme-walk: (.+?) -->\n\Z", before, re.MULTILINE):
            directives.insert(0, found.group(1))
            before = before[: found.start()]
        blocks.append(
            Block(
                line=text.count("\n", 0, match.start()) + 1,
                text=textwrap.dedent(match.group(3)),
                directives=tuple(directives),
                section=re.findall(r"^## (.+)$", before, re.MULTILINE)[-1:][0]
                if re.search(r"^## ", before, re.MULTILINE)
                else "",
            )
        )
    return blocks


def test_every_directive_is_a_known_one() -> None:
    for block in readme_blocks():
        for directive in block.directives:
            word = directive.split(" ", 1)[0]
            assert word in {"skip", "job", "exit", "cwd"}, (block.line, directive)
            if word == "skip":
                assert re.fullmatch(r"skip \(.+\)", directive), (block.line, directive)


def _logical_lines(text: str) -> list[str]:
    """The block's lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def _with_local_issuer(line: str, state: Path) -> str:
    """``keyless provision|trust build ...`` with the local issuer of its scope, unless it names
    one."""
    stripped = line.strip()
    building = stripped.startswith("keyless trust build")
    if not (building or stripped.startswith("keyless provision")):
        return line
    if "--issuer" in stripped or "$(" in stripped:  # named, or from --print-scope
        return line
    command, redirect, rest = stripped.partition(" > ")
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args(argv)
    info = find_running(state)
    assert info is not None
    issuer = scope_issuer(info, emulated(args.ci), scope_from_args(args))
    # No --ca-bundle: provision trusts the exported KEYLESS_LOCAL_CA_BUNDLE for a loopback issuer.
    extra = f" --issuer {shlex.quote(issuer)}"
    return command + extra + (redirect + rest if redirect else "")


def _script(block: Block, state: Path, values: dict[str, str]) -> str:
    lines = []
    quick_start = block.section.startswith("Quick start: ")
    ci = block.section.removeprefix("Quick start: ").split(" ", 1)[0].lower()
    role = f"site-deploy-{ci}"
    text = block.text
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    for line in _logical_lines(text):
        for pattern, replacement in _LINE_SUBSTITUTIONS.items():
            line = pattern.sub(replacement, line)
        if quick_start:
            line = re.sub(r"\bsite-deploy\b", role, line)
        lines.append(_with_local_issuer(line, state))
    return "\n".join(lines) + "\n"


def _provisioned_ci(block: Block) -> str | None:
    found = re.search(r"keyless provision --ci (\w+)", block.text)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Walk:
    project: Path
    state: Path
    env: dict[str, str]


@contextlib.contextmanager
def _served(state: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    serve = subprocess.Popen(  # noqa: S603 - keyless itself
        [str(BIN / "keyless"), "local", "serve", "--state", str(state)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    exports: dict[str, str] = {}
    try:
        assert serve.stdout is not None
        for line in serve.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = shlex.split(value)[0] if value else ""
            if line.startswith("# keyless local stack running"):
                break
        assert exports, "keyless local serve printed no exports"
        yield exports
    finally:
        if serve.stdout is not None:
            serve.stdout.close()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=SERVE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


def _project(tmp_path: Path) -> Path:
    """A fresh clone's files (tracked and untracked-not-ignored), ``.venv`` linked, ``public/``."""
    project = tmp_path / "keyless"
    files = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(ROOT), *files],  # noqa: S607 - git from PATH
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        # The fake keys of the tests and benchmarks would trip the secret scanner; the README runs
        # neither.
        if source.is_file() and not name.startswith(("tests/", "bench/")):
            target = project / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (project / ".venv").symlink_to(BIN.parent)
    site = project / "public"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>home</title>\n")
    (site / "assets" / "app.js").write_text("console.log('hi')\n")
    # A user's IaC for `keyless audit infra/*.yaml main.tf`: keyless' own templates of a role.
    scope = ["--ci", "github", "--repository", "octo-org/site", "--environment", "production"]
    (project / "infra").mkdir()
    for fmt, path in (("cloudformation", "infra/role.yaml"), ("terraform", "main.tf")):
        built = subprocess.run(  # noqa: S603 - keyless itself
            [
                str(BIN / "keyless"),
                "trust",
                "build",
                *scope,
                "--account-id",
                "123456789012",
                *("--format", fmt),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        (project / path).write_text(built.stdout)
    return project


def _user_repository(tmp_path: Path) -> None:
    """``site-repo``: a user's repository with the example workflow (its ``pip install keyless``
    a no-op) as .github/workflows/deploy.yml, and a site, for ``<!-- readme-walk: cwd site-repo
    -->``."""
    repo = tmp_path / "site-repo"
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = (ROOT / "examples" / "github" / "deploy.yml").read_text(encoding="utf-8")
    (workflows / "deploy.yml").write_text(text.replace("run: pip install keyless", "run: true"))
    shutil.copytree(ROOT / "examples" / "bitbucket" / "site", repo / "site")


def _distribution(env: dict[str, str]) -> str:
    """The user's CloudFront distribution in front of acme-site, for ``--invalidate ID``."""
    import boto3

    cloudfront = boto3.client(
        "cloudfront",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    created = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "readme-walk",
            "Comment": "acme-site",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "s3",
                        "DomainName": "acme-site.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "s3",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        }
    )
    return str(created["Distribution"]["Id"])


def test_the_readme_top_to_bottom(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _user_repository(tmp_path)
    state = tmp_path / "state"
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYLESS_"))},
        "HOME": str(tmp_path / "home"),
        "AWS_PAGER": "",
        "LANG": "C.UTF-8",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    (tmp_path / "home").mkdir()
    roles: dict[str, str] = {}
    with _served(state, base) as exports:
        env = {**base, **exports}
        admin = subprocess.run(  # noqa: S603 - the AWS CLI of this venv
            [str(BIN / "aws"), "s3", "mb", "s3://acme-site"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert admin.returncode == 0, admin.stderr
        values = {"E2EXAMPLE123": _distribution(env)}
        walked = []
        for block in readme_blocks():
            if block.directive("skip") is not None:
                continue
            script = _script(block, state, values)
            expected = int(block.directive("exit") or 0)
            job = block.directive("job")
            if job is not None:
                ci = job.split()[0]
                role = roles.get(ci, "")
                script = (
                    f"export AWS_OIDC_ROLE_ARN={shlex.quote(role)} ROLE={shlex.quote(role)}\n"
                    + script
                )
                argv = [
                    str(BIN / "keyless"),
                    "local",
                    "run",
                    "--ci",
                    *shlex.split(job),
                    "--",
                    "bash",
                    "-e",
                    "-o",
                    "pipefail",
                    "-c",
                    script,
                ]
            else:
                argv = ["bash", "-e", "-o", "pipefail", "-c", script]
            cwd = block.directive("cwd")
            done = subprocess.run(  # noqa: S603 - the README's own commands
                argv,
                cwd=project if cwd is None else tmp_path / cwd.split()[0],
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_SECONDS,
                check=False,
            )
            assert done.returncode == expected, (
                f"README.md line {block.line}: exit {done.returncode}, expected {expected}\n"
                f"--- script\n{script}--- stdout\n{done.stdout[-3000:]}\n"
                f"--- stderr\n{done.stderr[-3000:]}"
            )
            provisioned = _provisioned_ci(block)
            arns = _ARN.findall(done.stdout)
            if provisioned is not None and arns:
                roles[provisioned] = arns[-1]
            walked.append(block.line)
    skipped = [b.line for b in readme_blocks() if b.directive("skip") is not None]
    assert len(walked) >= 20, walked
    assert len(skipped) <= 1, f"blocks skipped: {skipped}; only what cannot run here may be"
    # `keyless token --write ~/.aws/...` in a job wrote into the job's HOME, not the user's.
    assert not (tmp_path / "home" / ".aws").exists()
