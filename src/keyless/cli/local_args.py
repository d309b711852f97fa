"""What the ``keyless local`` subcommands share: the state folder, the job flags, and what they
say about a temporary stack."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.ci.base import JobRun
from keyless.cli.console import Console
from keyless.local.names import STATE_VARIABLE

if TYPE_CHECKING:
    from keyless.local.served import StackInfo

STATE_HELP = f"""\
State folder: --state DIR, else ${STATE_VARIABLE}, else $XDG_STATE_HOME/keyless/local
(~/.local/state/keyless/local). While a stack runs, DIR/stack.json (0600) tells the other
`keyless local` commands where it is."""


def add_state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        help=f"state folder (default: ${STATE_VARIABLE}, else ~/.local/state/keyless/local)",
    )


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    add_state_argument(parser)
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


def job_run(args: argparse.Namespace) -> JobRun:
    return JobRun(
        branch=args.job_branch,
        tag=args.job_tag,
        step=args.step,
        build_number=args.build_number,
        commit=args.commit,
        deployment=args.deployment,
        event=args.event,
    )


def state_dir_of(args: argparse.Namespace, console: Console) -> Path:
    from keyless.local.served import default_state_dir

    state: Path | None = args.state
    return state if state is not None else default_state_dir(console.env)


def running_stack(state_dir: Path) -> StackInfo:
    from keyless.local.moto_server import LocalStackError
    from keyless.local.served import find_running

    info = find_running(state_dir)
    if info is None:
        raise LocalStackError(
            f"no local stack runs from {state_dir}",
            remedy=f"Start one in another terminal:  keyless local serve --state {state_dir}",
        )
    return info


def temporary_stack_notice(state_dir: Path) -> str:
    # A temporary stack is a new, empty account: a job that assumes a role there is refused
    # ("No OpenIDConnect provider found") however right its pipeline is, so say so up front.
    return (
        f"keyless local: no stack runs from {state_dir}; starting a temporary one. It is empty"
        " (no OIDC provider, role or bucket), so a step that assumes a role is refused there."
    )


#: Said after a failed job on a temporary stack, where the start notice has scrolled away.
TEMPORARY_STACK_FAILED = (
    "keyless local: this ran on a temporary, empty stack (no OIDC provider or role). To deploy,"
    " start one with `keyless local serve` and provision the role in it (`keyless provision"
    " ... --s3-deploy BUCKET/PREFIX` with the printed exports), then run this again; or run"
    " `make demo`, which does all of it."
)


def stack_or_temporary(
    state_dir: Path, console: Console, exit_stack: contextlib.ExitStack, *, prefix: str
) -> tuple[StackInfo, bool]:
    """The stack that runs from ``state_dir``, else a temporary one (said so) in a scratch folder
    that ``exit_stack`` removes; and whether it is temporary."""
    from keyless.local.served import find_running, served_stack

    info = find_running(state_dir)
    if info is not None:
        return info, False
    console.info(temporary_stack_notice(state_dir))
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    exit_stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    _, info = exit_stack.enter_context(served_stack(state_dir=scratch / "state"))
    return info, True
