"""Least-privilege trust: the built policy admits its scope and nothing next to it, for every CI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.ci.base import Scope
from keyless.ci.bitbucket import BitbucketScope, issuer_for
from keyless.ci.buildkite import BuildkiteScope
from keyless.ci.circleci import CircleCIScope
from keyless.ci.circleci import issuer_for as circleci_issuer
from keyless.ci.github import GitHubScope
from keyless.ci.gitlab import GitLabScope, RefType
from keyless.ci.terraform import TerraformScope
from keyless.errors import UsageError
from keyless.trust.build import (
    ACCOUNT_PLACEHOLDER,
    OutputFormat,
    account_id,
    build,
    render,
)
from keyless.trust.evaluate import evaluate
from keyless.trust.lint import LintContext, Severity, lint
from keyless.trust.model import loads_policy
from keyless.trust.verdict import Decision, Request
from keyless.trust.web_identity import provider_arn_for

ACCOUNT = account_id("123456789012")


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """A scope, a token of that scope, and tokens of its neighbours."""

    scope: Scope
    own: dict[str, Any]
    siblings: dict[str, dict[str, Any]] = field(default_factory=dict)


def decide(scope: Scope, claims: dict[str, Any]) -> Decision:
    built = build(scope, account=ACCOUNT)
    issuer = claims["iss"]
    request = Request.from_claims(claims, provider_arn=provider_arn_for(issuer, ACCOUNT))
    return evaluate(built.policy, request).decision


_UUID = st.uuids().map(str)
_SLUG = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
_BRANCH = st.from_regex(r"[a-z][a-z0-9_/-]{0,10}[a-z0-9]", fullmatch=True)


def _braced(uuid: str) -> str:
    return "{" + uuid + "}"


# --- Bitbucket: sub {REPO}:{STEP} or {REPO}:{ENV}:{STEP} (docs/ci-tokens.md#bitbucket-sub) --------


def _bitbucket_token(workspace: str, ws_uuid: str, repo: str, env: str | None) -> dict[str, Any]:
    step = _braced("00000000-0000-4000-8000-000000000999")
    sub = f"{_braced(repo)}:{_braced(env)}:{step}" if env else f"{_braced(repo)}:{step}"
    token: dict[str, Any] = {
        "iss": issuer_for(workspace),
        "aud": f"ari:cloud:bitbucket::workspace/{ws_uuid}",
        "sub": sub,
        "repositoryUuid": _braced(repo),
        "workspaceUuid": _braced(ws_uuid),
        "stepUuid": step,
        "branchName": "main",
    }
    if env:
        token["deploymentEnvironmentUuid"] = _braced(env)
    return token


@st.composite
def bitbucket(draw: st.DrawFn) -> Case:
    workspace, ws_uuid, repo = draw(_SLUG), draw(_UUID), draw(_UUID)
    env = draw(st.none() | _UUID)
    other = draw(_UUID.filter(lambda u: u not in (repo, env, ws_uuid)))
    scope = BitbucketScope(
        workspace=workspace,
        workspace_uuid=draw(st.sampled_from([ws_uuid, _braced(ws_uuid)])),
        repository_uuid=draw(st.sampled_from([repo, _braced(repo)])),
        environment_uuid=env,
    )
    siblings = {
        "sibling repository": _bitbucket_token(workspace, ws_uuid, other, env),
        "other workspace": _bitbucket_token(workspace + "x", other, repo, env),
        "same slug, other workspace UUID": _bitbucket_token(workspace, other, repo, env),
    }
    if env:
        # IAM cannot see Bitbucket's branch: a deployment environment is the branch gate.
        siblings["other environment"] = _bitbucket_token(workspace, ws_uuid, repo, other)
        siblings["no environment"] = _bitbucket_token(workspace, ws_uuid, repo, None)
    return Case(scope=scope, own=_bitbucket_token(workspace, ws_uuid, repo, env), siblings=siblings)


# --- GitHub: repo:OWNER/REPO:CONTEXT, immutable repo:OWNER@ID/REPO@ID:... ---------------------
# (docs/ci-tokens.md#github-sub)


def _github_token(
    owner: str, repo: str, context: str, ids: tuple[str, str] | None, repo_id: str = "77"
) -> dict[str, Any]:
    name = f"repo:{owner}@{ids[0]}/{repo}@{ids[1]}" if ids else f"repo:{owner}/{repo}"
    return {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "sts.amazonaws.com",
        "sub": f"{name}:{context}",
        "repository": f"{owner}/{repo}",
        "repository_id": ids[1] if ids else repo_id,
        "repository_owner": owner,
    }


@st.composite
def github(draw: st.DrawFn) -> Case:
    owner, repo = draw(_SLUG), draw(_SLUG)
    kind = draw(st.sampled_from(["repository", "branch", "tag", "environment"]))
    branch = draw(_BRANCH)
    environment = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9 _:-]{0,10}", fullmatch=True))
    with_ids = draw(st.booleans())
    ids = (str(draw(st.integers(1, 10**6))), str(draw(st.integers(1, 10**6)))) if with_ids else None
    if kind == "repository":
        scope = GitHubScope(repository=f"{owner}/{repo}")
        context = f"ref:refs/heads/{branch}"
    elif kind == "branch":
        scope = GitHubScope(repository=f"{owner}/{repo}", ref=branch)
        context = f"ref:refs/heads/{branch}"
    elif kind == "tag":
        scope = GitHubScope(repository=f"{owner}/{repo}", ref=f"refs/tags/{branch}")
        context = f"ref:refs/tags/{branch}"
    else:
        scope = GitHubScope(repository=f"{owner}/{repo}", environment=environment)
        context = f"environment:{environment.replace(':', '%3A')}"
    if ids:
        scope = GitHubScope(
            repository=scope.repository,
            ref=scope.ref,
            environment=scope.environment,
            owner_id=ids[0],
            repository_id=ids[1],
        )
    other_ids = (ids[0], ids[1] + "1") if ids else None
    siblings = {
        "sibling repository": _github_token(owner, repo + "x", context, other_ids, "78"),
        "prefix sibling": _github_token(owner, repo + "-fork", context, other_ids, "79"),
        "other owner": _github_token(
            owner + "x", repo, context, (ids[0] + "1", ids[1] + "2") if ids else None, "80"
        ),
    }
    if ids:
        # The same names under other ids: a deleted repository registered again.
        siblings["recycled name"] = _github_token(
            owner, repo, context, (ids[0] + "9", ids[1] + "9")
        )
    if kind in ("branch", "tag"):
        siblings["other branch"] = _github_token(owner, repo, f"ref:refs/heads/{branch}x", ids)
        siblings["pull request"] = _github_token(owner, repo, "pull_request", ids)
        siblings["environment"] = _github_token(owner, repo, "environment:prod", ids)
    if kind == "tag":
        siblings["branch of the tag's name"] = _github_token(
            owner, repo, f"ref:refs/heads/{branch}", ids
        )
    if kind == "environment":
        siblings["other environment"] = _github_token(
            owner, repo, f"environment:{environment}x", ids
        )
        siblings["branch"] = _github_token(owner, repo, f"ref:refs/heads/{branch}", ids)
    return Case(scope=scope, own=_github_token(owner, repo, context, ids), siblings=siblings)


# --- GitLab: project_path:G/P:ref_type:branch|tag:ref:NAME (docs/ci-tokens.md#gitlab-sub) ---------


def _gitlab_token(project: str, ref_type: str, ref: str, url: str) -> dict[str, Any]:
    return {
        "iss": url,
        "aud": url,
        "sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
        "project_path": project,
        "ref": ref,
        "ref_type": ref_type,
        "ref_protected": "true",
    }


@st.composite
def gitlab(draw: st.DrawFn) -> Case:
    groups = draw(st.lists(_SLUG, min_size=1, max_size=3))
    project = "/".join([*groups, draw(_SLUG)])
    url = draw(st.sampled_from(["https://gitlab.com", "https://gitlab.example.com"]))
    kind = draw(st.sampled_from(["project", "branch", "tag", "any-tag"]))
    ref = draw(_BRANCH)
    if kind == "project":
        scope = GitLabScope(project=project, url=url)
        own = _gitlab_token(project, "branch", ref, url)
    elif kind == "branch":
        scope = GitLabScope(project=project, ref=ref, url=url)
        own = _gitlab_token(project, "branch", ref, url)
    elif kind == "tag":
        scope = GitLabScope(project=project, ref=ref, ref_type=RefType.TAG, url=url)
        own = _gitlab_token(project, "tag", ref, url)
    else:
        scope = GitLabScope(project=project, ref_type=RefType.TAG, url=url)
        own = _gitlab_token(project, "tag", ref, url)
    ref_type = own["ref_type"]
    siblings = {
        "sibling project": _gitlab_token(project + "x", ref_type, ref, url),
        "project in a subgroup": _gitlab_token(project + "/sub", ref_type, ref, url),
        "other group": _gitlab_token("x" + project, ref_type, ref, url),
        "other instance": _gitlab_token(project, ref_type, ref, "https://gitlab.other.example"),
    }
    if kind in ("branch", "tag"):
        siblings["other ref"] = _gitlab_token(project, ref_type, ref + "x", url)
        other_type = "tag" if ref_type == "branch" else "branch"
        siblings["same name, other ref type"] = _gitlab_token(project, other_type, ref, url)
    if kind == "any-tag":
        siblings["branch"] = _gitlab_token(project, "branch", ref, url)
    return Case(scope=scope, own=own, siblings=siblings)


# --- CircleCI: org/ORG/project/PROJECT/user/USER[/vcs-origin/...] (docs/ci-tokens.md#circleci) ----


def _circleci_token(org: str, project: str, v2: bool) -> dict[str, Any]:
    sub = f"org/{org}/project/{project}/user/00000000-0000-4000-8000-000000000001"
    if v2:
        sub += "/vcs-origin/github.com/acme/app/vcs-ref/refs/heads/main"
    return {
        "iss": circleci_issuer(org),
        "aud": org,
        "sub": sub,
        "oidc.circleci.com/project-id": project,
    }


@st.composite
def circleci(draw: st.DrawFn) -> Case:
    org, project, other = draw(_UUID), draw(_UUID), draw(_UUID)
    v2 = draw(st.booleans())
    return Case(
        scope=CircleCIScope(org_id=org, project_id=project),
        own=_circleci_token(org, project, v2),
        siblings={
            "sibling project": _circleci_token(org, other, v2),
            "other organization": _circleci_token(other, project, v2),
        },
    )


# --- Buildkite: organization:O:pipeline:P:ref:REF:commit:SHA:step:KEY (docs/ci-tokens.md#buildkite)


def _buildkite_token(org: str, pipeline: str, ref: str) -> dict[str, Any]:
    return {
        "iss": "https://agent.buildkite.com",
        "aud": "sts.amazonaws.com",
        "sub": f"organization:{org}:pipeline:{pipeline}:ref:{ref}:commit:{'a' * 40}:step:deploy",
        "organization_slug": org,
        "pipeline_slug": pipeline,
    }


@st.composite
def buildkite(draw: st.DrawFn) -> Case:
    org, pipeline, branch = draw(_SLUG), draw(_SLUG), draw(_BRANCH)
    pinned = draw(st.booleans())
    scope = BuildkiteScope(organization=org, pipeline=pipeline, branch=branch if pinned else None)
    ref = f"refs/heads/{branch}"
    siblings = {
        "sibling pipeline": _buildkite_token(org, pipeline + "x", ref),
        "other organization": _buildkite_token(org + "x", pipeline, ref),
    }
    if pinned:
        siblings["other branch"] = _buildkite_token(org, pipeline, f"refs/heads/{branch}x")
        siblings["tag of the branch's name"] = _buildkite_token(
            org, pipeline, f"refs/tags/{branch}"
        )
    return Case(scope=scope, own=_buildkite_token(org, pipeline, ref), siblings=siblings)


# --- HCP Terraform: organization:O:project:P:workspace:W:run_phase:PHASE


def _terraform_token(org: str, project: str, workspace: str, phase: str) -> dict[str, Any]:
    return {
        "iss": "https://app.terraform.io",
        "aud": "aws.workload.identity",
        "sub": f"organization:{org}:project:{project}:workspace:{workspace}:run_phase:{phase}",
    }


@st.composite
def terraform(draw: st.DrawFn) -> Case:
    org, workspace = draw(_SLUG), draw(_SLUG)
    project = draw(st.sampled_from(["Default Project", "infra", "a b"]))
    phase = draw(st.sampled_from(["plan", "apply"]))
    other = "plan" if phase == "apply" else "apply"
    return Case(
        scope=TerraformScope(
            organization=org, project=project, workspace=workspace, run_phase=phase
        ),
        own=_terraform_token(org, project, workspace, phase),
        siblings={
            "other run phase": _terraform_token(org, project, workspace, other),
            "sibling workspace": _terraform_token(org, project, workspace + "x", phase),
            "sibling project": _terraform_token(org, project + "x", workspace, phase),
            "other organization": _terraform_token(org + "x", project, workspace, phase),
        },
    )


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "terraform": terraform,
    "bitbucket": bitbucket,
    "github": github,
    "gitlab": gitlab,
    "circleci": circleci,
    "buildkite": buildkite,
}

FAST = settings(max_examples=40, deadline=None)


@pytest.mark.parametrize("ci", sorted(STRATEGIES))
@FAST
@given(data=st.data())
def test_built_policy_admits_its_scope_and_denies_its_neighbours(
    ci: str, data: st.DataObject
) -> None:
    case = data.draw(STRATEGIES[ci](), label=ci)
    assert decide(case.scope, case.own) is Decision.ALLOW
    assert case.siblings
    for label, claims in case.siblings.items():
        assert decide(case.scope, claims) is not Decision.ALLOW, label


@pytest.mark.parametrize("ci", sorted(STRATEGIES))
@FAST
@given(data=st.data())
def test_built_policy_has_no_lint_finding_of_medium_or_above(ci: str, data: st.DataObject) -> None:
    """A scope that pins a ref, environment or run phase builds a policy lint-clean (at most low);
    one that leaves them open is repository-wide, high for a role that may write
    (docs/lint-severity.md), and clean again once lint knows the role is read-only."""
    case = data.draw(STRATEGIES[ci](), label=ci)
    policy = build(case.scope, account=ACCOUNT).policy
    serious = [f.rule for f in lint(policy) if f.severity.rank >= Severity.MEDIUM.rank]
    if _pins_context(case.scope):
        assert serious == []
    else:
        assert set(serious) <= {"subject-repo-wide"}
    read_only = lint(policy, context=LintContext(writes=False, client_ids=("x",)))
    assert [f for f in read_only if f.severity.rank >= Severity.MEDIUM.rank] == []


def _pins_context(scope: Scope) -> bool:
    if isinstance(scope, CircleCIScope | TerraformScope):
        return True  # CircleCI's wildcard is over per-run fields; Terraform pins its run phase
    pins = ("ref", "environment", "branch", "environment_uuid")
    return any(getattr(scope, name, None) is not None for name in pins)


# --- formats -------------------------------------------------------------------------------


SCOPE = GitHubScope(repository="acme/app", environment="prod")


def test_json_is_the_policy_and_reparses() -> None:
    text = render(build(SCOPE, account=ACCOUNT), OutputFormat.JSON)
    policy = loads_policy(text)
    (statement,) = policy.statements
    assert statement.federated == (
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
    )
    assert statement.action == ("sts:AssumeRoleWithWebIdentity",)
    operators = {c.operator.name for c in statement.conditions or ()}
    assert operators == {"StringEquals"}
    assert json.loads(text)["Version"] == "2012-10-17"


def test_json_without_account_uses_a_placeholder() -> None:
    text = render(build(SCOPE), OutputFormat.JSON)
    assert f"arn:aws:iam::{ACCOUNT_PLACEHOLDER}:oidc-provider/" in text


def test_string_like_only_where_a_segment_varies() -> None:
    bitbucket_scope = BitbucketScope(
        workspace="acme",
        workspace_uuid="11111111-1111-4111-8111-111111111111",
        repository_uuid="22222222-2222-4222-8222-222222222222",
    )
    document = json.loads(render(build(bitbucket_scope), OutputFormat.JSON))
    condition = document["Statement"][0]["Condition"]
    prefix = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    assert condition["StringEquals"] == {
        f"{prefix}:aud": "ari:cloud:bitbucket::workspace/11111111-1111-4111-8111-111111111111"
    }
    assert condition["StringLike"] == {f"{prefix}:sub": "{22222222-2222-4222-8222-222222222222}:*"}


def test_terraform_uses_jsonencode_and_the_caller_account() -> None:
    text = render(build(SCOPE), OutputFormat.TERRAFORM)
    assert 'data "aws_caller_identity" "current" {}' in text
    assert "jsonencode({" in text
    assert "${data.aws_caller_identity.current.account_id}" in text
    assert '"token.actions.githubusercontent.com:sub" = "repo:acme/app:environment:prod"' in text
    with_account = render(build(SCOPE, account=ACCOUNT), OutputFormat.TERRAFORM)
    assert "aws_caller_identity" not in with_account
    assert "arn:aws:iam::123456789012:oidc-provider/" in with_account


def test_terraform_escapes_interpolation() -> None:
    scope = GitHubScope(repository="acme/app", environment="a${b}*")
    text = render(build(scope, account=ACCOUNT), OutputFormat.TERRAFORM)
    # IAM's own escapes (${$}, ${*}) must reach IAM unchanged: HCL needs $${ for a literal ${.
    assert "environment:a$${$}{b}$${*}" in text


def test_cloudformation_is_a_template_with_fn_sub_on_the_arn_only() -> None:
    template = json.loads(render(build(SCOPE), OutputFormat.CLOUDFORMATION))
    role = template["Resources"]["KeylessRole"]
    assert role["Type"] == "AWS::IAM::Role"
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"]["Federated"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/"
        "token.actions.githubusercontent.com"
    }
    assert isinstance(
        statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"], str
    )


def test_github_ids_give_the_immutable_subject_and_repository_id() -> None:
    scope = GitHubScope(repository="acme/app", ref="main", owner_id="12", repository_id="34")
    condition = build(scope).policy.statements[0].conditions or ()
    values = {c.key.rpartition(":")[2]: c.string_values for c in condition}
    assert values["sub"] == ("repo:acme@12/app@34:ref:refs/heads/main",)
    assert values["repository_id"] == ("34",)


def test_notes_say_who_can_assume() -> None:
    assert "environment 'prod'" in build(SCOPE).notes[0]
    assert "pull_request_target" in build(GitHubScope(repository="a/b", ref="main")).notes[0]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: GitHubScope(repository="acme"), "is not OWNER/REPO"),
        (lambda: GitHubScope(repository="a/b", ref="main", environment="x"), "not both"),
        (lambda: GitHubScope(repository="a/b", owner_id="1"), "both the owner id"),
        (lambda: GitHubScope(repository="a/b", owner_id="x", repository_id="1"), "not a number"),
        (
            lambda: BitbucketScope(workspace="a", workspace_uuid="nope", repository_uuid="x"),
            "workspace UUID 'nope' is not a UUID",
        ),
        (lambda: BitbucketScope(workspace="a b", workspace_uuid="x", repository_uuid="x"), "slug"),
        (lambda: GitLabScope(project="single"), "GROUP/PROJECT"),
        (lambda: GitLabScope(project="g/p", url="http://gitlab.com"), "https"),
        (lambda: CircleCIScope(org_id="x", project_id="y"), "organization ID 'x'"),
        (lambda: BuildkiteScope(organization="a:b", pipeline="p"), "slug"),
        (lambda: BuildkiteScope(organization="a", pipeline="p", branch="x:y"), "branch"),
    ],
)
def test_scopes_refuse_bad_values(factory: Callable[[], object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        factory()


def test_account_id_must_be_twelve_digits() -> None:
    with pytest.raises(UsageError, match="12 digits"):
        account_id("1234")
