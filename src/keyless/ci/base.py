"""The contract every CI provider module fulfils, and the shared value types.

One module per CI (``bitbucket``, ``github``, ``gitlab``, ``circleci``, ``buildkite``) owns
everything specific to that CI; everything else in keyless asks the provider through this
protocol. Detection follows one rule: return ``None`` when the job is not running in that CI, and
raise ``CredentialError`` (message starting with the CI's name, remedy showing the fix) when it is
that CI but the token cannot be had. Never fall back silently.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType, Protocol

from keyless.errors import CredentialError, TokenError
from keyless.http import HttpClient
from keyless.limits import CI_HELPER_TIMEOUT_SECONDS, TOKEN_MAX_CHARS

#: The raw, compact-serialized JWT. A distinct type so it is not mixed with other strings.
RawToken = NewType("RawToken", str)

#: The audience AWS documents for an IAM OIDC provider's client ID when the CI lets the job
#: choose it (GitHub: configure-aws-credentials' default; Buildkite: its AWS guide).
DEFAULT_AWS_AUDIENCE = "sts.amazonaws.com"

#: Registered claims every provider may print: issuer, subject, audience and the times.
STANDARD_SAFE_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ObtainedToken:
    """A token and where it came from (for messages; never the token in ``repr``)."""

    token: RawToken
    provider: str  # provider name, e.g. "bitbucket"
    source: str  # how it was obtained, e.g. "BITBUCKET_STEP_OIDC_TOKEN"

    def __repr__(self) -> str:
        return (
            f"ObtainedToken(provider={self.provider!r}, source={self.source!r}, token=<redacted>)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a child process returned. ``stdout`` may hold a token: never log it."""

    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:
        return f"RunResult(returncode={self.returncode!r}, stdout=<redacted>, stderr=<redacted>)"


class Runner(Protocol):
    """Runs a CI's helper program (``buildkite-agent``, ``circleci``).

    Raises ``FileNotFoundError`` when the program is not installed and ``TimeoutError`` when it
    does not finish within ``timeout`` seconds; any exit status is a ``RunResult``. ``argv`` never
    holds a secret: a child's argv is visible to every user of the machine.
    """

    def __call__(
        self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float
    ) -> RunResult: ...


def subprocess_runner(argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> RunResult:
    """The production ``Runner``: no shell, captured output, the job's environment."""
    try:
        completed = subprocess.run(  # noqa: S603 - argv is a fixed program plus non-secret values
            list(argv),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} seconds") from None
    return RunResult(
        returncode=completed.returncode, stdout=completed.stdout, stderr=completed.stderr
    )


class Provider(Protocol):
    #: Short name used on the command line (``--ci NAME``): "bitbucket", "github", ...
    name: str
    #: Name for people: "Bitbucket Pipelines".
    display_name: str
    #: Environment variables whose presence (or value "true") marks a job of this CI.
    markers: tuple[str, ...]
    #: Claims AWS exposes as ``<issuer-without-https>:<claim>`` condition keys for this CI's
    #: issuer, in addition to ``sub`` and ``aud`` which every OIDC provider gets.
    aws_condition_claims: frozenset[str]
    #: Claims that are safe to print (ids, repository, branch, environment, times).
    safe_claims: frozenset[str]
    #: Claims AWS may expose as condition keys although its list for this CI is not published:
    #: the trust evaluator calls a condition on one of them undecidable instead of guessing.
    aws_unconfirmed_claims: frozenset[str]
    #: True when one issuer serves every customer of the CI (github.com, gitlab.com, Buildkite),
    #: so a role without a `sub` pin trusts the whole platform, not one workspace or org.
    shared_issuer: bool
    #: The shape of the default `sub` claim, segment by segment, for the trust-policy linter.
    subject_grammar: SubjectGrammar

    def in_ci(self, env: Mapping[str, str]) -> bool:
        """True when the environment is a job of this CI (whether or not a token is available)."""
        ...

    def obtain(
        self,
        env: Mapping[str, str],
        *,
        audience: str | None,
        http: HttpClient,
        runner: Runner | None = None,
    ) -> ObtainedToken | None:
        """The job's token, ``None`` when not in this CI, ``CredentialError`` when broken.

        ``audience`` is the ``aud`` the caller needs. A CI that mints tokens on request asks for
        it; a CI whose audience is fixed by its YAML checks the token has it and refuses if not.
        ``runner`` runs the CI's helper program; ``None`` means ``subprocess_runner``.
        """
        ...

    def owns_issuer(self, issuer: str) -> bool:
        """True when ``issuer`` (a token's ``iss``) has this CI's issuer URL shape."""
        ...

    def session_name(self, env: Mapping[str, str]) -> str | None:
        """A RoleSessionName naming this job (CI, repository, run), or ``None`` when the
        environment does not say; built with ``compose_session_name``."""
        ...


#: STS's RoleSessionName: 2 to 64 characters of ``[\w+=,.@-]``, ``\w`` being ASCII (STS model).
SESSION_NAME_MAX_CHARS = 64
_SESSION_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_+=,.@-]+")


def session_name_part(value: str) -> str:
    """``value`` with each run of characters STS refuses in a session name made one ``-``."""
    return _SESSION_NAME_UNSAFE.sub("-", value).strip("-")


def compose_session_name(ci: str, repository: str | None, *run: str | None) -> str | None:
    """``<ci>-<repository>-<run ids>`` within 64 characters, or ``None`` without any run id.

    The repository is shortened first: the run ids are what tell two sessions apart in CloudTrail.
    """
    tail = "-".join(part for part in (session_name_part(r) for r in run if r) if part)
    if not tail:
        return None
    room = SESSION_NAME_MAX_CHARS - len(ci) - len(tail) - 2
    repo = session_name_part(repository or "")[: max(room, 0)].strip("-")
    return "-".join(part for part in (ci, repo, tail) if part)[:SESSION_NAME_MAX_CHARS]


