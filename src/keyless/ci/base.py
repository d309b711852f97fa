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
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NewType, Protocol

from keyless.causes import Cause
from keyless.compat import StrEnum
from keyless.errors import CredentialError, TokenError, UsageError
from keyless.limits import (
    CI_HELPER_TIMEOUT_SECONDS,
    STS_SESSION_NAME_MAX_CHARS,
    TOKEN_MAX_CHARS,
)

if TYPE_CHECKING:
    from pathlib import Path

    from keyless.http import HttpClient

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
    import subprocess  # here, not at the top: the pure trust engine imports this module

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

    def describe_subject(self, fields: Mapping[str, str], issuer: str) -> str | None:
        """Who a `sub` pattern admits, in words ("any branch of acme/site"), from its fields
        by ``subject_grammar`` field name (``keyless.ci.subject_words.split_fields``);
        ``issuer`` is the provider's URL without ``https://``. ``None``: no words of its own."""
        ...


_SESSION_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_+=,.@-]+")


def session_name_part(value: str) -> str:
    """``value`` with each run of characters STS refuses in a session name made one ``-``."""
    return _SESSION_NAME_UNSAFE.sub("-", value).strip("-")


def compose_session_name(ci: str, repository: str | None, *run: str | None) -> str | None:
    """``<ci>-<repository>-<run ids>`` within 64 characters (``<ci>-<run ids>`` when the repository
    is the CI's name), or ``None`` without any run id.

    The repository is shortened first: the run ids are what tell two sessions apart in CloudTrail.
    """
    tail = "-".join(part for part in (session_name_part(r) for r in run if r) if part)
    if not tail:
        return None
    room = STS_SESSION_NAME_MAX_CHARS - len(ci) - len(tail) - 2
    repo = session_name_part(repository or "")[: max(room, 0)].strip("-")
    if repo == ci:
        # A repository named after its CI (a folder `bitbucket` run locally) says nothing more.
        repo = ""
    return "-".join(part for part in (ci, repo, tail) if part)[:STS_SESSION_NAME_MAX_CHARS]


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
class SubjectFinding:
    """Why a job's `sub` does not satisfy a role, as ``keyless doctor`` reports it."""

    cause: Cause
    fix: str


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeOption:
    """One command-line flag of a CI's scope (``--repository OWNER/REPO``), declared by the CI.

    The CLI adds each flag once, in the group of the first CI that declares it with a ``help``;
    a CI that reuses another's flag (GitLab's ``--ref``) declares it with ``help=None``.
    """

    flag: str
    #: The keyword of the CI's ``scope_from_values`` that receives the value.
    dest: str
    metavar: str | None = None
    help: str | None = None
    choices: tuple[str, ...] | None = None
    #: Whether the scope cannot be built without it (named in the "needs" message, in order).
    required: bool = False


def iam_literal(text: str) -> str:
    """``text`` as a literal inside an IAM string value under Version 2012-10-17: ``$``, ``*``
    and ``?`` written as ``${$}``, ``${*}``, ``${?}`` so a name can never act as a variable or a
    wildcard (IAM User Guide, policy variables: "special characters")."""
    return text.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")


# --- the local stack: what a CI's jobs look like (claims, environment), for emulation -----------
# Used by keyless.local only; the production path never calls these members, so hashlib and uuid
# (OpenSSL's digests, platform probing; with random: 6 ms of every command's start) load on first
# use.

#: Namespace of the per-run ids a ``JobRun`` derives from its seed.
_RUN_NAMESPACE = "0f3c6d2e-4b1a-5e7f-9a8b-6c5d4e3f2a1b"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _new_seed() -> str:
    import uuid

    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRun:
    """One CI job as the local stack emulates it: what the scope leaves open.

    Per-run ids (step UUID, run id, job id, the commit) derive from ``seed``: one seed, one
    reproducible job; the default seed is random, like a new run.
    """

    #: The job's branch, or its ``tag``; neither: the scope's ref, else ``main``.
    branch: str | None = None
    tag: str | None = None
    #: Step name (Bitbucket), job name (GitHub, GitLab, CircleCI), step key (Buildkite).
    step: str = "deploy"
    build_number: int = 1
    commit: str | None = None
    #: Name of the deployment environment (Bitbucket, GitLab); GitHub's is in its scope.
    deployment: str | None = None
    #: What started the run: GitHub's ``event_name``, GitLab's ``pipeline_source``.
    event: str = "push"
    seed: str = field(default_factory=_new_seed)

    def __post_init__(self) -> None:
        if self.branch is not None and self.tag is not None:
            raise UsageError("a job runs for a branch or a tag, not both")
        for what, value in (("branch", self.branch), ("tag", self.tag)):
            if value is not None and (not value or ":" in value or value.startswith("refs/")):
                raise UsageError(f"job {what} {value!r} is not a {what} name")
        if not self.step or self.build_number < 1:
            raise UsageError("a job needs a step name and a build number of at least 1")
        if self.commit is not None and not _COMMIT.fullmatch(self.commit):
            raise UsageError(f"commit {self.commit!r} is not 40 lowercase hex digits")

    def uuid(self, name: str) -> str:
        """A UUID of this run for ``name`` ("step", "pipeline", ...), lowercase, no braces."""
        return stable_uuid(f"{self.seed}:{name}")

    def number(self, name: str, *, digits: int = 10) -> str:
        """A decimal id of this run for ``name`` with ``digits`` digits (no leading zero)."""
        return stable_number(f"{self.seed}:{name}", digits=digits)

    @property
    def sha(self) -> str:
        import hashlib

        return self.commit or hashlib.sha1(self.seed.encode(), usedforsecurity=False).hexdigest()

    def ref(self, pinned: str | None = None) -> tuple[str, str]:
        """``("branch" | "tag", name)`` of this job. ``pinned`` is the scope's full ref
        (``refs/heads/X``, ``refs/tags/X``); the job's own branch or tag must not contradict it."""
        own = (
            f"refs/tags/{self.tag}"
            if self.tag is not None
            else f"refs/heads/{self.branch}"
            if self.branch is not None
            else None
        )
        if pinned is not None and own is not None and own != pinned:
            raise UsageError(f"the scope pins {pinned}, but the job runs for {own}")
        full = pinned or own or "refs/heads/main"
        if full.startswith("refs/tags/"):
            return "tag", full.removeprefix("refs/tags/")
        return "branch", full.removeprefix("refs/heads/")


