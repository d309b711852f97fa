"""What a step runs: the bash program its commands and emulated pipes become, and the variables
and process environment Bitbucket would give it (the OIDC token only with ``oidc: true``).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from keyless.ci import bitbucket
from keyless.ci.base import JobClaims, JobRun, JobTokens, RawToken, TokenEndpoint
from keyless.local.pipeline.identities import Identity
from keyless.local.pipeline.model import (
    EMULATED_PIPES,
    Command,
    PipeCall,
    Step,
    TriggerKind,
    command_text,
)
from keyless.local.pipeline.plan import PipelinePlan
from keyless.local.run import JobProcess, job_process_environment
from keyless.local.served import StackInfo

#: What a pipe's container gets from the step besides its `variables:`: Bitbucket's own variables
#: and the plumbing that points it at the local stack (repository variables it is not given stay
#: out, as in Bitbucket, so a pipeline that forgets one fails here too).
_PIPE_KEEPS: Final = (
    "BITBUCKET_*|CI|PATH|HOME|LANG|LC_*|TERM|TMPDIR|KEYLESS_LOCAL_*|SSL_CERT_FILE"
    "|NODE_EXTRA_CA_CERTS|AWS_ENDPOINT_URL|AWS_CONFIG_FILE|AWS_SHARED_CREDENTIALS_FILE"
    "|AWS_DEFAULT_REGION|AWS_REGION|AWS_EC2_METADATA_DISABLED"
)
#: ``$NAME`` and ``${NAME}`` in a pipe variable: expanded from the step, as Bitbucket does.
_REFERENCE: Final = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


@dataclass(frozen=True, slots=True, kw_only=True)
class StepJob:
    plan: PipelinePlan
    step: Step
    number: int
    total: int
    identity: Identity
    pipeline_uuid: str
    parallel: tuple[int, int] | None
    #: The step's own clone of the repository (BITBUCKET_CLONE_DIR), where its script runs.
    clone_dir: Path


class _PipelineTokens:
    """The step's tokens with the pipeline's UUID (one per pipeline run, as in Bitbucket); keeps
    the claims of the last token for the log."""

    def __init__(self, inner: JobTokens, pipeline_uuid: str) -> None:
        self._inner = inner
        self._pipeline_uuid = "{" + pipeline_uuid + "}"
        self.claims: Mapping[str, object] | None = None

    def sign(self, claims: JobClaims) -> RawToken:
        patched = replace(claims, claims={**claims.claims, "pipelineUuid": self._pipeline_uuid})
        self.claims = patched.claims
        return self._inner.sign(patched)

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return self._inner.endpoint(claims)


class _NoTokens:
    """For a step without `oidc: true`: nothing is minted, and the variable is then removed."""

    def sign(self, claims: JobClaims) -> RawToken:
        return RawToken("")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return TokenEndpoint(url="", bearer="")


def step_variables(
    job: StepJob, tokens: JobTokens
) -> tuple[dict[str, str], Mapping[str, object] | None]:
    """The step's variables (the file's, then Bitbucket's, the token only with `oidc: true`) and
    the claims of its token."""
    step, identity = job.step, job.identity
    trigger = job.plan.trigger
    tag = trigger.name if trigger.kind is TriggerKind.TAG else None
    run = JobRun(
        branch=job.plan.branch if tag is None else None,
        tag=tag,
        step=step.name,
        build_number=identity.build_number,
        commit=job.plan.commit,
        deployment=step.deployment,
    )
    signer = _PipelineTokens(tokens, job.pipeline_uuid) if step.oidc else _NoTokens()
    scope = identity.scope(step.deployment)
    own = bitbucket.step_environment(scope, run, tokens=signer, audiences=step.audiences)
    if not step.oidc:
        del own[bitbucket.STEP_VARIABLE]
    slug = identity.repository
    own.update(
        BITBUCKET_REPO_SLUG=slug,
        BITBUCKET_REPO_FULL_NAME=f"{identity.workspace}/{slug}",
        BITBUCKET_REPO_OWNER=identity.workspace,
        BITBUCKET_REPO_OWNER_UUID="{" + identity.workspace_uuid + "}",
        BITBUCKET_REPO_IS_PRIVATE="true",
        # Atlassian's "Variables and secrets" gives these forms (the SSH one with its `:/`).
        BITBUCKET_GIT_HTTP_ORIGIN=f"http://bitbucket.org/{identity.workspace}/{slug}",
        BITBUCKET_GIT_SSH_ORIGIN=f"git@bitbucket.org:/{identity.workspace}/{slug}.git",
        # Who ran it: one made-up user per workspace, the same in every run.
        BITBUCKET_STEP_TRIGGERER_UUID="{"
        + str(uuid.uuid5(uuid.NAMESPACE_URL, f"keyless-local-user:{identity.workspace_uuid}"))
        + "}",
        BITBUCKET_PIPELINE_UUID="{" + job.pipeline_uuid + "}",
        BITBUCKET_CLONE_DIR=str(job.clone_dir),
    )
    if trigger.kind is TriggerKind.PULL_REQUEST:
        own["BITBUCKET_PR_ID"] = str(job.plan.pr_id)
        own["BITBUCKET_PR_DESTINATION_BRANCH"] = str(trigger.destination)
    if job.parallel is not None:
        own["BITBUCKET_PARALLEL_STEP"] = str(job.parallel[0] - 1)
        own["BITBUCKET_PARALLEL_STEP_COUNT"] = str(job.parallel[1])
    claims = signer.claims if isinstance(signer, _PipelineTokens) else None
    # Bitbucket's own variables cannot be overridden by the settings' ones.
    return {**job.plan.variables.for_step(step.deployment), **own}, claims


def setup_lines(job: StepJob, claims: Mapping[str, object] | None) -> list[str]:
    step = job.step
    lines = []
    if step.image:
        lines.append(f"image {step.image}: not used, the step runs on this machine")
    if "docker" in step.caches:
        lines.append("cache docker: not kept (image layers are this machine's own)")
    lines.extend(step.notes)
    if step.deployment:
        environment = job.identity.environments[step.deployment]
        lines.append(f"deployment environment {step.deployment} {{{environment}}}")
    if claims is None:
        lines.append("OIDC: no token (the step has no `oidc: true`)")
    else:
        audience = claims.get("aud")
        shown = ", ".join(audience) if isinstance(audience, list) else str(audience)
        lines.append(f"OIDC: {bitbucket.STEP_VARIABLE} with sub {claims.get('sub')}, aud {shown}")
    return lines


def process_environment(
    workdir: Path, variables: Mapping[str, str], *, stack: StackInfo, base_env: Mapping[str, str]
) -> dict[str, str]:
    """What the step's bash gets: the job's variables, a fresh HOME, AWS on the local stack."""
    home = workdir / "home"
    home.mkdir(mode=0o700)
    env = job_process_environment(
        base_env,
        {**variables, "HOME": str(home)},
        JobProcess(
            workdir=workdir,
            endpoint_url=stack.endpoint_url,
            region=stack.region,
            ca_bundle=stack.ca_bundle,
            state_dir=stack.state_dir,
            issuer_variables=stack.issuer_variables,
        ),
    )
    # The keyless running this pipeline is the one a step finds first (scripts, emulated pipes).
    env["PATH"] = os.pathsep.join(p for p in (str(_keyless_bin()), env.get("PATH")) if p)
    return env


def _keyless_bin() -> Path:
    return Path(sys.executable).parent


def keyless_argv() -> list[str]:
    """How to start the keyless that is running now: its script, else ``python -m keyless``."""
    program = _keyless_bin() / "keyless"
    if program.is_file():
        return [str(program)]
    return [sys.executable, "-m", "keyless"]


def step_script(commands: Sequence[Command], *, progress: Path) -> str:
    """The bash program for a step's commands: each one echoed (unexpanded) and run in one shell
    session, so `export` carries over; the first that fails ends it with its exit code. Before
    each command its index goes to ``progress``."""
    lines = [
        "# keyless local pipeline: a step's script",
        f"__keyless_progress={shlex.quote(str(progress))}",
    ]
    for index, command in enumerate(commands):
        shown = command_text(command).splitlines() or [""]
        echo = "\n".join(["+ " + shown[0], *("  " + line for line in shown[1:])])
        lines.append(f"printf '%s' {index} > \"$__keyless_progress\"")
        lines.append(f"printf '%s\\n' {shlex.quote(echo)}")
        lines.append(_pipe_lines(command) if isinstance(command, PipeCall) else command)
        lines.append('__keyless_rc=$?; [ "$__keyless_rc" -eq 0 ] || exit "$__keyless_rc"')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def _pipe_lines(pipe: PipeCall) -> str:
    if pipe.emulated is None:
        known = " and ".join(EMULATED_PIPES)
        message = (
            f"keyless: pipe {pipe.name} is not emulated; only {known} run here"
            " (through keyless pipe)"
        )
        return f"printf '%s\\n' {shlex.quote(message)} >&2; (exit 2)"
    # A subshell: the pipe sees its variables and Bitbucket's, not the step's other variables.
    body = [
        f"__keyless_value_{i}={expandable(value)}"
        for i, value in enumerate(pipe.variables.values())
    ]
    body.append(
        'while IFS= read -r __keyless_name; do case "$__keyless_name" in'
        f' {_PIPE_KEEPS}) ;; *) unset "$__keyless_name" 2>/dev/null ;; esac;'
        " done < <(compgen -e)"
    )
    if pipe.variables:
        exports = " ".join(
            f'{name}="$__keyless_value_{i}"' for i, name in enumerate(pipe.variables)
        )
        body.append(f"export {exports}")
    body.append(f"exec {shlex.join(keyless_argv())} pipe {pipe.emulated}")
    return "(\n  " + "\n  ".join(body) + "\n)"


def expandable(value: str) -> str:
    """``value`` as a double-quoted bash word in which only ``$NAME`` and ``${NAME}`` expand."""
    out: list[str] = []
    position = 0
    for match in _REFERENCE.finditer(value):
        out.append(_quoted_literal(value[position : match.start()]))
        out.append("${" + (match.group(1) or match.group(2)) + "}")
        position = match.end()
    out.append(_quoted_literal(value[position:]))
    return '"' + "".join(out) + '"'


def _quoted_literal(text: str) -> str:
    return "".join("\\" + ch if ch in '\\"$`' else ch for ch in text)
