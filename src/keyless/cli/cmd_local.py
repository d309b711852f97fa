"""``keyless local serve|token|run|pipeline``: the local stack in the foreground, a CI's token from
it, a command run as that CI's job would run it, and a Bitbucket pipeline's steps, against it.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless import process, tokens
from keyless.ci.base import JobClaims, JobRun, RawToken, TokenEndpoint
from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.cli.scope_args import SCOPE_HELP, add_scope_arguments, scope_from_args
from keyless.errors import OutputError, UsageError
from keyless.fsutil import write_secret_file
from keyless.local.names import CA_VARIABLE, EMULATED, STATE_VARIABLE

if TYPE_CHECKING:
    from keyless.local.moto_server import AdminCredentials
    from keyless.local.served import (
        StackInfo,
    )

#: Ports ``--port N`` takes: N for AWS, then one issuer server per emulated CI.
_PORTS_USED = 1 + len(EMULATED)

_STATE_HELP = f"""\
State folder: --state DIR, else ${STATE_VARIABLE}, else $XDG_STATE_HOME/keyless/local
(~/.local/state/keyless/local). While a stack runs, DIR/stack.json (0600) tells the other
`keyless local` commands where it is."""

_SERVE_EPILOG = f"""\
Starts moto (IAM, STS, S3, CloudFront; IAM authentication on), the STS gateway that enforces
AssumeRoleWithWebIdentity, and one HTTPS issuer server per CI on 127.0.0.1, then prints the
variables to use it, one `export NAME=value` per line (eval-able): AWS_ENDPOINT_URL, the region,
the local administrator's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (throwaway keys of the
emulator, to provision and inspect), the CA bundle and its thumbprint, and the issuer URLs.
Ctrl-C or SIGTERM stops everything; no process stays behind.

{_STATE_HELP}

What persists in the state folder: the CA and TLS certificate (DIR/tls), each CI's issuers and
signing keys (DIR/ci/NAME), so the CA thumbprint, the keys and, with the same --port, the issuer
URLs stay the same across restarts. What does not: everything in moto (OIDC providers, roles,
buckets), the administrator key, and the request tokens of running jobs.

--port N: AWS on N, the issuer servers of {", ".join(p.name for p in EMULATED)} on N+1 to
N+{_PORTS_USED - 1}. Without it the ports are ephemeral and the issuer URLs change every start.

Exit codes: 0 stopped by a signal; 2 a port is taken, a stack already runs from DIR, or an error.
"""

_JOB_HELP = """\
The job (what the scope leaves open): --job-branch/--job-tag (default: the scope's ref, else
main), --step (Bitbucket step, GitHub/GitLab/CircleCI job, Buildkite step key), --build-number,
--commit, --deployment (Bitbucket/GitLab deployment environment name), --event (GitHub
event_name, GitLab pipeline_source). Per-run ids (step UUID, run id) are fresh for every job."""

_TOKEN_EPILOG = f"""\
{SCOPE_HELP}

{_JOB_HELP}

