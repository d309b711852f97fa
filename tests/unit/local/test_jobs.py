"""The CI issuer servers of the local stack: tokens that verify against their issuer, GitHub's
token endpoint and Buildkite's agent API as jobs call them, and the guarded control routes."""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from keyless import tokens
from keyless.ci import buildkite, github
from keyless.ci.base import JobRun, RunResult
from keyless.ci.bitbucket import BitbucketScope
from keyless.ci.buildkite import BuildkiteScope
from keyless.ci.circleci import CircleCIScope
from keyless.ci.github import GitHubScope
from keyless.ci.gitlab import GitLabScope
from keyless.errors import CredentialError, UsageError
from keyless.http import UrllibClient
from keyless.local import buildkite_agent
from keyless.local.jobs import (
    EMULATED,
    GITHUB_REQUEST_PATH,
    PING_PATH,
    SIGN_PATH,
    CiIssuers,
    claims_from_query,
    claims_query,
    emulated,
)
from keyless.local.served import RemoteTokens, StackInfo

BB = BitbucketScope(
    workspace="acme",
    workspace_uuid="5c0ffee0-0000-4000-8000-000000000001",
    repository_uuid="7a1e0000-0000-4000-8000-00000000000a",
)
CIRCLE = CircleCIScope(
    org_id="6c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c11", project_id="1c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c22"
)
SITE = GitHubScope(repository="acme/site", ref="main")
SITE_GITLAB = GitLabScope(project="g/p")


@pytest.fixture(scope="module")
def issuers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CiIssuers]:
    with CiIssuers(tls_dir=tmp_path_factory.mktemp("tls")) as running:
        yield running


@pytest.fixture
def http(issuers: CiIssuers) -> UrllibClient:
    return UrllibClient(ca_bundle=issuers.ca_bundle)


def _verify(issuers: CiIssuers, token: str, issuer: str, audience: str) -> tokens.VerifiedClaims:
    return tokens.verify(
        token, issuer=issuer, audience=audience, http=UrllibClient(ca_bundle=issuers.ca_bundle)
    )


def test_a_token_verifies_against_its_scopes_issuer_with_the_real_path(
    issuers: CiIssuers,
) -> None:
    provider = emulated("bitbucket")
    token = issuers.mint(provider, BB, JobRun(seed="a"))
    issuer = issuers.issuer_for(provider, BB)
    assert issuer.endswith("/2.0/workspaces/acme/pipelines-config/identity/oidc")
    verified = _verify(issuers, token, issuer, BB.audience)
    assert verified.subject.startswith("{7a1e0000-0000-4000-8000-00000000000a}:{")
    assert "nbf" not in verified.claims
    assert verified.expires_at - verified.issued_at == 3600
    assert issuer in issuers.issuers()["bitbucket"]


def test_each_ci_has_its_own_server_and_jwks_path(issuers: CiIssuers, http: UrllibClient) -> None:
    urls = issuers.base_urls()
    assert len(set(urls.values())) == len(EMULATED)
    circle = issuers.issuer_for(emulated("circleci"), CIRCLE)
    assert circle == f"{urls['circleci']}/org/{CIRCLE.org_id}"
    for ci, issuer, suffix in (
        ("github", urls["github"], "/.well-known/jwks"),
        ("gitlab", urls["gitlab"], "/oauth/discovery/keys"),
        ("bitbucket", issuers.issuer_for(emulated("bitbucket"), BB), "/keys.json"),
    ):
        response = http.get(issuer + "/.well-known/openid-configuration")
        assert response.status == 200, ci
        assert json.loads(response.body)["jwks_uri"] == issuer + suffix


@pytest.mark.parametrize("ci", ["github", "gitlab", "buildkite", "terraform"])
def test_a_one_issuer_ci_serves_its_discovery_before_any_token(tmp_path: Path, ci: str) -> None:
    # `keyless provision --issuer` reads it before any job of the stack ran.
    with CiIssuers(tls_dir=tmp_path) as fresh:
        root = fresh.base_urls()[ci]
        response = UrllibClient(ca_bundle=fresh.ca_bundle).get(
            root + "/.well-known/openid-configuration"
        )
        assert response.status == 200
        assert json.loads(response.body)["issuer"] == root


def test_lifetime_and_audience_can_be_overridden(issuers: CiIssuers) -> None:
    provider = emulated("github")
    token = issuers.mint(provider, SITE, audiences=["sts.amazonaws.com"], lifetime=60)
    verified = _verify(issuers, token, issuers.base_urls()["github"], "sts.amazonaws.com")
    assert verified.expires_at - verified.issued_at == 60
    with pytest.raises(UsageError):
        issuers.mint(provider, SITE, lifetime=0)