def env_true(env: Mapping[str, str], name: str) -> bool:
    """A CI's "this is a job" flag: ``GITHUB_ACTIONS=true``, ``GITLAB_CI=true``, ..."""
    return env.get(name, "").strip().lower() == "true"


def checked_token(value: str, *, provider: str, display_name: str, source: str) -> ObtainedToken:
    """``value`` as an ``ObtainedToken`` once it has the shape of a compact JWT.

    Surrounding whitespace is dropped (``echo`` adds a newline that STS would receive verbatim);
    anything else that is not three base64url parts is refused, naming the source, never the value.
    """
    token = value.strip()
    if not token:
        raise CredentialError(f"{display_name}: {source} is empty")
    if len(token) > TOKEN_MAX_CHARS:
        raise TokenError(
            f"{display_name}: the token from {source} has {len(token)} characters,"
            f" more than the {TOKEN_MAX_CHARS} STS accepts"
        )
    if any(ch.isspace() for ch in token):
        raise TokenError(
            f"{display_name}: {source} holds several lines or words, not one token",
            remedy=(
                "A token file written with `echo $TOKEN >> FILE` collects one token per run.\n"
                "Write it with `keyless token --write FILE`, which replaces the file atomically."
            ),
        )
    if not _JWT_SHAPE.fullmatch(token):
        raise TokenError(f"{display_name}: {source} does not hold a JWT (three base64url parts)")
    return ObtainedToken(token=RawToken(token), provider=provider, source=source)


def run_helper(
    runner: Runner | None,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    display_name: str,
    missing_remedy: str,
    failure_remedy: str,
) -> str:
    """The stdout of a CI's token helper program, or ``CredentialError`` naming what failed."""
    # The program and its subcommand name it well enough; option values add nothing here.
    command = " ".join(itertools.takewhile(lambda arg: not arg.startswith("-"), argv))
    try:
        result = (runner or subprocess_runner)(argv, env=env, timeout=CI_HELPER_TIMEOUT_SECONDS)
    except FileNotFoundError:
        raise CredentialError(
            f"{display_name}: {argv[0]} is not installed or not on PATH in this job",
            remedy=missing_remedy,
        ) from None
    except TimeoutError:
        raise CredentialError(
            f"{display_name}: `{command}` did not finish within"
            f" {CI_HELPER_TIMEOUT_SECONDS:g} seconds",
            remedy=failure_remedy,
        ) from None
    if result.returncode != 0:
        detail = redact(result.stderr)
        raise CredentialError(
            f"{display_name}: `{command}` exited with status {result.returncode}"
            + (f": {detail}" if detail else ""),
            remedy=failure_remedy,
        )
    return result.stdout


def redact(text: str, *, limit: int = 200) -> str:
    """One line of a helper program's diagnostics, with anything token-shaped removed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return _JWT_ANYWHERE.sub("<redacted>", last)[:limit]


_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Anything that looks like the first two parts of a JWT (base64url of '{"' starts with "eyJ").
_JWT_ANYWHERE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*")


# --- trust-policy knowledge each provider states (used by keyless.trust) ------------------------


class SegmentRole(StrEnum):
    """What a `sub` segment names, which decides how wide a wildcard over it is."""

    #: owner, workspace, organization: a wildcard here crosses customers of the CI
    TENANT = "tenant"
    #: a group path whose first component is the tenant and the rest names a project (GitLab)
    PATH = "path"
    #: repository, project, pipeline: a wildcard here spans the whole tenant
    REPOSITORY = "repository"
    #: branch, tag, environment, ref type: names that whoever can push or create them chooses
    CONTEXT = "context"
    #: the user who started the job: an opaque id
    ACTOR = "actor"
    #: changes on every run (step UUID, commit): must be a wildcard
    PER_RUN = "per-run"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectSegment:
    #: Fixed text before the field ("repo:", "/", ":ref_type:").
    literal: str
    #: Name of the field for messages ("owner", "repository UUID").
    field: str
    role: SegmentRole
    #: A value of a made-up foreign tenant, to probe whether a pattern matches anyone at all.
    example: str
    #: Fixed prefixes inside a CONTEXT field before the mutable name ("ref:refs/heads/").
    name_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectGrammar:
    """The default `sub` of a CI as literals and fields (empty: unknown shape)."""

    segments: tuple[SubjectSegment, ...] = ()

    def example(self) -> str:
        """A complete subject of a foreign tenant."""
        return "".join(segment.literal + segment.example for segment in self.segments)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustCondition:
    """One condition of a least-privilege trust policy: ``operator`` on ``<issuer>:<claim>``."""

    operator: str
    claim: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustSpec:
    """What a role must check to trust exactly one scope of one CI."""

    provider: str
    issuer: str
    conditions: tuple[TrustCondition, ...]
    #: Who can satisfy the policy, in plain words (printed by `keyless trust build`).
    notes: tuple[str, ...] = ()


class Scope(Protocol):
    """A CI-specific scope (repository, environment, branch) that trust can be pinned to."""

    def trust_spec(self) -> TrustSpec:
        """The conditions that admit this scope and nothing else."""
        ...


def iam_literal(text: str) -> str:
    """``text`` as a literal inside an IAM string value under Version 2012-10-17: ``$``, ``*``
    and ``?`` written as ``${$}``, ``${*}``, ``${?}`` so a name can never act as a variable or a
    wildcard (IAM User Guide, policy variables: "special characters")."""
    return text.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")
