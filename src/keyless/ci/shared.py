"""What the CI provider modules have in common, written once: ``CiBase``.

A CI module subclasses ``CiBase`` with its scope type, states its facts as class attributes
(name, markers, claims, subject grammar, scope flags) and implements what only it knows: how a job
gets its token, which issuer URLs are its own, and what its jobs look like to the local stack.
Everything with a default here (detection by marker, the scope check, the local-stack dispatch,
the doctor's hooks) is overridden only where a CI differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from keyless.ci.base import (
    STANDARD_SAFE_CLAIMS,
    JobClaims,
    JobRun,
    JobTokens,
    ObtainedToken,
    ScopeOption,
    SegmentRole,
    SubjectFinding,
    SubjectGrammar,
    TrustSpec,
    checked_token,
    env_true,
    issuer_path_of,
)
from keyless.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path


class _IssuedScope(Protocol):
    """A scope whose issuer URL is known (every CI scope)."""

    @property
    def issuer(self) -> str: ...

    def trust_spec(self) -> TrustSpec: ...


ScopeT = TypeVar("ScopeT", bound=_IssuedScope)


class CiBase(Generic[ScopeT]):
    """The shared part of a CI provider; a subclass per CI, one instance (``PROVIDER``) each."""

    name: str
    display_name: str
    #: The CI's name in scope messages and the CLI's scope group ("GitHub", "Bitbucket").
    short_name: str
    markers: tuple[str, ...]
    aws_condition_claims: frozenset[str] = frozenset()
    aws_unconfirmed_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS
    shared_issuer: bool
    subject_grammar: SubjectGrammar
    #: The issuer URLs this CI's tokens carry (``owns_issuer``); a CI with a rule of its own
    #: overrides ``owns_issuer`` instead.
    issuer_shape: re.Pattern[str] | None = None
    jwks_suffix: str = "/.well-known/jwks"
    #: The audience ``keyless provision`` registers for every scope of this CI (the CIs that let
    #: the job choose it); ``None`` when it depends on the scope (Bitbucket's workspace ARI).
    aws_audience: str | None = None

    #: The scope type this CI's trust is pinned to, and its command-line flags.
    scope_type: type[ScopeT]
    scope_options: tuple[ScopeOption, ...] = ()
    #: The flags in one or two lines for a help epilog ("--repository OWNER/REPO [--ref REF]").
    scope_usage: tuple[str, ...] = ()

    # --- detection and delivery ------------------------------------------------------------------

    def in_ci(self, env: Mapping[str, str]) -> bool:
        # The first marker is the CI's documented "this is a job" flag (`GITLAB_CI=true`).
        return env_true(env, self.markers[0])

    def owns_issuer(self, issuer: str) -> bool:
        return self.issuer_shape is not None and self.issuer_shape.fullmatch(issuer) is not None

    def checked(self, value: str, *, source: str) -> ObtainedToken:
        """``value`` (read from ``source``) as this CI's token, once it has a JWT's shape."""
        return checked_token(
            value, provider=self.name, display_name=self.display_name, source=source
        )

    # --- scope -----------------------------------------------------------------------------------

    def own(self, scope: object) -> ScopeT:
        """``scope`` when it is this CI's; ``UsageError`` naming both types if not."""
        if not isinstance(scope, self.scope_type):
            raise UsageError(
                f"{self.short_name} needs a {self.short_name} scope, not {type(scope).__name__}"
            )
        return scope

    def scope_from_values(self, values: Mapping[str, str | None]) -> ScopeT:
        """The scope from the values of ``scope_options`` (by ``dest``; required ones present)."""
        return self.scope_type(**values)

    # --- the local stack (keyless.local): what a job's token and environment look like ---------

    def issuer_path(self, scope: object) -> str:
        return issuer_path_of(self.own(scope).issuer)

    def job_claims(self, scope: object, run: JobRun, *, audiences: Sequence[str] = ()) -> JobClaims:
        return self.claims_for(self.own(scope), run, audiences=audiences)

    def job_environment(
        self, scope: object, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
    ) -> dict[str, str]:
        return self.environment_for(self.own(scope), run, tokens=tokens, audiences=audiences)

    def job_files(
        self,
        scope: object,
        run: JobRun,
        *,
        tokens: JobTokens,
        settings: Mapping[str, str],
        folder: Path,
        region: str,
    ) -> dict[str, str]:
        return self.files_for(
            self.own(scope), run, tokens=tokens, settings=settings, folder=folder, region=region
        )

    def claims_for(self, scope: ScopeT, run: JobRun, *, audiences: Sequence[str]) -> JobClaims:
        raise NotImplementedError

    def environment_for(
        self, scope: ScopeT, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str]
    ) -> dict[str, str]:
        raise NotImplementedError

    def files_for(
        self,
        scope: ScopeT,
        run: JobRun,
        *,
        tokens: JobTokens,
        settings: Mapping[str, str],
        folder: Path,
        region: str,
    ) -> dict[str, str]:
        return {}

    # --- keyless doctor: what this CI adds to the generic diagnosis ------------------------------

    def guess_from_subject(self, subject: str) -> bool:
        """True when ``subject`` has a shape only this CI's default `sub` has (a token file
        says nothing about its CI, its `sub` sometimes does)."""
        return False

    def oidc_disabled(self, env: Mapping[str, str]) -> bool:
        """True when the job runs without the CI's OIDC switch (the token variables are absent)."""
        return False

    def classify_subject(
        self, actual: str, patterns: Sequence[str], *, differing: SegmentRole | None
    ) -> SubjectFinding | None:
        """This CI's own reading of a `sub` that matches none of ``patterns``; ``None`` leaves it
        to the generic classification by the first segment that differs (``differing``: its
        role, ``None`` when the grammar cannot tell)."""
        return None

    def likely_subject_cause(self, subject: str) -> SubjectFinding | None:
        """The likely reason STS denied a token with ``subject`` when no policy can be read."""
        return None

    def renew_hint(self) -> str | None:
        """How to get a fresh token when the job's has expired; ``None``: the generic advice."""
        return None

    def audience_hint(self) -> str | None:
        """Where this CI's audience is chosen; ``None``: the generic advice."""
        return None

    # --- keyless audit ---------------------------------------------------------------------------

    def describe_subject(self, fields: Mapping[str, str], issuer: str) -> str | None:
        """Who a `sub` pattern admits, in this CI's words; ``None``: the generic words."""
        return None