def test_githubs_token_endpoint_serves_the_real_github_client(issuers: CiIssuers) -> None:
    env = issuers.job_environment(emulated("github"), SITE, JobRun(seed="gh"))
    assert env["ACTIONS_ID_TOKEN_REQUEST_URL"].endswith(GITHUB_REQUEST_PATH + "?api-version=2.0")
    client = UrllibClient(ca_bundle=issuers.ca_bundle)
    obtained = github.PROVIDER.obtain(env, audience="sts.amazonaws.com", http=client)
    assert obtained is not None
    verified = _verify(issuers, obtained.token, issuers.base_urls()["github"], "sts.amazonaws.com")
    assert verified.subject == "repo:acme/site:ref:refs/heads/main"
    assert verified.expires_at - verified.issued_at == 300
    other = github.PROVIDER.obtain(env, audience="https://example.test", http=client)
    assert other is not None
    assert tokens.peek(other.token).audience == ("https://example.test",)


def test_githubs_token_endpoint_refuses_a_wrong_or_missing_bearer(
    issuers: CiIssuers, http: UrllibClient
) -> None:
    env = issuers.job_environment(emulated("github"), SITE)
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=sts.amazonaws.com"
    assert http.get(url).status == 401
    assert http.get(url, headers={"Authorization": "bearer wrong"}).status == 401
    # The control secret is no request token either.
    assert (
        http.get(url, headers={"Authorization": f"bearer {issuers.control_secret}"}).status == 401
    )
    good = {"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
    assert http.get(url, headers=good).status == 200
    forged = {**env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "forged-request-token"}
    with pytest.raises(CredentialError, match="HTTP 401") as info:
        github.PROVIDER.obtain(forged, audience=None, http=http)
    assert "forged-request-token" not in info.value.diagnostics()


def test_buildkite_agent_stand_in_asks_the_agent_api(issuers: CiIssuers) -> None:
    env = issuers.job_environment(
        emulated("buildkite"), BuildkiteScope(organization="acme", pipeline="site")
    )
    env["KEYLESS_LOCAL_CA_BUNDLE"] = str(issuers.ca_bundle)
    out, err = io.StringIO(), io.StringIO()
    argv = ["oidc", "request-token", "--audience", "sts.amazonaws.com", "--lifetime", "120"]
    assert buildkite_agent.main(argv, env=env, stdout=out, stderr=err) == 0, err.getvalue()
    verified = _verify(
        issuers, out.getvalue().strip(), issuers.base_urls()["buildkite"], "sts.amazonaws.com"
    )
    assert verified.expires_at - verified.issued_at == 120
    assert verified.claims["pipeline_slug"] == "site"
    # The production client runs the stand-in as it runs the real agent.
    obtained = buildkite.PROVIDER.obtain(
        env, audience=None, http=UrllibClient(), runner=_in_process_agent
    )
    assert obtained is not None
    assert tokens.peek(obtained.token).audience == ("sts.amazonaws.com",)


def _in_process_agent(argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> RunResult:
    assert argv[0] == "buildkite-agent"
    out, err = io.StringIO(), io.StringIO()
    code = buildkite_agent.main(argv[1:], env=env, stdout=out, stderr=err)
    return RunResult(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_buildkite_agent_stand_in_refuses_what_it_does_not_emulate(issuers: CiIssuers) -> None:
    env = issuers.job_environment(
        emulated("buildkite"), BuildkiteScope(organization="a", pipeline="p")
    )
    env["KEYLESS_LOCAL_CA_BUNDLE"] = str(issuers.ca_bundle)
    for argv, message in (
        (["pipeline", "upload"], "only `oidc request-token`"),
        (["oidc", "request-token", "--claim", "organization_id"], "not emulated"),
        (["oidc", "request-token", "--lifetime", "x"], "invalid int"),
    ):
        err = io.StringIO()
        assert buildkite_agent.main(argv, env=env, stdout=io.StringIO(), stderr=err) == 1
        assert message in err.getvalue()
    err = io.StringIO()
    bad = {**env, "BUILDKITE_AGENT_ACCESS_TOKEN": "wrong"}
    assert (
        buildkite_agent.main(["oidc", "request-token"], env=bad, stdout=io.StringIO(), stderr=err)
        == 1
    )
    assert "HTTP 401" in err.getvalue()
    assert "wrong" not in err.getvalue()


def test_control_routes_need_the_control_secret(issuers: CiIssuers, http: UrllibClient) -> None:
    base = issuers.base_urls()["gitlab"]
    assert http.get(base + PING_PATH).status == 401
    assert http.get(base + PING_PATH, headers={"Authorization": "Bearer nope"}).status == 401
    good = {"Authorization": f"Bearer {issuers.control_secret}"}
    assert http.get(base + PING_PATH, headers=good).status == 200
    claims = emulated("gitlab").job_claims(SITE_GITLAB, JobRun())
    query = urllib.parse.urlencode(claims_query("/", claims))
    assert http.get(f"{base}{SIGN_PATH}?{query}").status == 401
    assert http.get(f"{base}{SIGN_PATH}?{query}", headers=good).status == 200
    assert http.get(f"{base}{SIGN_PATH}?path=/", headers=good).status == 400


def test_remote_tokens_sign_and_register_jobs_over_https(issuers: CiIssuers) -> None:
    info = StackInfo(
        state_dir=Path("/nonexistent"),
        pid=0,
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        account_id="123456789012",
        ca_bundle=issuers.ca_bundle,
        ca_thumbprint=issuers.ca_thumbprint,
        moto_pid=0,
        servers=issuers.base_urls(),
        issuers={},
        control_secret=issuers.control_secret,
    )
    provider = emulated("circleci")
    remote = RemoteTokens.of(info, provider, CIRCLE)
    env = provider.job_environment(CIRCLE, JobRun(), tokens=remote)
    issuer = issuers.issuer_for(provider, CIRCLE)
    verified = _verify(issuers, env["CIRCLE_OIDC_TOKEN_V2"], issuer, CIRCLE.org_id)
    assert "/vcs-origin/" in verified.subject
    github_env = emulated("github").job_environment(
        SITE, JobRun(), tokens=RemoteTokens.of(info, emulated("github"), SITE)
    )
    client = UrllibClient(ca_bundle=issuers.ca_bundle)
    assert github.PROVIDER.obtain(github_env, audience=None, http=client) is not None
    assert repr(info).count(issuers.control_secret) == 0


def test_claims_query_round_trips_and_refuses_garbage() -> None:
    claims = emulated("bitbucket").job_claims(BB, JobRun(seed="q"))
    query = urllib.parse.parse_qs(urllib.parse.urlencode(claims_query("/x", claims)))
    assert claims_from_query(query) == ("/x", claims)
    with pytest.raises(UsageError):
        claims_from_query({"path": ["/"], "claims": ["[]"], "lifetime": ["1"], "nbf": ["1"]})
    with pytest.raises(UsageError):
        claims_from_query({"path": ["/"]})


def test_ci_issuers_keep_their_keys_and_ca_in_the_state_dir(tmp_path: Path) -> None:
    tls, state = tmp_path / "tls", tmp_path / "ci"
    provider = emulated("bitbucket")
    with CiIssuers(tls_dir=tls, state_dir=state) as first:
        path = provider.issuer_path(BB)
        first.issuer_for(provider, BB)
        kid = first.server("bitbucket").active_kid(path)
        github_kid = first.server("github").active_kid("/")
        thumbprint = first.ca_thumbprint
    with CiIssuers(tls_dir=tls, state_dir=state) as second:
        assert second.ca_thumbprint == thumbprint
        assert second.server("bitbucket").active_kid(path) == kid
        assert second.server("github").active_kid("/") == github_kid
        # A new control secret per start: a stale stack file is useless.
        assert second.control_secret != first.control_secret


def test_any_workspace_or_org_issuer_answers_before_any_token(
    tmp_path: Path, http: UrllibClient
) -> None:
    from keyless.ci import bitbucket, circleci
    from keyless.limits import MAX_ON_DEMAND_ISSUERS
    from keyless.local.jobs import issuer_patterns

    with CiIssuers(tls_dir=tmp_path / "tls", state_dir=tmp_path / "state") as fresh:
        client = UrllibClient(ca_bundle=fresh.ca_bundle)
        urls = fresh.base_urls()
        workspace = urls["bitbucket"] + urllib.parse.urlsplit(bitbucket.issuer_for("never")).path
        org = urls["circleci"] + urllib.parse.urlsplit(circleci.issuer_for(CIRCLE.org_id)).path
        for issuer, keys in ((workspace, "/keys.json"), (org, "/.well-known/jwks")):
            response = client.get(issuer + "/.well-known/openid-configuration")
            assert response.status == 200, issuer
            assert json.loads(response.body)["issuer"] == issuer
            assert json.loads(client.get(issuer + keys).body)["keys"]
        # The key served before any token is the one tokens are then signed with.
        scope = BitbucketScope(
            workspace="never",
            workspace_uuid=BB.workspace_uuid,
            repository_uuid=BB.repository_uuid,
        )
        token = fresh.mint(emulated("bitbucket"), scope, audiences=["aud"])
        verified = tokens.verify(token, issuer=workspace, audience="aud", http=client)
        assert verified.claims["iss"] == workspace
        # Malformed tenants stay 404: not a workspace issuer, an org that is not a UUID.
        for wrong in (
            urls["bitbucket"] + "/2.0/workspaces/a/b/pipelines-config/identity/oidc",
            urls["circleci"] + "/org/not-a-uuid",
            urls["github"] + "/2.0/workspaces/w/pipelines-config/identity/oidc",
        ):
            assert client.get(wrong + "/.well-known/openid-configuration").status == 404
        patterns = issuer_patterns(urls)
        assert patterns["bitbucket"].endswith(
            "/2.0/workspaces/<workspace>/pipelines-config/identity/oidc"
        )
        assert patterns["circleci"] == urls["circleci"] + "/org/<org-uuid>"
        assert patterns["github"] == urls["github"]
        assert MAX_ON_DEMAND_ISSUERS >= 1
