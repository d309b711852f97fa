"""``keyless local workflow`` and ``keyless local run``: a GitHub Actions job, or one command, run
as the CI would run it, against the local stack."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keyless import process
from keyless.ci.base import JobClaims, RawToken, TokenEndpoint
from keyless.cli.console import Console
from keyless.cli.local_args import (
    STATE_HELP,
    TEMPORARY_STACK_FAILED,
    add_state_argument,
    job_run,
    stack_or_temporary,
    state_dir_of,
)
from keyless.cli.scope_args import scope_from_args
from keyless.errors import UsageError

# --- workflow (GitHub Actions) -------------------------------------------------------------------

_WORKFLOW_EPILOG = f"""\
Runs one job's steps in order, as GitHub's runner does: `run:` in bash (`bash --noprofile --norc
-eo pipefail {{0}}`, or the step's `shell:`), `working-directory`, workflow/job/step `env`, `if:`,
`continue-on-error`, `timeout-minutes`, step `id` and outputs; $GITHUB_ENV, $GITHUB_OUTPUT,
$GITHUB_PATH and $GITHUB_STEP_SUMMARY between steps; `::add-mask::` and the other workflow
commands. `${{{{ }}}}` expressions: env, inputs, steps, github, secrets and vars contexts, literals,
== != && || !, format(), contains(), startsWith(), endsWith(), success(), failure(), always();
anything else is refused by name.

The job has GitHub's variables (GITHUB_REPOSITORY, GITHUB_REF, GITHUB_SHA, GITHUB_WORKSPACE, ...),
a private HOME, AWS on the local stack (as `keyless local run --ci github`), and
ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN only when the job (or else the workflow) has `permissions:
id-token: write`. The token's sub names --repository and the job's `environment:`.

uses: actions/checkout (the working tree's files, tracked and untracked-not-ignored, copied into
$GITHUB_WORKSPACE), actions/setup-python (an interpreter of that version on PATH or in pyenv,
else refused), aws-actions/configure-aws-credentials and keyless' own action (`uses: ./` in
keyless' repository, OWNER/keyless@REF), both as `keyless action configure-aws-credentials`.
Any other action is refused.

--secrets FILE and --vars FILE: a YAML or JSON mapping NAME: value; secrets are shown as ***
everywhere. --input NAME=VALUE: workflow_dispatch inputs (then the event is workflow_dispatch).

{STATE_HELP}

Exit codes: 0 the job succeeded; else the exit code of its first failed step; 2 an unusable file,
job or flag.
"""


def register_workflow(commands: Any) -> None:
    workflow = commands.add_parser(
        "workflow",
        help="run a GitHub Actions job's steps here, against the local stack",
        description="Run one job of a GitHub Actions workflow here, as GitHub's runner would.",
        epilog=_WORKFLOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    workflow.add_argument("file", metavar="WORKFLOW.yml", type=Path)
    workflow.add_argument("--job", metavar="ID", help="the job to run (default: the only one)")
    workflow.add_argument(
        "--repository", metavar="OWNER/REPO", help="the repository (default: local/FOLDER)"
    )
    workflow.add_argument(
        "--branch", metavar="B", help="the branch (default: the checked-out one, else main)"
    )
    workflow.add_argument("--event", metavar="NAME", help="event_name (default: push)")
    workflow.add_argument(
        "--input", metavar="NAME=VALUE", action="append", default=[], help="a dispatch input"
    )
    workflow.add_argument("--secrets", metavar="FILE", type=Path, help="secrets (YAML/JSON map)")
    workflow.add_argument("--vars", metavar="FILE", type=Path, help="variables (YAML/JSON map)")
    workflow.add_argument(
        "--var", metavar="NAME=VALUE", action="append", default=[], help="one variable"
    )
    add_state_argument(workflow)
    workflow.set_defaults(handler=run_workflow)


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"{flag} {item!r} is not NAME=VALUE")
        pairs[name] = value
    return pairs


def run_workflow(args: argparse.Namespace, console: Console) -> int:
    from keyless.local import workflow as gha
    from keyless.local.pipeline import git_checkout

    path: Path = args.file
    definition = gha.load_workflow(path)
    job = definition.job(args.job)
    folder = path.resolve().parent
    repo_dir = folder.parent.parent if folder.parts[-2:] == (".github", "workflows") else folder
    branch, commit = git_checkout(repo_dir)
    inputs = {**definition.inputs, **_pairs(args.input, "--input")}
    variables = gha.load_values(args.vars, what="--vars") if args.vars else {}
    variables |= _pairs(args.var, "--var")
    run = gha.WorkflowRun(
        workflow=definition,
        job=job,
        repo_dir=repo_dir,
        repository=args.repository or f"local/{repo_dir.name}",
        branch=args.branch or branch or "main",
        commit=commit,
        event=args.event or ("workflow_dispatch" if args.input else "push"),
        inputs=inputs,
        secrets=gha.load_values(args.secrets, what="--secrets") if args.secrets else {},
        variables=variables,
    )
    state_dir = state_dir_of(args, console)
    with process.signals_interrupt(), contextlib.ExitStack() as exit_stack:
        info, temporary = stack_or_temporary(
            state_dir, console, exit_stack, prefix="keyless-workflow-"
        )
        result = gha.run_job(run, stack=info, base_env=console.env, log=console.stdout)
        if temporary and result.exit_code != 0:
            console.info(TEMPORARY_STACK_FAILED)
    return result.exit_code


# --- run -----------------------------------------------------------------------------------------


def run_run(args: argparse.Namespace, console: Console) -> int:
    from keyless.local.job_files import job_folders
    from keyless.local.jobs import emulated
    from keyless.local.run import JobProcess, job_process_environment
    from keyless.local.served import RemoteTokens, check_issuer

    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("give the command to run after --, e.g. -- keyless token --show-claims")
    if args.home is not None and not args.home.is_dir():
        raise UsageError(f"--home {args.home} is not an existing folder; create it first")
    provider = emulated(args.ci)
    scope = scope_from_args(args)
    run = job_run(args)
    audiences = args.audience or ()
    # Refuse a job the CI would not run before any stack starts for it.
    provider.job_environment(scope, run, tokens=_Placeholders(), audiences=audiences)
    with tempfile.TemporaryDirectory(prefix="keyless-check-") as scratch:
        provider.job_files(
            scope,
            run,
            tokens=_Placeholders(),
            settings=console.env,
            folder=Path(scratch),
            region="us-east-1",
        )
    state_dir = state_dir_of(args, console)
    with contextlib.ExitStack() as exit_stack:
        workdir = Path(tempfile.mkdtemp(prefix="keyless-run-"))
        exit_stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        info, _ = stack_or_temporary(state_dir, console, exit_stack, prefix="keyless-run-stack-")
        check_issuer(info, provider, scope, args.issuer)
        tokens = RemoteTokens.of(info, provider, scope)
        job = provider.job_environment(scope, run, tokens=tokens, audiences=audiences)
        process = JobProcess(
            workdir=workdir,
            endpoint_url=info.endpoint_url,
            region=info.region,
            ca_bundle=info.ca_bundle,
            state_dir=info.state_dir,
            buildkite_agent=provider.name == "buildkite",
            issuer_variables=info.issuer_variables,
        )
        folders = job_folders(workdir, github=provider.name == "github", home=args.home)
        env = job_process_environment(console.env, {**job, **folders.variables()}, process)
        ci_files = workdir / "ci-files"
        ci_files.mkdir(mode=0o700)
        extra = provider.job_files(
            scope, run, tokens=tokens, settings=console.env, folder=ci_files, region=info.region
        )
        env.update(extra)
        kept = "given with --home, kept" if args.home else "private, removed after"
        console.info(
            f"keyless local: {shlex.join(command)} as a {provider.display_name} job,"
            f" AWS on {info.endpoint_url}, HOME {folders.home} ({kept})"
        )
        if extra:
            console.info(
                f"keyless local: as {provider.display_name} does, the job gets"
                f" {', '.join(sorted(extra))} (files in a private folder)"
            )
        code = _run_child(command, env, console)
        for line in folders.report():
            console.info(line if line.startswith(" ") else f"keyless local: {line}")
        return code


class _Placeholders:
    """``JobTokens`` that sign nothing: to check a job's flags before a stack exists."""

    def sign(self, claims: JobClaims) -> RawToken:
        return RawToken("")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return TokenEndpoint(url="", bearer="")


def _run_child(command: Sequence[str], env: Mapping[str, str], console: Console) -> int:
    """Run ``command`` as the job's process, signals forwarded to it (Ctrl-C reaches it from the
    terminal directly). Returns its exit code, 128+N when signal N ended it."""
    launch = process.Launch(
        argv=tuple(command), env=env, stdout=console.stdout, stderr=console.stderr
    )
    try:
        return process.run_foreground(launch)
    except FileNotFoundError:
        raise UsageError(f"command not found: {command[0]}") from None
    except OSError as exc:
        raise UsageError(f"cannot run {command[0]}: {exc.strerror}") from None
