"""The claims and job environments each CI's module states for the local stack, against
docs/ci-tokens.md sections 1-5: exact `sub` strings, audiences, lifetimes, ids as strings, token
delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from keyless.ci import bitbucket, buildkite, circleci, github, gitlab
from keyless.ci.base import CiProvider, JobClaims, JobRun, RawToken, Scope, TokenEndpoint
from keyless.ci.bitbucket import BitbucketScope
from keyless.ci.buildkite import BuildkiteScope
from keyless.ci.circleci import CircleCIScope
from keyless.ci.github import GitHubScope
from keyless.ci.gitlab import GitLabScope, RefType
from keyless.errors import UsageError

RUN = JobRun(seed="fixed-seed", build_number=42, commit="a" * 40)
WORKSPACE_UUID = "5c0ffee0-0000-4000-8000-000000000001"
REPO_UUID = "7a1e0000-0000-4000-8000-00000000000a"
ENV_UUID = "e1e00000-0000-4000-8000-00000000000e"
ORG_ID = "6c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c11"
PROJECT_ID = "1c1e3a3e-2f2a-4f6e-9d3c-2f9a8f1b7c22"
BB = BitbucketScope(workspace="acme", workspace_uuid=WORKSPACE_UUID, repository_uuid=REPO_UUID)


@dataclass
class Recorder:
    """``JobTokens`` that hands out placeholders and keeps what it was asked to sign."""

    signed: list[JobClaims] = field(default_factory=list)
    endpoints: list[JobClaims] = field(default_factory=list)

    def sign(self, claims: JobClaims) -> RawToken:
        self.signed.append(claims)
        return RawToken(f"signed-{len(self.signed)}")

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        self.endpoints.append(claims)
        return TokenEndpoint(url="https://127.0.0.1:1/endpoint?api-version=2.0", bearer="bearer-1")


def _step(run: JobRun, name: str) -> str:
    return "{" + run.uuid(name) + "}"


# --- Bitbucket (docs/ci-tokens.md#bitbucket) ------------------------------------------------------


def test_bitbucket_step_has_braced_uuids_and_a_two_part_subject() -> None:
    shape = bitbucket.PROVIDER.job_claims(BB, RUN)
    claims = shape.claims
    step = _step(RUN, "step")
    assert claims["sub"] == f"{{{REPO_UUID}}}:{step}"
    assert claims["aud"] == f"ari:cloud:bitbucket::workspace/{WORKSPACE_UUID}"
    assert claims["repositoryUuid"] == f"{{{REPO_UUID}}}"
    assert claims["workspaceUuid"] == f"{{{WORKSPACE_UUID}}}"
    assert claims["stepUuid"] == step
    assert claims["pipelineUuid"] == _step(RUN, "pipeline")
    assert claims["branchName"] == "main"
    assert "deploymentEnvironmentUuid" not in claims
    # Atlassian's example payload has exp and iat, no nbf; iss and times come from the issuer.
    assert not shape.not_before
    assert not {"iss", "iat", "exp", "nbf"} & set(claims)


def test_bitbucket_deployment_step_has_a_three_part_subject() -> None:
    scope = BitbucketScope(
        workspace="acme",
        workspace_uuid=f"{{{WORKSPACE_UUID}}}",
        repository_uuid=REPO_UUID,
        environment_uuid=ENV_UUID,
    )
    claims = bitbucket.PROVIDER.job_claims(scope, RUN).claims
    assert claims["sub"] == f"{{{REPO_UUID}}}:{{{ENV_UUID}}}:{_step(RUN, 'step')}"
    assert claims["deploymentEnvironmentUuid"] == f"{{{ENV_UUID}}}"
    # A repository scope still sees 3-part subjects from deployment steps.
    deploying = JobRun(seed="fixed-seed", deployment="production")
    sub = str(bitbucket.PROVIDER.job_claims(BB, deploying).claims["sub"])
    assert sub.count(":") == 2
    assert sub.startswith(f"{{{REPO_UUID}}}:{{")


def test_bitbucket_custom_audiences_make_aud_a_list_after_the_workspaces() -> None:
    claims = bitbucket.PROVIDER.job_claims(BB, RUN, audiences=["sts.amazonaws.com", "x"]).claims
    assert claims["aud"] == [
        f"ari:cloud:bitbucket::workspace/{WORKSPACE_UUID}",
        "sts.amazonaws.com",
        "x",
    ]
    with pytest.raises(UsageError, match="at most 10"):
        bitbucket.PROVIDER.job_claims(BB, RUN, audiences=[str(i) for i in range(11)])
    with pytest.raises(UsageError, match="150"):
        bitbucket.PROVIDER.job_claims(BB, RUN, audiences=["a" * 151])


def test_bitbucket_tag_builds_carry_no_branch_name() -> None:
    claims = bitbucket.PROVIDER.job_claims(BB, JobRun(tag="v1.0.0")).claims
    assert "branchName" not in claims


def test_bitbucket_step_environment_holds_the_token_from_the_start() -> None:
    tokens = Recorder()
    env = bitbucket.PROVIDER.job_environment(BB, RUN, tokens=tokens)
    assert env["BITBUCKET_STEP_OIDC_TOKEN"] == "signed-1"
    assert tokens.signed[0].claims["sub"] == f"{{{REPO_UUID}}}:{_step(RUN, 'step')}"
    assert env["BITBUCKET_REPO_UUID"] == f"{{{REPO_UUID}}}"
    assert env["BITBUCKET_STEP_UUID"] == _step(RUN, "step")
    assert env["BITBUCKET_BUILD_NUMBER"] == "42"
    assert env["BITBUCKET_COMMIT"] == "a" * 40
    assert env["BITBUCKET_BRANCH"] == "main"
    assert env["BITBUCKET_WORKSPACE"] == "acme"
    assert env["CI"] == "true"
    assert bitbucket.PROVIDER.in_ci(env)
    assert not tokens.endpoints


# --- GitHub (docs/ci-tokens.md#github) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "run", "subject"),
    [
        (
            GitHubScope(repository="octo-org/octo-repo"),
            RUN,
            "repo:octo-org/octo-repo:ref:refs/heads/main",
        ),
        (
            GitHubScope(repository="octo-org/octo-repo", ref="refs/tags/v1"),
            RUN,
            "repo:octo-org/octo-repo:ref:refs/tags/v1",
        ),
        (
            GitHubScope(repository="octo-org/octo-repo", environment="Production:V1"),
            RUN,
            "repo:octo-org/octo-repo:environment:Production%3AV1",
        ),
        (
            GitHubScope(repository="octo-org/octo-repo"),
            JobRun(event="pull_request"),
            "repo:octo-org/octo-repo:pull_request",
        ),
        (
            GitHubScope(
                repository="octo-org/octo-repo",
                ref="main",
                owner_id="123456",
                repository_id="456789",
            ),
            RUN,
            "repo:octo-org@123456/octo-repo@456789:ref:refs/heads/main",
        ),
    ],
)
def test_github_subjects_follow_githubs_precedence_and_forms(
    scope: GitHubScope, run: JobRun, subject: str
) -> None:
    assert github.PROVIDER.job_claims(scope, run).claims["sub"] == subject


def test_github_claims_have_string_ids_the_owner_audience_and_five_minutes() -> None:
    scope = GitHubScope(
        repository="octo-org/octo-repo",
        environment="prod",
        owner_id="123456",
        repository_id="456789",
    )
    shape = github.PROVIDER.job_claims(scope, RUN)
    claims = shape.claims
    assert shape.lifetime == 300
    assert shape.not_before
    assert claims["aud"] == "https://github.com/octo-org"
    assert claims["environment"] == "prod"
    assert claims["repository_id"] == "456789"
    assert claims["repository_owner_id"] == "123456"
    ids = (
        "repository_id",
        "repository_owner_id",
        "actor_id",
        "run_id",
        "run_number",
        "run_attempt",
    )
    assert all(isinstance(claims[name], str) for name in ids)
    assert claims["run_number"] == "42"
    assert claims["ref"] == "refs/heads/main"
    assert claims["job_workflow_ref"] == (
        "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"
    )
    documented = {
        "jti", "sub", "aud", "actor", "actor_id", "base_ref", "head_ref", "environment",
        "event_name", "job_workflow_ref", "job_workflow_sha", "ref", "ref_type", "repository",
        "repository_id", "repository_owner", "repository_owner_id", "repository_visibility",
        "run_id", "run_number", "run_attempt", "runner_environment", "sha", "workflow",
        "workflow_ref", "workflow_sha",
    }  # fmt: skip
    assert set(claims) == documented
    assert (
        github.PROVIDER.job_claims(scope, RUN, audiences=["sts.amazonaws.com"]).claims["aud"]
        == "sts.amazonaws.com"
    )


def test_github_ids_are_stable_for_a_repository_without_given_ids() -> None:
    scope = GitHubScope(repository="octo-org/octo-repo")
    first = github.PROVIDER.job_claims(scope, JobRun()).claims
    second = github.PROVIDER.job_claims(scope, JobRun()).claims
    assert first["repository_id"] == second["repository_id"]
    assert first["run_id"] != second["run_id"]


def test_github_job_gets_the_request_url_and_token_not_a_token() -> None:
    tokens = Recorder()
    env = github.PROVIDER.job_environment(
        GitHubScope(repository="octo-org/octo-repo"), RUN, tokens=tokens
    )
    assert env["ACTIONS_ID_TOKEN_REQUEST_URL"] == "https://127.0.0.1:1/endpoint?api-version=2.0"
    assert env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == "bearer-1"
    assert env["GITHUB_ACTIONS"] == "true"
    assert env["GITHUB_REPOSITORY"] == "octo-org/octo-repo"
    assert env["GITHUB_REF"] == "refs/heads/main"
    assert env["GITHUB_SHA"] == "a" * 40
    assert not tokens.signed
    assert tokens.endpoints[0].claims["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    with pytest.raises(UsageError, match="asks for its audience"):
        github.PROVIDER.job_environment(
            GitHubScope(repository="o/r"), RUN, tokens=tokens, audiences=["x"]
        )


def test_a_job_cannot_contradict_the_scopes_ref() -> None:
    with pytest.raises(UsageError, match="pins refs/heads/main"):
        github.PROVIDER.job_claims(GitHubScope(repository="o/r", ref="main"), JobRun(branch="dev"))


# --- GitLab (docs/ci-tokens.md#gitlab) ------------------------------------------------------------


def test_gitlab_subject_and_claims() -> None:
    shape = gitlab.PROVIDER.job_claims(
        GitLabScope(project="mygroup/myproject"), JobRun(deployment="production")
    )
    claims = shape.claims
    assert claims["sub"] == "project_path:mygroup/myproject:ref_type:branch:ref:main"
    assert claims["aud"] == "https://gitlab.com"
    assert claims["namespace_path"] == "mygroup"
    assert claims["ref_path"] == "refs/heads/main"
    assert claims["ref_protected"] == "false"
    assert claims["environment"] == "production"
    assert claims["deployment_tier"] == "production"
    ids = ("namespace_id", "project_id", "user_id", "pipeline_id", "job_id", "runner_id")
    assert all(isinstance(claims[name], str) and str(claims[name]).isdigit() for name in ids)
    assert shape.not_before
    assert shape.lifetime == 3600


def test_gitlab_tag_scope_and_audiences() -> None:
    scope = GitLabScope(
        project="g/sub/p", ref="v1.2", ref_type=RefType.TAG, url="https://gitlab.example.com"
    )
    claims = gitlab.PROVIDER.job_claims(scope, RUN, audiences=["sts.amazonaws.com"]).claims
    assert claims["sub"] == "project_path:g/sub/p:ref_type:tag:ref:v1.2"
    assert claims["aud"] == "sts.amazonaws.com"
    assert (
        claims["ci_config_ref_uri"] == "gitlab.example.com/g/sub/p//.gitlab-ci.yml@refs/tags/v1.2"
    )
    several = gitlab.PROVIDER.job_claims(scope, RUN, audiences=["a", "b"]).claims
    assert several["aud"] == ["a", "b"]
    with pytest.raises(UsageError, match="tags only"):
        gitlab.PROVIDER.job_claims(GitLabScope(project="g/p", ref_type=RefType.TAG), RUN)


def test_gitlab_job_has_its_id_token_variable() -> None:
    tokens = Recorder()
    env = gitlab.PROVIDER.job_environment(GitLabScope(project="g/p"), RUN, tokens=tokens)
    assert env["GITLAB_OIDC_TOKEN"] == "signed-1"
    assert env["GITLAB_CI"] == "true"
    assert env["CI_PROJECT_PATH"] == "g/p"
    assert env["CI_COMMIT_BRANCH"] == "main"
    assert env["CI_SERVER_URL"] == "https://gitlab.com"
    assert gitlab.PROVIDER.in_ci(env)


# --- CircleCI (docs/ci-tokens.md#circleci) --------------------------------------------------------


def test_circleci_v1_and_v2_subjects_and_claims() -> None:
    scope = CircleCIScope(org_id=ORG_ID, project_id=PROJECT_ID)
    v1 = circleci.token_claims(scope, RUN, version=1)
    v2 = circleci.token_claims(scope, RUN)
    prefix = f"org/{ORG_ID}/project/{PROJECT_ID}/user/"
    assert str(v1.claims["sub"]).startswith(prefix)
    assert str(v1.claims["sub"]).count("/") == 5
    origin = f"github.com/keyless-local/project-{PROJECT_ID[:8]}"
    assert v2.claims["sub"] == f"{v1.claims['sub']}/vcs-origin/{origin}/vcs-ref/refs/heads/main"
    assert v2.claims["aud"] == ORG_ID
    assert v2.claims["oidc.circleci.com/project-id"] == PROJECT_ID
    assert v2.claims["oidc.circleci.com/vcs-ref"] == "refs/heads/main"
    assert v2.claims["oidc.circleci.com/context-ids"] == []
    assert v2.claims["oidc.circleci.com/ssh-rerun"] is False
    assert v2.lifetime == 3600
    assert not v2.not_before
    assert circleci.PROVIDER.job_claims(scope, RUN) == v2


def test_circleci_job_has_both_tokens() -> None:
    tokens = Recorder()
    scope = CircleCIScope(org_id=ORG_ID, project_id=PROJECT_ID)
    env = circleci.PROVIDER.job_environment(scope, RUN, tokens=tokens)
    assert env["CIRCLE_OIDC_TOKEN"] == "signed-1"
    assert env["CIRCLE_OIDC_TOKEN_V2"] == "signed-2"
    assert "vcs-origin" not in str(tokens.signed[0].claims["sub"])
    assert "vcs-origin" in str(tokens.signed[1].claims["sub"])
    assert env["CIRCLECI"] == "true"
    assert env["CIRCLE_BUILD_NUM"] == "42"


# --- Buildkite (docs/ci-tokens.md#buildkite) ------------------------------------------------------


def test_buildkite_subject_and_claims() -> None:
    scope = BuildkiteScope(organization="acme", pipeline="site", branch="main")
    shape = buildkite.PROVIDER.job_claims(scope, JobRun(seed="s", commit="b" * 40, step="deploy"))
    claims = shape.claims
    assert claims["sub"] == (
        f"organization:acme:pipeline:site:ref:refs/heads/main:commit:{'b' * 40}:step:deploy"
    )
    assert claims["aud"] == "https://buildkite.com/acme"
    assert claims["organization_slug"] == "acme"
    assert claims["pipeline_slug"] == "site"
    assert claims["build_branch"] == "main"
    assert claims["step_key"] == "deploy"
    assert "build_tag" not in claims
    assert shape.lifetime == 300
    tagged = buildkite.PROVIDER.job_claims(
        BuildkiteScope(organization="acme", pipeline="site"), JobRun(tag="v2", commit="b" * 40)
    ).claims
    assert ":ref:refs/tags/v2:" in str(tagged["sub"])
    assert tagged["build_tag"] == "v2"


def test_buildkite_job_gets_the_agent_endpoint_and_access_token() -> None:
    tokens = Recorder()
    scope = BuildkiteScope(organization="acme", pipeline="site")
    env = buildkite.PROVIDER.job_environment(scope, RUN, tokens=tokens)
    assert env["BUILDKITE"] == "true"
    assert env["BUILDKITE_AGENT_ACCESS_TOKEN"] == "bearer-1"
    assert env["BUILDKITE_AGENT_ENDPOINT"].startswith("https://127.0.0.1:1/")
    assert env["BUILDKITE_PIPELINE_SLUG"] == "site"
    assert not tokens.signed


# --- every CI ---------------------------------------------------------------------------------


SCOPES: Mapping[str, tuple[CiProvider, Scope, str]] = {
    "bitbucket": (
        bitbucket.PROVIDER,
        BB,
        "/2.0/workspaces/acme/pipelines-config/identity/oidc",
    ),
    "github": (github.PROVIDER, GitHubScope(repository="o/r"), "/"),
    "gitlab": (gitlab.PROVIDER, GitLabScope(project="g/p"), "/"),
    "circleci": (
        circleci.PROVIDER,
        CircleCIScope(org_id=ORG_ID, project_id=PROJECT_ID),
        f"/org/{ORG_ID}",
    ),
    "buildkite": (buildkite.PROVIDER, BuildkiteScope(organization="a", pipeline="p"), "/"),
}


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_issuer_paths_have_the_real_shapes(name: str) -> None:
    provider, scope, path = SCOPES[name]
    assert provider.issuer_path(scope) == path


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_a_foreign_scope_is_refused(name: str) -> None:
    provider, _, _ = SCOPES[name]
    other = BuildkiteScope(organization="a", pipeline="p") if name != "buildkite" else BB
    with pytest.raises(UsageError, match="needs a"):
        provider.job_claims(other, RUN)


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_the_job_environment_is_detected_as_that_ci_only(name: str) -> None:
    provider, scope, _ = SCOPES[name]
    env = provider.job_environment(scope, RUN, tokens=Recorder())
    assert [p.name for p, _, _ in SCOPES.values() if p.in_ci(env)] == [name]


def test_a_seed_makes_a_job_reproducible() -> None:
    first = bitbucket.PROVIDER.job_claims(BB, JobRun(seed="one"))
    assert first == bitbucket.PROVIDER.job_claims(BB, JobRun(seed="one"))
    assert first != bitbucket.PROVIDER.job_claims(BB, JobRun(seed="two"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"branch": "a", "tag": "b"},
        {"branch": "refs/heads/a"},
        {"build_number": 0},
        {"commit": "xyz"},
        {"step": ""},
    ],
)
def test_bad_job_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        JobRun(**kwargs)  # type: ignore[arg-type]