The token has the claims that CI mints for such a job and its lifetime (GitHub and Buildkite
5 minutes, CircleCI and GitLab 1 hour; Bitbucket does not say: 1 hour), signed by the scope's
issuer on the running stack. --audience replaces the default audience (Bitbucket: appended to the
workspace's, so `aud` is a list; may be repeated); --lifetime SECONDS overrides the lifetime.

Output: the raw token on standard output, which must not be a terminal, or --write PATH (0600,
atomic). Its issuer and subject go to standard error.

{_STATE_HELP}

Exit codes: 0 minted; 2 no stack running, a bad scope flag, or an error.
"""

_RUN_EPILOG = f"""\
{SCOPE_HELP}

{_JOB_HELP}

COMMAND runs with the variables that CI sets in such a job, token delivery as the CI does it:
  bitbucket  BITBUCKET_* and BITBUCKET_STEP_OIDC_TOKEN (the step has `oidc: true`; --audience:
             the step's `oidc: audiences:`)
  github     GITHUB_* and ACTIONS_ID_TOKEN_REQUEST_URL + ACTIONS_ID_TOKEN_REQUEST_TOKEN; the job
             asks the stack's emulated token endpoint for each audience
  gitlab     CI_* and GITLAB_OIDC_TOKEN (one `id_tokens:` entry; --audience: its `aud`)
  circleci   CIRCLE_* and CIRCLE_OIDC_TOKEN + CIRCLE_OIDC_TOKEN_V2 (audience: the org ID)
  buildkite  BUILDKITE_*, BUILDKITE_AGENT_ACCESS_TOKEN, and a `buildkite-agent` first on PATH
             whose `oidc request-token` asks the stack
plus CI=true, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION/AWS_REGION, AWS_CONFIG_FILE and
AWS_SHARED_CREDENTIALS_FILE in a private temporary folder (~/.aws is not read), SSL_CERT_FILE (the
system's CAs plus the local CA), {CA_VARIABLE} and {STATE_VARIABLE}. No AWS key: the job gets
credentials only through its token. The caller's own CI, AWS_* and KEYLESS_* variables are
dropped.

HOME is private too: an empty folder in that temporary folder (printed at start), so a job that
writes ~/.aws/... leaves yours alone; quote ~ (sh -c '... ~/.aws/...') so that the job's shell,
not yours, expands it. As a GitHub job, GITHUB_ENV, GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STATE and
GITHUB_STEP_SUMMARY name empty files there, as GitHub's runner sets them; after COMMAND, the
names it wrote to them are shown (never the values) and its step summary, those values masked.
The temporary folder is removed after COMMAND.

Without a running stack (see --state) a temporary one starts for COMMAND and stops after it.

{_STATE_HELP}

Exit codes: COMMAND's exit code (128+N when a signal N ended it); 2 a bad flag, COMMAND not
found, or an error.
"""


_PIPELINE_EPILOG = f"""\
The file is first checked against the public bitbucket-pipelines JSON schema (when
check-jsonschema is installed), errors naming the line.

Which steps: the pipeline Bitbucket would start for --branch B (default: the branch checked out
in the file's folder, else main): under `branches:` an exact name first, then glob patterns (`*`,
`**`, `{{a,b}}`) in file order, else `default:`; --tag T: under `tags:` only; --pull-request
SOURCE:DEST: SOURCE under `pull-requests:` (BITBUCKET_PR_DESTINATION_BRANCH is DEST); --custom
NAME runs `custom: NAME`, its `variables:` answered by --var NAME=VALUE, else the variables
file's `custom:`, else their `default:` (within `allowed-values:`). --step NAME runs only the
steps so named, --deployment ENV only those that deploy to ENV. The first step that fails stops
the pipeline; a `parallel:` group's steps run at once (at most one per core), the rest of the
group still running unless `fail-fast: true` stops it.

A step starts from a fresh clone of the commit checked out in the file's folder (--working-tree:
a copy of the working tree, uncommitted changes included; outside git, a copy of the folder),
with the earlier steps' shared `artifacts:` (all, none or by name: `artifacts: download:`;
`upload:` entries with name, type, paths, ignore-paths, depth, capture-on) and its `caches:`
(predefined or under `definitions: caches:`, `key: files:` included; kept in the state folder,
saved after a passing step when not kept yet, dropped after a week). `condition: changesets:`
(the step's or its stage's) skips it unless a changed file counts: the last commit's files, or
a pull request's since it left DEST. It runs its `script:` lines in one bash session in the
clone, with a fresh HOME, each command echoed before it runs, then its `after-script:` with
BITBUCKET_EXIT_CODE.

A step has Bitbucket's variables (BITBUCKET_BRANCH or BITBUCKET_TAG, BITBUCKET_COMMIT,
BITBUCKET_BUILD_NUMBER, BITBUCKET_REPO_SLUG, BITBUCKET_REPO_UUID, BITBUCKET_REPO_FULL_NAME,
BITBUCKET_WORKSPACE, BITBUCKET_STEP_UUID, BITBUCKET_PIPELINE_UUID, BITBUCKET_CLONE_DIR,
BITBUCKET_PR_ID, BITBUCKET_PARALLEL_STEP, BITBUCKET_DEPLOYMENT_ENVIRONMENT and its _UUID, ...),
those of --variables FILE, and
BITBUCKET_STEP_OIDC_TOKEN only with `oidc: true` (`oidc: audiences:` adds audiences to the
workspace's; `deployment:` puts the environment's UUID in `sub`). AWS is the local stack, as for
`keyless local run`: no AWS key, only the token. YAML anchors and `<<:` merges work; `image:` is
not used (the step runs on this machine), a step with `services:` or `condition: state:` is
refused; a `trigger: manual` step pauses the pipeline unless --manual (or --step). Secured
variables ({{value: V, secured: true}}) are masked.

