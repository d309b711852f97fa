"""``keyless local serve|token|run|pipeline``: the local stack in the foreground, a CI's token from
it, a command run as that CI's job would run it, and a Bitbucket pipeline's steps, against it.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyless import process, tokens
from keyless.cli.console import Console
from keyless.cli.local_args import (
    STATE_HELP,
    TEMPORARY_STACK_FAILED,
    add_job_arguments,
    add_state_argument,
    job_run,
    running_stack,
    stack_or_temporary,
    state_dir_of,
)
from keyless.cli.local_jobs import register_workflow, run_run
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


_SERVE_EPILOG = f"""\
Starts moto (IAM, STS, S3, CloudFront; IAM authentication on), the STS gateway that enforces
AssumeRoleWithWebIdentity, and one HTTPS issuer server per CI on 127.0.0.1, then prints the
variables to use it, one `export NAME=value` per line (eval-able): AWS_ENDPOINT_URL, the region,
the local administrator's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (throwaway keys of the
emulator, to provision and inspect), the CA bundle and its thumbprint, and the issuer URLs.
Ctrl-C or SIGTERM stops everything; no process stays behind.

{STATE_HELP}

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

{STATE_HELP}

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

{STATE_HELP}

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

{STATE_HELP}

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

    for add in (_register_serve, _register_token, _register_run, _register_pipeline):
        add(commands)
    register_workflow(commands)


def _register_serve(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the local stack in the foreground and print the variables to use it",
        description="Run the local stack in the foreground; print `export` lines to use it.",
        epilog=_SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_argument(serve)
    serve.add_argument(
        "--port",
        metavar="N",
        type=int,
        default=0,
        help=f"AWS on N, issuers on the next {_PORTS_USED - 1} ports (default: ephemeral)",
    )
    serve.set_defaults(handler=run_serve)


def _register_token(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="mint a CI's token for a scope from the running local stack",
        description="Mint the token a CI job of the scope would get, from the running stack.",
        epilog=_TOKEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_scope_arguments(token)
    add_job_arguments(token)
    token.add_argument(
        "--lifetime", metavar="SECONDS", type=int, help="exp - iat (default: the CI's)"
    )
    token.add_argument(
        "--write", metavar="PATH", type=Path, help="write the token to PATH (0600, atomic)"
    )
    token.set_defaults(handler=run_token)


def _register_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a command with the environment of a CI job, against the local stack",
        description="Run COMMAND as that CI's job of the scope would, with a private HOME.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --ci NAME <scope flags> [job flags] [--state DIR] -- COMMAND [ARG...]",
    )
    add_scope_arguments(run)
    add_job_arguments(run)
    run.add_argument(
        "--home",
        metavar="DIR",
        type=Path,
        help="the job's HOME: an existing folder, kept after the run (default: a private one,"
        " removed after), to see what a second run on the same machine finds",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(handler=run_run)


def _register_pipeline(commands: Any) -> None:
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
    add_state_argument(pipeline)
    pipeline.set_defaults(handler=run_pipeline)


# --- serve ---------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace, console: Console) -> int:
    from keyless.local.jobs import issuer_patterns
    from keyless.local.served import served_stack

    port: int = args.port
    if port != 0 and not 1 <= port <= 65535 - _PORTS_USED + 1:
        raise UsageError(f"--port {port} leaves no room for {_PORTS_USED} ports below 65536")
    state_dir = state_dir_of(args, console)
    with process.signals_interrupt(), served_stack(state_dir=state_dir, port=port) as (stack, info):
        # A signal is a stop from the moment the stack runs, while it is announced too: a
        # caller may send SIGTERM as soon as it reads the "running" line.
        try:
            for name, value in _exports(stack.admin, info):
                console.out(f"export {name}={shlex.quote(value)}")
            for ci, urls in info.issuers.items():
                for url in urls:
                    console.out(f"# {ci} issuer: {url}")
            for ci, pattern in issuer_patterns(info.servers).items():
                console.out(f"# {ci} issuers: {pattern}")
            console.out(
                f"# keyless local stack running (pid {info.pid}); Ctrl-C or SIGTERM stops it"
            )
            console.stdout.flush()
            console.info(f"keyless local: AWS on {info.endpoint_url}, state in {state_dir}")
            _wait_forever()
        except KeyboardInterrupt:
            # A second signal must not cut the stop short.
            process.ignore_stopping_signals()
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
    run = job_run(args)
    if args.write is None and console.stdout_is_terminal():
        raise OutputError(
            "refusing to print the token to a terminal (it would stay in the scrollback)",
            remedy="Write it to a file with --write PATH, or pipe it: ... | keyless claims -",
        )
    claims = provider.job_claims(scope, run, audiences=args.audience or ())
    if args.lifetime is not None:
        claims = claims.with_lifetime(args.lifetime)
    info = running_stack(state_dir_of(args, console))
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
    from keyless.local.served import find_running

    state_dir = state_dir_of(args, console)
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
        info, temporary = stack_or_temporary(
            state_dir, console, exit_stack, prefix="keyless-pipeline-"
        )
        result = bitbucket_pipeline.run_pipeline(
            plan,
            stack=info,
            base_env=console.env,
            log=console.stdout,
            cache_dir=state_dir / bitbucket_pipeline.CACHES_FOLDER,
        )
        if temporary and result.exit_code != 0:
            console.info(TEMPORARY_STACK_FAILED)
    return result.exit_code
