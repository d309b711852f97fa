"""The CI providers, their registry, and ``obtain_token``: the one way keyless gets a job's token.

Order of sources for ``ci="auto"`` (the first that applies wins; a source that applies but is
broken raises, it never falls through to the next):

1. an explicit token file: ``token_file`` (``--token-file PATH``), then ``KEYLESS_TOKEN_FILE``;
2. the CI whose environment markers are present (``BITBUCKET_BUILD_NUMBER``/``BITBUCKET_REPO_UUID``,
   ``GITHUB_ACTIONS=true``, ``GITLAB_CI=true``, ``CIRCLECI=true``, ``BUILDKITE=true``); markers of
   more than one CI are an error, not a guess;
3. ``AWS_WEB_IDENTITY_TOKEN_FILE``, the file botocore itself would read.

``ci=NAME`` uses that provider only (``"file"``: the token file sources of 1 and 3); it comes
before ``KEYLESS_TOKEN_FILE``, as ``--token-file`` does (README, ``keyless token --help``).

``detect`` decides the source; ``obtain_token``, ``keyless doctor``'s ci step and the session
name all read that one decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.ci import bitbucket, buildkite, circleci, github, gitlab, tokenfile
from keyless.ci.base import ObtainedToken, Provider, Runner
from keyless.errors import CredentialError, UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient

__all__ = [
    "CI_PROVIDERS",
    "PROVIDERS",
    "Detection",
    "ObtainedToken",
    "Provider",
    "detect",
    "get_provider",
    "obtain_token",
    "provider_for_issuer",
]

#: The CI providers, in the order detection reports them.
CI_PROVIDERS: tuple[Provider, ...] = (
    bitbucket.PROVIDER,
    github.PROVIDER,
    gitlab.PROVIDER,
    circleci.PROVIDER,
    buildkite.PROVIDER,
)
#: Every source by its ``--ci`` name: the CIs, then ``file``.
PROVIDERS: Mapping[str, Provider] = {p.name: p for p in (*CI_PROVIDERS, tokenfile.PROVIDER)}


def get_provider(name: str) -> Provider:
    """The provider called ``name`` (``--ci NAME``); ``UsageError`` naming the choices if none."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise UsageError(f"unknown CI {name!r}; choose one of {', '.join(PROVIDERS)}") from None


def provider_for_issuer(issuer: str) -> Provider | None:
    """The CI whose issuer URL shape ``issuer`` has, or ``None`` (e.g. a self-hosted issuer)."""
    for provider in CI_PROVIDERS:
        if provider.owns_issuer(issuer):
            return provider
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Detection:
    """Where this job's token comes from, before anything is read.

    ``provider`` is the source (a CI, or the token-file provider); ``None`` when no source
    applies, or when ``several`` CIs' markers are set. ``origin`` names what decided it (a flag,
    a variable or a CI marker); ``token_file`` is the file to read for the file sources.
    """

    provider: Provider | None
    origin: str = ""
    token_file: str | None = None
    several: tuple[Provider, ...] = ()

    @property
    def is_file(self) -> bool:
        return self.token_file is not None


def detect(env: Mapping[str, str], *, ci: str = "auto", token_file: str | None = None) -> Detection:
    """The one detection (order in the module docstring): ``--token-file``, then ``--ci NAME``,
    then ``KEYLESS_TOKEN_FILE``, then the CI markers, then ``AWS_WEB_IDENTITY_TOKEN_FILE``.
    Raises ``UsageError`` for an unknown CI or ``--token-file`` with another CI's ``--ci``."""
    if ci != "auto" and ci not in PROVIDERS:
        get_provider(ci)  # raises the UsageError that lists the choices
    if token_file and ci not in ("auto", tokenfile.PROVIDER.name):
        raise UsageError(
            f"--token-file and --ci {ci} contradict each other; pass one of them",
        )
    if token_file:
        return Detection(provider=tokenfile.PROVIDER, origin="--token-file", token_file=token_file)
    if ci != "auto":
        return Detection(provider=PROVIDERS[ci], origin=f"--ci {ci}")
    if env.get(tokenfile.KEYLESS_VARIABLE):
        return Detection(
            provider=tokenfile.PROVIDER,
            origin=tokenfile.KEYLESS_VARIABLE,
            token_file=env[tokenfile.KEYLESS_VARIABLE],
        )
    found = tuple(p for p in CI_PROVIDERS if p.in_ci(env))
    if len(found) > 1:
        return Detection(provider=None, several=found)
    if found:
        marker = next((m for m in found[0].markers if env.get(m)), found[0].markers[0])
        return Detection(provider=found[0], origin=marker)
    if env.get(tokenfile.AWS_VARIABLE):
        return Detection(
            provider=tokenfile.PROVIDER,
            origin=tokenfile.AWS_VARIABLE,
            token_file=env[tokenfile.AWS_VARIABLE],
        )
    return Detection(provider=None)


def obtain_token(
    env: Mapping[str, str],
    *,
    ci: str = "auto",
    audience: str | None = None,
    token_file: str | None = None,
    token_env: str | None = None,
    http: HttpClient | None = None,
    runner: Runner | None = None,
) -> ObtainedToken:
    """This job's OIDC token, from the source ``detect`` names (see the module docstring).

    ``token_env`` names the GitLab ``id_tokens:`` variable (same as ``KEYLESS_TOKEN_ENV``); it is
    refused for other CIs rather than ignored. ``http`` and ``runner`` default to the real ones.
    """
    detection = detect(env, ci=ci, token_file=token_file)
    if token_env:
        env = {**env, gitlab.NAME_VARIABLE: token_env}
    provider = detection.provider
    if detection.several:
        names = ", ".join(p.display_name for p in detection.several)
        raise CredentialError(
            f"several CIs detected ({names}); choose one with --ci NAME",
            remedy=f"For example: keyless token --ci {detection.several[0].name}",
        )
    if provider is None:
        markers = ", ".join(m for p in CI_PROVIDERS for m in p.markers[:1])
        raise CredentialError(
            f"no CI detected: none of {markers} is set, and no token file was given",
            remedy=(
                "Run keyless inside a CI job (Bitbucket Pipelines, GitHub Actions, GitLab CI,\n"
                "CircleCI, Buildkite), force one with --ci NAME, or pass a token file with\n"
                "--token-file PATH (or KEYLESS_TOKEN_FILE / AWS_WEB_IDENTITY_TOKEN_FILE)."
            ),
        )
    _refuse_token_env(token_env, provider)
    if detection.token_file is not None:
        return tokenfile.read_token_file(
            detection.token_file, origin=detection.origin, audience=audience
        )

    if http is None:
        from keyless.http import UrllibClient  # the network stack only when a token is fetched

        http = UrllibClient()
    obtained = provider.obtain(env, audience=audience, http=http, runner=runner)
    if obtained is None and ci != "auto":
        raise CredentialError(
            f"{provider.display_name}: --ci {ci} was given, but none of"
            f" {', '.join(provider.markers)} is set",
            remedy=f"Run keyless inside a {provider.display_name} job, or use --ci auto.",
        )
    if obtained is None:  # in_ci() said yes: a provider bug, still never a silent fall-back
        raise CredentialError(f"{provider.display_name}: detected, but it gave no token")
    return obtained


def _refuse_token_env(token_env: str | None, provider: Provider) -> None:
    # --token-env means something for GitLab's id_tokens variables only: say so, never ignore it.
    if token_env and provider.name != gitlab.PROVIDER.name:
        raise UsageError(
            f"--token-env {token_env} applies to GitLab CI only, not to {provider.display_name}"
        )