Pipes: atlassian/aws-s3-deploy and atlassian/aws-cloudfront-invalidate run as `keyless pipe ...`
with their `variables:` ($NAME taken from the step) and Bitbucket's variables; any other pipe
fails the step with "pipe NAME is not emulated".

--variables FILE (YAML): `workspace:`, `repository:` and `deployments: {{ENV: ...}}`, each a
mapping of NAME: value; deployment variables win over repository ones, which win over
workspace ones.

Identities: the workspace (slug and UUID), each repository (--repository SLUG, default: the last
part of the git remote's URL, e.g. site for git@bitbucket.org:acme/site.git, else the name of the
file's folder) and each of its deployment environments get a UUID on first use, kept in
--identities FILE (default: bitbucket-identities.json in the state folder), so that a role
provisioned for them keeps working. --print-scope prints their scope flags for `keyless
provision` (with --issuer while a stack runs) and runs nothing.

The log (each step's setup, commands, output with the token masked, PASSED or FAILED) goes to
standard output. Without a running stack a temporary one starts for the pipeline.

{_STATE_HELP}

Exit codes: 0 every step passed; else the exit code of the first command that failed; 2 an
unusable file, selection or flag.
"""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "local",
        help="the local stack: CI token issuers and an AWS that enforces web identity",
        description="Run the local stack, mint CI tokens from it, run commands as CI jobs.",
    )
    commands = parser.add_subparsers(
        dest="local_command", metavar="SUBCOMMAND", parser_class=type(parser)
    )
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="run the local stack in the foreground and print the variables to use it",
        description="Run the local stack in the foreground; print `export` lines to use it.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_state_argument(serve)
    serve.add_argument(
        "--port",
        metavar="N",
        type=int,
        default=0,
        help=f"AWS on N, issuers on the next {_PORTS_USED - 1} ports (default: ephemeral)",
    )
    serve.set_defaults(handler=run_serve)

    token = commands.add_parser(
        "token",
        help="mint a CI's token for a scope from the running local stack",
        description="Mint the token a CI job of the scope would get, from the running stack.",
        epilog=_TOKEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_arguments(token)
    _add_job_arguments(token)
    token.add_argument(
        "--lifetime", metavar="SECONDS", type=int, help="exp - iat (default: the CI's)"
    )
    token.add_argument(
        "--write", metavar="PATH", type=Path, help="write the token to PATH (0600, atomic)"
    )
    token.set_defaults(handler=run_token)

    run = commands.add_parser(
        "run",
        help="run a command with the environment of a CI job, against the local stack",
        description="Run COMMAND as that CI's job of the scope would, with a private HOME.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --ci NAME <scope flags> [job flags] [--state DIR] -- COMMAND [ARG...]",
    )
    add_scope_arguments(run)
    _add_job_arguments(run)
    run.add_argument(
        "--home",
        metavar="DIR",
        type=Path,
        help="the job's HOME: an existing folder, kept after the run (default: a private one,"
        " removed after), to see what a second run on the same machine finds",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(handler=run_run)

    pipeline = commands.add_parser(
        "pipeline",
        help="run a Bitbucket pipeline's steps here, against the local stack",
        description="Run the steps of a bitbucket-pipelines.yml here, as Bitbucket would.",
        epilog=_PIPELINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pipeline.add_argument("file", metavar="bitbucket-pipelines.yml", type=Path)
    only = pipeline.add_mutually_exclusive_group()
    only.add_argument("--step", metavar="NAME", help="run only the step(s) with this name")
    only.add_argument("--deployment", metavar="ENV", help="run only the step(s) deploying to ENV")
    pipeline.add_argument(
        "--branch", metavar="B", help="the branch (default: the checked-out one, else main)"
    )
    pipeline.add_argument("--custom", metavar="NAME", help="run the custom pipeline NAME")
    pipeline.add_argument("--tag", metavar="T", help="run the pipeline of a push of tag T")
    pipeline.add_argument(
        "--pull-request",
        metavar="SOURCE:DEST",
        help="run the pipeline of a pull request from SOURCE into DEST",
    )
    pipeline.add_argument(
        "--var",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="answer a custom pipeline's variable (repeatable)",
    )
    pipeline.add_argument(
        "--manual", action="store_true", help="run `trigger: manual` steps without stopping"
    )
    pipeline.add_argument(
        "--working-tree",
        action="store_true",
        help="start each step from the working tree, uncommitted changes included",
    )
    pipeline.add_argument(
        "--variables", metavar="FILE", type=Path, help="repository and deployment variables (YAML)"
    )
    pipeline.add_argument(
        "--repository",
        metavar="SLUG",
        help="the repository (default: the git remote's, else the folder's name)",
    )
    pipeline.add_argument(
        "--identities", metavar="FILE", type=Path, help="UUIDs of workspace, repositories, ..."
    )
    pipeline.add_argument(
        "--print-scope", action="store_true", help="print the scope flags for provisioning"
    )
    _add_state_argument(pipeline)
    pipeline.set_defaults(handler=run_pipeline)
    _register_workflow(commands)


def _add_state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        help=f"state folder (default: ${STATE_VARIABLE}, else ~/.local/state/keyless/local)",
    )


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    _add_state_argument(parser)
    parser.add_argument(
        "--audience",
        metavar="AUD",
        action="append",
        help="the token's audience instead of the CI's default (repeatable for Bitbucket)",
    )
    job = parser.add_argument_group("the job (what the scope leaves open)")
    job.add_argument("--job-branch", metavar="NAME", help="branch (default: the scope's, or main)")
    job.add_argument("--job-tag", metavar="NAME", help="run for this tag instead of a branch")
    job.add_argument("--step", metavar="NAME", default="deploy", help="step or job name")
    job.add_argument("--build-number", metavar="N", type=int, default=1, help="build number")
    job.add_argument("--commit", metavar="SHA", help="commit (default: made up per run)")
    job.add_argument("--deployment", metavar="NAME", help="deployment environment name")
    job.add_argument("--event", metavar="NAME", default="push", help="what started the run")


def _job_run(args: argparse.Namespace) -> JobRun:
    return JobRun(
        branch=args.job_branch,
        tag=args.job_tag,
        step=args.step,
        build_number=args.build_number,
        commit=args.commit,
        deployment=args.deployment,
        event=args.event,
    )


def _state_dir(args: argparse.Namespace, console: Console) -> Path:
    from keyless.local.served import default_state_dir

    state: Path | None = args.state
    return state if state is not None else default_state_dir(console.env)


def _running(state_dir: Path) -> StackInfo:
    from keyless.local.moto_server import LocalStackError
    from keyless.local.served import find_running

    info = find_running(state_dir)
    if info is None:
        raise LocalStackError(
            f"no local stack runs from {state_dir}",
            remedy=f"Start one in another terminal:  keyless local serve --state {state_dir}",
        )
    return info


# --- serve ---------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace, console: Console) -> int:
    from keyless.local.jobs import issuer_patterns
    from keyless.local.served import served_stack

    port: int = args.port
    if port != 0 and not 1 <= port <= 65535 - _PORTS_USED + 1:
        raise UsageError(f"--port {port} leaves no room for {_PORTS_USED} ports below 65536")
    state_dir = _state_dir(args, console)
    with process.signals_interrupt(), served_stack(state_dir=state_dir, port=port) as (stack, info):
        for name, value in _exports(stack.admin, info):
            console.out(f"export {name}={shlex.quote(value)}")
        for ci, urls in info.issuers.items():
            for url in urls:
                console.out(f"# {ci} issuer: {url}")
        for ci, pattern in issuer_patterns(info.servers).items():
            console.out(f"# {ci} issuers: {pattern}")
        console.out(f"# keyless local stack running (pid {info.pid}); Ctrl-C or SIGTERM stops it")
        console.stdout.flush()
        console.info(f"keyless local: AWS on {info.endpoint_url}, state in {state_dir}")
        try:
            _wait_forever()
        except KeyboardInterrupt:
            console.info("keyless local: stopping")
        finally:
            process.ignore_stopping_signals()
    console.info("keyless local: stopped")
    return EXIT_OK


def _exports(admin: AdminCredentials, info: StackInfo) -> list[tuple[str, str]]:
    exports = [
        ("AWS_ENDPOINT_URL", info.endpoint_url),
        ("AWS_DEFAULT_REGION", info.region),
        ("AWS_REGION", info.region),
        # The emulator's own administrator: printing it is what this command is for.
        ("AWS_ACCESS_KEY_ID", admin.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", admin.secret_access_key),
        (STATE_VARIABLE, str(info.state_dir)),
        (CA_VARIABLE, str(info.ca_bundle)),
        ("KEYLESS_LOCAL_CA_THUMBPRINT", info.ca_thumbprint),
    ]
    # A root issuer is the server itself; the others live below it, one per tenant.
    exports.extend(info.issuer_variables)
    return exports


def _wait_forever() -> None:
    stop = threading.Event()
    while not stop.wait(3600):
        pass


# --- token ---------------------------------------------------------------------------------------


def run_token(args: argparse.Namespace, console: Console) -> int:
    from keyless.local.jobs import emulated
    from keyless.local.served import RemoteTokens, check_issuer

    provider = emulated(args.ci)
    scope = scope_from_args(args)
    run = _job_run(args)
    if args.write is None and console.stdout_is_terminal():
        raise OutputError(
            "refusing to print the token to a terminal (it would stay in the scrollback)",
            remedy="Write it to a file with --write PATH, or pipe it: ... | keyless claims -",
        )
    claims = provider.job_claims(scope, run, audiences=args.audience or ())
    if args.lifetime is not None:
        claims = claims.with_lifetime(args.lifetime)
    info = _running(_state_dir(args, console))
    check_issuer(info, provider, scope, args.issuer)
    token = RemoteTokens.of(info, provider, scope).sign(claims)
    peeked = tokens.peek(token)
    about = f"{provider.display_name} token from {peeked.issuer}, sub {peeked.subject}"
    if args.write is not None:
        written = write_secret_file(args.write, token)
        console.info(f"wrote a {about} to {written}")
        return EXIT_OK
    console.stdout.write(token)
    console.stdout.flush()
    console.info(f"printed a {about}")
    return EXIT_OK


# --- pipeline ------------------------------------------------------------------------------------


def run_pipeline(args: argparse.Namespace, console: Console) -> int:
    # Imported here: YAML parsing is needed by this command only.
    from keyless.local import pipeline as bitbucket_pipeline
    from keyless.local.served import find_running, served_stack

    state_dir = _state_dir(args, console)
    identities: Path = args.identities or state_dir / bitbucket_pipeline.IDENTITIES_FILE
    plan = bitbucket_pipeline.plan_pipeline(
        args.file,
        identities=identities,
        checkout=bitbucket_pipeline.git_checkout,
        step=args.step,
        deployment=args.deployment,
        branch=args.branch,
        custom=args.custom,
        repository=args.repository,
        variables=args.variables,
        tag=args.tag,
        pull_request=args.pull_request,
        values=args.var,
        manual=args.manual,
        working_tree=args.working_tree,
        notice=console.info,
    )
    if args.print_scope:
        deployments = (args.deployment,) if args.deployment else ()
        identity = bitbucket_pipeline.resolve_identity(
            identities, repository=plan.repository, deployments=deployments
        )
        info = find_running(state_dir)
        issuer = bitbucket_pipeline.local_issuer(info, identity) if info is not None else None
        flags = bitbucket_pipeline.scope_flags(identity, deployment=args.deployment, issuer=issuer)
        console.out(shlex.join(flags))
        return EXIT_OK
    # SIGTERM and SIGHUP end the steps as Ctrl-C does (their own process groups, not ours).
    with process.signals_interrupt(), contextlib.ExitStack() as exit_stack:
        info = find_running(state_dir)
        temporary = info is None
        if info is None:
            console.info(_temporary_stack_notice(state_dir))
            scratch = Path(tempfile.mkdtemp(prefix="keyless-pipeline-"))
            exit_stack.callback(shutil.rmtree, scratch, ignore_errors=True)
            _, info = exit_stack.enter_context(served_stack(state_dir=scratch / "state"))
        result = bitbucket_pipeline.run_pipeline(
            plan,
            stack=info,
            base_env=console.env,
            log=console.stdout,
            cache_dir=state_dir / bitbucket_pipeline.CACHES_FOLDER,
        )
        if temporary and result.exit_code != 0:
            console.info(_TEMPORARY_STACK_FAILED)
    return result.exit_code


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

{_STATE_HELP}

Exit codes: 0 the job succeeded; else the exit code of its first failed step; 2 an unusable file,
job or flag.
"""


def _register_workflow(commands: Any) -> None:
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
    _add_state_argument(workflow)
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
    from keyless.local.served import find_running, served_stack

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
    state_dir = _state_dir(args, console)
    with process.signals_interrupt(), contextlib.ExitStack() as exit_stack:
        info = find_running(state_dir)
        temporary = info is None
        if info is None:
            console.info(_temporary_stack_notice(state_dir))
            scratch = Path(tempfile.mkdtemp(prefix="keyless-workflow-"))
            exit_stack.callback(shutil.rmtree, scratch, ignore_errors=True)
            _, info = exit_stack.enter_context(served_stack(state_dir=scratch / "state"))
        result = gha.run_job(run, stack=info, base_env=console.env, log=console.stdout)
        if temporary and result.exit_code != 0:
            console.info(_TEMPORARY_STACK_FAILED)
    return result.exit_code


# --- run -----------------------------------------------------------------------------------------


def run_run(args: argparse.Namespace, console: Console) -> int:
    from keyless.local.job_files import job_folders
    from keyless.local.jobs import emulated
    from keyless.local.run import JobProcess, job_process_environment
    from keyless.local.served import RemoteTokens, check_issuer, find_running, served_stack

    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("give the command to run after --, e.g. -- keyless token --show-claims")
    if args.home is not None and not args.home.is_dir():
        raise UsageError(f"--home {args.home} is not an existing folder; create it first")
    provider = emulated(args.ci)
    scope = scope_from_args(args)
    run = _job_run(args)
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
    state_dir = _state_dir(args, console)
    with contextlib.ExitStack() as exit_stack:
        workdir = Path(tempfile.mkdtemp(prefix="keyless-run-"))
        exit_stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        info = find_running(state_dir)
        if info is None:
            console.info(_temporary_stack_notice(state_dir))
            _, info = exit_stack.enter_context(served_stack(state_dir=workdir / "state"))
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


def _temporary_stack_notice(state_dir: Path) -> str:
    # A temporary stack is a new, empty account: a job that assumes a role there is refused
    # ("No OpenIDConnect provider found") however right its pipeline is, so say so up front.
    return (
        f"keyless local: no stack runs from {state_dir}; starting a temporary one. It is empty"
        " (no OIDC provider, role or bucket), so a step that assumes a role is refused there."
    )


#: Said after a failed job on a temporary stack, where the start notice has scrolled away.
_TEMPORARY_STACK_FAILED = (
    "keyless local: this ran on a temporary, empty stack (no OIDC provider or role). To deploy,"
    " start one with `keyless local serve` and provision the role in it (`keyless provision"
    " ... --s3-deploy BUCKET/PREFIX` with the printed exports), then run this again; or run"
    " `make demo`, which does all of it."
)
