"""CI jobs on the local stack: one HTTPS issuer server per CI sharing the stack's CA, tokens for a
scope with the claims its CI mints, and the token endpoints that emulated jobs call.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from keyless.ci import bitbucket, buildkite, circleci, github
from keyless.ci.base import (
    CiProvider,
    JobClaims,
    JobRun,
    RawToken,
    Scope,
    TokenEndpoint,
)
from keyless.errors import KeylessError, UsageError
from keyless.limits import (
    GITHUB_REQUEST_TOKEN_LIFETIME_SECONDS,
    LOCAL_TOKEN_MAX_LIFETIME_SECONDS,
)
from keyless.local.issuer import LocalIssuer
from keyless.local.issuer_server import Request, Response
from keyless.local.names import EMULATED
from keyless.tokens import IssuerUrl

__all__ = [
    "BUILDKITE_OIDC_PATH",
    "EMULATED",
    "GITHUB_REQUEST_PATH",
    "JOBS_PATH",
    "PING_PATH",
    "SIGN_PATH",
    "CiIssuers",
    "IssuerTokens",
    "claims_from_query",
    "claims_query",
    "emulated",
    "issuer_patterns",
]

#: CIs with one issuer per host, served at the root from the start (docs/ci-tokens.md#github-issuer,
#: #gitlab-issuer, #buildkite, #terraform); the others get an issuer per workspace or organization
#: when a scope first names it.
_ROOT_ISSUERS: Final = frozenset({"github", "gitlab", "buildkite", "terraform"})

#: GitHub's runtime token endpoint; the request URL carries a query already
#: (docs/ci-tokens.md#github-delivery).
GITHUB_REQUEST_PATH: Final = "/_apis/distributedtask/idtoken"
GITHUB_REQUEST_QUERY: Final = "api-version=2.0"
#: The agent API path where the ``buildkite-agent`` stand-in asks for tokens.
BUILDKITE_OIDC_PATH: Final = buildkite.AGENT_API_PATH + "/oidc/tokens"
#: Control routes for ``keyless local`` commands in other processes (bearer: the control secret).
SIGN_PATH: Final = "/_keyless/sign"
JOBS_PATH: Final = "/_keyless/jobs"
PING_PATH: Final = "/_keyless/ping"


#: The issuer URL of one tenant of the CIs with an issuer per tenant (workspace, organization),
#: from which the real host is taken: a local path is a tenant's when the provider would own the
#: same path on its real host.
_TENANT_ISSUER: Final[Mapping[str, Callable[[str], str]]] = {
    "bitbucket": bitbucket.issuer_for,
    "circleci": circleci.issuer_for,
}


def _tenant_issuers(provider: CiProvider) -> Callable[[str], bool] | None:
    """Which issuer paths of ``provider`` are served from their first request: any well-formed
    workspace (Bitbucket) or organization (CircleCI) issuer, so that provisioning can read its
    discovery document on a fresh stack."""
    example = _TENANT_ISSUER.get(provider.name)
    if example is None:
        return None
    parts = urllib.parse.urlsplit(example("example"))
    origin = f"{parts.scheme}://{parts.netloc}"
    return lambda path: provider.owns_issuer(origin + path)


def issuer_patterns(base_urls: Mapping[str, str]) -> dict[str, str]:
    """Per CI, the issuer URL pattern the stack serves (``<workspace>`` for the tenant part)."""
    placeholders = {"bitbucket": "<workspace>", "circleci": "<org-uuid>"}
    found = {}
    for name, base in base_urls.items():
        issuer = _TENANT_ISSUER.get(name)
        if issuer is None:
            found[name] = base
        else:
            path = urllib.parse.urlsplit(issuer(placeholders[name])).path
            found[name] = base + path
    return found


def emulated(name: str) -> CiProvider:
    """The emulated CI called ``name``; ``UsageError`` naming the choices if none."""
    for provider in EMULATED:
        if provider.name == name:
            return provider
    choices = ", ".join(p.name for p in EMULATED)
    raise UsageError(f"the local stack does not emulate {name!r}; choose one of {choices}")


# --- the wire format of the control routes -------------------------------------------------------


def claims_query(issuer_path: str, claims: JobClaims) -> dict[str, str]:
    """Query parameters that carry ``claims`` for the issuer at ``issuer_path`` (no secrets)."""
    return {
        "path": issuer_path,
        "claims": json.dumps(dict(claims.claims), separators=(",", ":")),
        "lifetime": str(claims.lifetime),
        "nbf": "1" if claims.not_before else "0",
    }


def claims_from_query(query: Mapping[str, Sequence[str]]) -> tuple[str, JobClaims]:
    """``(issuer path, claims)`` from ``claims_query``'s parameters; ``UsageError`` if malformed."""
    try:
        path = _one(query, "path")
        document = json.loads(_one(query, "claims"))
        lifetime = int(_one(query, "lifetime"))
        not_before = _one(query, "nbf") == "1"
    except (KeyError, ValueError) as exc:
        raise UsageError(f"malformed claims query ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise UsageError("claims must be a JSON object")
    return path, JobClaims(claims=document, lifetime=lifetime, not_before=not_before)


def _one(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name) or ()
    if len(values) != 1:
        raise KeyError(name)
    return values[0]


# --- request tokens of emulated jobs --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    issuer_path: str
    claims: JobClaims
    expires_at: float


class _Jobs:
    """Request tokens of emulated jobs and what to mint for them; only their hashes are kept."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}

    def register(self, issuer_path: str, claims: JobClaims) -> str:
        bearer = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._jobs = {k: j for k, j in self._jobs.items() if j.expires_at > now}
            self._jobs[_digest(bearer)] = _Job(
                issuer_path=issuer_path,
                claims=claims,
                expires_at=now + GITHUB_REQUEST_TOKEN_LIFETIME_SECONDS,
            )
        return bearer

    def find(self, bearer: str | None) -> _Job | None:
        if not bearer:
            return None
        with self._lock:
            job = self._jobs.get(_digest(bearer))
        if job is None or job.expires_at <= self._clock():
            return None
        return job


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _authorization(request: Request, scheme: str) -> str | None:
    """The credentials of an ``Authorization: <scheme> <credentials>`` header (any case)."""
    for name, value in request.headers.items():
        if name.lower() == "authorization":
            given, _, credentials = value.strip().partition(" ")
            if given.lower() == scheme and credentials.strip():
                return credentials.strip()
    return None


def _refused(status: int, message: str) -> Response:
    return Response.json({"message": message}, status=status)


# --- the issuer servers ------------------------------------------------------------------------


class CiIssuers:
    """One HTTPS issuer server per emulated CI on 127.0.0.1, all with the CA in ``tls_dir``.

    With ``state_dir`` each CI's issuers and keys persist in ``state_dir/<ci>``; with
    ``base_port`` the servers listen on ``base_port``, ``base_port + 1``, ... in ``EMULATED``
    order (ephemeral ports when 0). The GitHub server also serves the runtime's token endpoint,
    the Buildkite server the agent's; every server serves the control routes, which need
    ``control_secret`` as bearer.
    """

    def __init__(
        self,
        *,
        tls_dir: Path,
        state_dir: Path | None = None,
        base_port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.control_secret = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._jobs = {provider.name: _Jobs(clock) for provider in EMULATED}
        self._servers: dict[str, LocalIssuer] = {}
        for offset, provider in enumerate(EMULATED):
            server = LocalIssuer(
                paths=(),
                state_dir=state_dir / provider.name if state_dir is not None else None,
                tls_dir=tls_dir,
                port=base_port + offset if base_port else 0,
                clock=clock,
                on_demand=_tenant_issuers(provider),
                on_demand_jwks_suffix=provider.jwks_suffix,
            )
            self._servers[provider.name] = server
            if provider.name in _ROOT_ISSUERS and "/" not in server.issuer_paths():
                server.add_issuer("/", jwks_suffix=provider.jwks_suffix)
            self._add_routes(provider, server)
        self._exit: contextlib.ExitStack | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> CiIssuers:
        with contextlib.ExitStack() as exit_stack:
            for server in self._servers.values():
                exit_stack.enter_context(server)
            self._exit = exit_stack.pop_all()
        return self

    def stop(self) -> None:
        exit_stack, self._exit = self._exit, None
        if exit_stack is not None:
            exit_stack.close()

    def __enter__(self) -> CiIssuers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------------

    def server(self, ci: str) -> LocalIssuer:
        """The issuer server of CI ``ci`` (e.g. to rotate its keys)."""
        emulated(ci)
        return self._servers[ci]

    def base_urls(self) -> dict[str, str]:
        """Each CI's server as ``https://127.0.0.1:PORT``, by CI name."""
        return {name: server.base_url for name, server in self._servers.items()}

    @property
    def ca_bundle(self) -> Path:
        return next(iter(self._servers.values())).ca_bundle

    @property
    def ca_thumbprint(self) -> str:
        return next(iter(self._servers.values())).ca_thumbprint

    def issuers(self) -> dict[str, tuple[IssuerUrl, ...]]:
        """Every issuer served so far, by CI name."""
        return {name: server.issuers for name, server in self._servers.items()}

    def issuer_for(self, provider: CiProvider, scope: Scope) -> IssuerUrl:
        """The local issuer URL of ``scope`` (served from now on if it was not yet)."""
        return self._ensure(provider.name, provider.issuer_path(scope))

    # --- tokens ------------------------------------------------------------------------------

    def mint(
        self,
        provider: CiProvider,
        scope: Scope,
        run: JobRun | None = None,
        *,
        audiences: Sequence[str] = (),
        lifetime: int | None = None,
    ) -> RawToken:
        """A token of ``scope``'s local issuer with the claims ``provider``'s CI mints for
        ``run`` (a fresh run by default)."""
        claims = provider.job_claims(scope, run or JobRun(), audiences=audiences)
        if lifetime is not None:
            claims = claims.with_lifetime(lifetime)
        return self.sign(provider.name, provider.issuer_path(scope), claims)

    def job_environment(
        self,
        provider: CiProvider,
        scope: Scope,
        run: JobRun | None = None,
        *,
        audiences: Sequence[str] = (),
    ) -> dict[str, str]:
        """The variables ``provider``'s CI sets in ``run``'s job, tokens from this stack."""
        tokens = IssuerTokens(issuers=self, ci=provider.name, path=provider.issuer_path(scope))
        return provider.job_environment(scope, run or JobRun(), tokens=tokens, audiences=audiences)

    def sign(self, ci: str, issuer_path: str, claims: JobClaims) -> RawToken:
        """``claims`` signed by CI ``ci``'s issuer at ``issuer_path`` (served from now on)."""
        issuer = self._ensure(ci, issuer_path)
        return self._servers[ci].mint(
            issuer, claims.claims, lifetime=claims.lifetime, not_before=claims.not_before
        )

    def register_job(self, ci: str, issuer_path: str, claims: JobClaims) -> TokenEndpoint:
        """A token endpoint and request token for a job of CI ``ci`` (GitHub, Buildkite)."""
        self._ensure(ci, issuer_path)
        base = self._servers[ci].base_url
        if ci == github.PROVIDER.name:
            url = f"{base}{GITHUB_REQUEST_PATH}?{GITHUB_REQUEST_QUERY}"
        elif ci == buildkite.PROVIDER.name:
            url = base + buildkite.AGENT_API_PATH
        else:
            raise UsageError(f"{emulated(ci).display_name} jobs get their tokens, no endpoint")
        return TokenEndpoint(url=url, bearer=self._jobs[ci].register(issuer_path, claims))

    # --- internals -----------------------------------------------------------------------------

    def _ensure(self, ci: str, issuer_path: str) -> IssuerUrl:
        provider = emulated(ci)
        server = self._servers[ci]
        with self._lock:
            if issuer_path not in server.issuer_paths():
                server.add_issuer(issuer_path, jwks_suffix=provider.jwks_suffix)
        return server.issuer_url(issuer_path)

    def _add_routes(self, provider: CiProvider, server: LocalIssuer) -> None:
        ci = provider.name
        server.add_route(SIGN_PATH, self._control(lambda r: self._sign_route(ci, r)))
        server.add_route(JOBS_PATH, self._control(lambda r: self._jobs_route(ci, r)))
        server.add_route(PING_PATH, self._control(lambda r: Response.json({"ci": ci})))
        if ci == github.PROVIDER.name:
            server.add_route(GITHUB_REQUEST_PATH, self._github_token)
        if ci == buildkite.PROVIDER.name:
            server.add_route(BUILDKITE_OIDC_PATH, self._buildkite_token)

    def _control(self, route: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            given = _authorization(request, "bearer")
            if given is None or not hmac.compare_digest(given, self.control_secret):
                return _refused(401, "the control routes need the stack's control secret")
            try:
                return route(request)
            except KeylessError as exc:
                return _refused(400, exc.message)

        return guarded

    def _sign_route(self, ci: str, request: Request) -> Response:
        path, claims = claims_from_query(request.query)
        token = self.sign(ci, path, claims)
        return Response.json({"value": token, "issuer": self._servers[ci].issuer_url(path)})

    def _jobs_route(self, ci: str, request: Request) -> Response:
        path, claims = claims_from_query(request.query)
        endpoint = self.register_job(ci, path, claims)
        return Response.json({"url": endpoint.url, "bearer": endpoint.bearer})

    def _github_token(self, request: Request) -> Response:
        """GitHub's runtime: ``GET <url>&audience=AUD`` with ``Authorization: bearer <request
        token>`` answers ``{"value": <ID token>}`` (docs/ci-tokens.md#github-delivery)."""
        job = self._jobs[github.PROVIDER.name].find(_authorization(request, "bearer"))
        if job is None:
            return _refused(401, "Bad credentials: the request token is missing or unknown")
        claims = job.claims
        audiences = request.query.get("audience") or ()
        if len(audiences) > 1 or (audiences and not audiences[0]):
            return _refused(400, "give one non-empty audience")
        if audiences:
            claims = claims.with_audience(audiences[0])
        return Response.json({"value": self.sign(github.PROVIDER.name, job.issuer_path, claims)})

    def _buildkite_token(self, request: Request) -> Response:
        """The agent API: ``Authorization: Token <job's agent access token>``, optional
        ``audience`` and ``lifetime``; answers ``{"token": <ID token>}``."""
        job = self._jobs[buildkite.PROVIDER.name].find(_authorization(request, "token"))
        if job is None:
            return _refused(401, "the agent access token is missing or unknown")
        claims = job.claims
        try:
            audience = request.query.get("audience") or ()
            lifetime = request.query.get("lifetime") or ()
            if audience:
                claims = claims.with_audience(_one(request.query, "audience"))
            if lifetime:
                seconds = int(_one(request.query, "lifetime"))
                if seconds > LOCAL_TOKEN_MAX_LIFETIME_SECONDS:
                    raise UsageError(
                        f"lifetime {seconds} is above {LOCAL_TOKEN_MAX_LIFETIME_SECONDS}"
                    )
                claims = claims.with_lifetime(seconds)
        except (KeyError, ValueError, UsageError) as exc:
            return _refused(400, f"bad audience or lifetime ({type(exc).__name__})")
        token = self.sign(buildkite.PROVIDER.name, job.issuer_path, claims)
        return Response.json({"token": token})


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerTokens:
    """``JobTokens`` of one scope's issuer on ``CiIssuers`` in this process."""

    issuers: CiIssuers
    ci: str
    path: str

    def sign(self, claims: JobClaims) -> RawToken:
        return self.issuers.sign(self.ci, self.path, claims)

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        return self.issuers.register_job(self.ci, self.path, claims)
