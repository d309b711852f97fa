"""The local stack's issuers are recognised as their CI's only when the environment names them
(the variables ``keyless local serve`` exports), and only on a loopback https origin."""

from __future__ import annotations

import pytest

from keyless.ci import provider_for_issuer
from keyless.ci.local_issuers import LocalIssuers, exported_variables, from_environment

GITHUB_ROOT = "https://127.0.0.1:45002"
BITBUCKET_BASE = "https://127.0.0.1:45001"
BITBUCKET_ISSUER = BITBUCKET_BASE + "/2.0/workspaces/acme/pipelines-config/identity/oidc"
ENV = {
    "KEYLESS_LOCAL_GITHUB_ISSUER": GITHUB_ROOT,
    "KEYLESS_LOCAL_BITBUCKET_ISSUER_BASE": BITBUCKET_BASE,
}


def test_without_the_variables_a_local_issuer_is_unknown() -> None:
    assert provider_for_issuer(GITHUB_ROOT) is None
    assert provider_for_issuer(GITHUB_ROOT, from_environment({})) is None


def test_the_exported_issuers_are_their_cis() -> None:
    local = from_environment(ENV)
    github, bitbucket = (provider_for_issuer(i, local) for i in (GITHUB_ROOT, BITBUCKET_ISSUER))
    assert github is not None
    assert github.name == "github"
    assert bitbucket is not None
    assert bitbucket.name == "bitbucket"


@pytest.mark.parametrize(
    "issuer",
    [
        GITHUB_ROOT + "/",  # iss is compared byte for byte
        GITHUB_ROOT + "/other",  # a root issuer has nothing below it
        "https://127.0.0.1:45003",  # another port
        BITBUCKET_BASE,  # a base is not an issuer itself
        BITBUCKET_BASE + "/",
        "http://127.0.0.1:45002",
    ],
)
def test_only_the_named_issuers_are_recognised(issuer: str) -> None:
    assert from_environment(ENV).ci_of(issuer) is None


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com:443",  # not loopback: no variable makes a public host a CI's
        "https://api.bitbucket.org",
        "http://127.0.0.1:45002",
        "https://127.0.0.1",  # no port: not what the stack exports
        "https://127.0.0.1:45002/path",
        "https://user@127.0.0.1:45002",
        "https://127.0.0.1:99999",
        "",
    ],
)
def test_a_variable_that_is_not_a_loopback_https_origin_is_ignored(value: str) -> None:
    assert from_environment({"KEYLESS_LOCAL_GITHUB_ISSUER": value}) == LocalIssuers()


def test_public_issuers_keep_their_own_ci() -> None:
    # A local variable never changes what a public issuer is.
    local = from_environment({"KEYLESS_LOCAL_GITLAB_ISSUER": GITHUB_ROOT})
    github = provider_for_issuer("https://token.actions.githubusercontent.com", local)
    assert github is not None
    assert github.name == "github"


def test_the_exports_name_roots_and_bases() -> None:
    servers = {"github": GITHUB_ROOT, "bitbucket": BITBUCKET_BASE}
    issuers = {"github": (GITHUB_ROOT,), "bitbucket": ()}
    assert dict(exported_variables(servers, issuers)) == ENV


def test_the_remint_hint_is_for_local_tokens_only() -> None:
    local = from_environment(ENV)
    hint = local.remint_hint(GITHUB_ROOT, audience=None, path="gh.jwt")
    assert hint is not None
    assert hint.endswith(
        "keyless local token --ci github <the same scope flags> --audience sts.amazonaws.com"
        " --write gh.jwt"
    )
    bitbucket = local.remint_hint(BITBUCKET_ISSUER, audience="ari:x", path=None)
    assert bitbucket is not None
    assert bitbucket.endswith("--audience ari:x")
    assert local.remint_hint("https://token.actions.githubusercontent.com", audience=None) is None
    assert LocalIssuers().remint_hint(GITHUB_ROOT, audience=None) is None