def stable_number(text: str, *, digits: int = 10) -> str:
    """A decimal id with ``digits`` digits (no leading zero) that ``text`` always maps to: ids a
    CI keeps across runs (repository, project, user) for a name the scope gives."""
    import hashlib

    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    low = 10 ** (digits - 1)
    return str(low + digest % (9 * low))


def stable_uuid(text: str) -> str:
    """A UUID that ``text`` always maps to (lowercase, no braces)."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(_RUN_NAMESPACE), text))


def issuer_path_of(issuer: str) -> str:
    """The path of an issuer URL: ``/`` for a host's root issuer, else e.g. ``/org/<uuid>``."""
    return urllib.parse.urlsplit(issuer).path.rstrip("/") or "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobClaims:
    """What a CI puts in one job's token, except ``iss`` and the times, which the issuer adds."""

    claims: Mapping[str, object]
    #: ``exp - iat``, in seconds.
    lifetime: int
    #: Whether the CI sets ``nbf`` (then equal to ``iat``).
    not_before: bool = True

    def with_audience(self, audience: str) -> JobClaims:
        """The same token for another audience (what a job asks its CI for at run time)."""
        return replace(self, claims={**self.claims, "aud": audience})

    def with_lifetime(self, lifetime: int) -> JobClaims:
        if lifetime <= 0:
            raise UsageError(f"token lifetime must be positive ({lifetime})")
        return replace(self, lifetime=lifetime)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenEndpoint:
    """Where an emulated job asks for tokens (GitHub's request URL, Buildkite's agent API)."""

    url: str
    bearer: str = field(repr=False)


class JobTokens(Protocol):
    """How the local stack hands an emulated job its tokens, for the issuer of one scope."""

    def sign(self, claims: JobClaims) -> RawToken:
        """A token with ``claims``, signed by the scope's issuer."""
        ...

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        """A token endpoint for this job: it mints ``claims`` with the audience (and, where the
        CI allows it, the lifetime) that the job asks for."""
        ...


class CiProvider(Provider, Protocol):
    """A CI whose tokens and jobs the local stack can emulate (every provider but token files)."""

    #: Where the issuer's JWKS is served, below the issuer URL.
    jwks_suffix: str
    #: The CI's name in scope messages and the CLI's scope group ("GitHub", "Bitbucket").
    short_name: str
    #: The flags of this CI's scope, and the same in one or two lines for a help epilog.
    scope_options: tuple[ScopeOption, ...]
    scope_usage: tuple[str, ...]

    def scope_from_values(self, values: Mapping[str, str | None]) -> Scope:
        """The scope from the values of ``scope_options`` by ``dest`` (``None``: not given)."""
        ...

    def guess_from_subject(self, subject: str) -> bool:
        """True when ``subject`` has a shape only this CI's default `sub` has."""
        ...

    def oidc_disabled(self, env: Mapping[str, str]) -> bool:
        """True when the job runs without the CI's OIDC switch (the token variables are absent)."""
        ...

    def classify_subject(
        self, actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
    ) -> SubjectFinding | None:
        """This CI's own reading of a `sub` that matches none of ``patterns``, or ``None``."""
        ...

    def likely_subject_cause(self, subject: str) -> SubjectFinding | None:
        """Why STS likely denied ``subject`` when no trust policy can be read, or ``None``."""
        ...

    def renew_hint(self) -> str | None:
        """How to get a fresh token after the job's expired, or ``None`` (the generic advice)."""
        ...

    def audience_hint(self) -> str | None:
        """Where this CI's audience is chosen, or ``None`` (the generic advice)."""
        ...

    def issuer_path(self, scope: Scope) -> str:
        """The path of ``scope``'s issuer below the CI's host: ``/`` or a per-tenant path."""
        ...

    def job_claims(self, scope: Scope, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
        """The claims this CI mints for ``run`` of ``scope``; ``audiences`` replace the default
        audience where the CI lets a pipeline choose it (``UsageError`` where it does not)."""
        ...

    def job_environment(
        self, scope: Scope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        """The variables this CI sets in ``run``'s job, token delivery included."""
        ...

    def job_files(
        self,
        scope: Scope,
        run: JobRun,
        *,
        tokens: JobTokens,
        settings: Mapping[str, str],
        folder: Path,
        region: str,
    ) -> dict[str, str]:
        """The files this CI writes for ``run``'s job into ``folder`` (private, existing) from
        the variables the user set for the job (``settings``), and the variables that name them
        (they replace the job's own). Most CIs write none."""
        ...
