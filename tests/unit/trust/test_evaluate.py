"""Evaluation cases written from the AWS documentation, one group per page (cited above each group).

Each case is one trust policy, one token and the decision IAM documents for them. The defaults are
a GitHub Actions token for ``octo-org/octo-repo`` on ``main`` and a policy with one Allow statement
for GitHub's provider whose Condition block is the case's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from keyless.trust.evaluate import evaluate
from keyless.trust.model import parse_policy
from keyless.trust.verdict import Decision, Evaluation, Outcome, Request

ACCOUNT = "123456789012"
GH = "token.actions.githubusercontent.com"
GH_ISS = f"https://{GH}"
GH_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GH}"
BB = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
GL = "gitlab.com"
CC_ORG = "11111111-1111-4111-8111-111111111111"
CC = f"oidc.circleci.com/org/{CC_ORG}"
BK = "agent.buildkite.com"
WIF = "sts:AssumeRoleWithWebIdentity"

A = Decision.ALLOW
D = Decision.IMPLICIT_DENY
X = Decision.EXPLICIT_DENY
I = Decision.INDETERMINATE  # noqa: E741 - one letter, like the others

SUB = "repo:octo-org/octo-repo:ref:refs/heads/main"
BASE_CLAIMS: dict[str, Any] = {
    "iss": GH_ISS,
    "sub": SUB,
    "aud": "sts.amazonaws.com",
    "repository": "octo-org/octo-repo",
    "repository_id": "456",
    "repository_owner": "octo-org",
    "repository_owner_id": "123",
    "actor": "octocat",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "event_name": "push",
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
}


def arn(host: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:oidc-provider/{host}"


def statement(
    condition: Mapping[str, Any] | None = None,
    *,
    effect: str = "Allow",
    principal: Any = None,
    action: Any = WIF,
    not_action: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {"Effect": effect, "Principal": principal or {"Federated": GH_ARN}}
    if not_action is not None:
        result["NotAction"] = not_action
    else:
        result["Action"] = action
    if condition is not None:
        result["Condition"] = condition
    result.update(extra)
    return result


def policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return document


def case(
    case_id: str,
    condition: Mapping[str, Any] | None,
    expected: Decision,
    *,
    claims: Mapping[str, Any] | None = None,
    document: dict[str, Any] | None = None,
    issuer: str | None = None,
    provider_arn: str | None = GH_ARN,
    context: Mapping[str, Any] | None = None,
) -> Any:
    merged = {**BASE_CLAIMS, **(claims or {})}
    for key, value in list(merged.items()):
        if value is None:
            del merged[key]
    return pytest.param(
        document if document is not None else policy(statement(condition)),
        merged,
        issuer,
        provider_arn,
        context,
        expected,
        id=case_id,
    )


def run(
    document: dict[str, Any],
    claims: Mapping[str, Any],
    issuer: str | None = None,
    provider_arn: str | None = GH_ARN,
    context: Mapping[str, Any] | None = None,
) -> Evaluation:
    request = Request.from_claims(claims, issuer=issuer, provider_arn=provider_arn, context=context)
    return evaluate(parse_policy(document), request)


def sub_is(value: Any, operator: str = "StringEquals") -> dict[str, Any]:
    return {operator: {f"{GH}:sub": value}}


CASES: list[Any] = [
    # --- String operators ----------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String
    case("StringEquals-exact", sub_is(SUB), A),
    case("StringEquals-other-branch", sub_is("repo:octo-org/octo-repo:ref:refs/heads/dev"), D),
    case("StringEquals-star-is-literal", sub_is("repo:octo-org/octo-repo:*"), D),
    case(
        "StringEquals-star-literal-matches-star",
        sub_is("repo:octo-org/octo-repo:*"),
        A,
        claims={"sub": "repo:octo-org/octo-repo:*"},
    ),
    case("StringNotEquals-other", sub_is("repo:evil/x:ref:refs/heads/main", "StringNotEquals"), A),
    case("StringNotEquals-same", sub_is(SUB, "StringNotEquals"), D),
    case("StringEqualsIgnoreCase-upper", sub_is(SUB.upper(), "StringEqualsIgnoreCase"), A),
    case("StringEquals-is-case-sensitive", sub_is(SUB.upper()), D),
    case("StringNotEqualsIgnoreCase-same", sub_is(SUB.upper(), "StringNotEqualsIgnoreCase"), D),
    case("StringNotEqualsIgnoreCase-other", sub_is("REPO:X/Y", "StringNotEqualsIgnoreCase"), A),
    case("StringLike-repo-wide", sub_is("repo:octo-org/octo-repo:*", "StringLike"), A),
    case("StringLike-org-wide", sub_is("repo:octo-org/*", "StringLike"), A),
    case("StringLike-star-alone", sub_is("*", "StringLike"), A),
    case("StringLike-question-one-char", sub_is(SUB.replace("repo:", "rep?:"), "StringLike"), A),
    case("StringLike-question-not-two", sub_is(SUB.replace("repo:", "re?:"), "StringLike"), D),
    case("StringLike-question-not-empty", sub_is(SUB + "?", "StringLike"), D),
    case("StringLike-star-empty-run", sub_is(SUB + "*", "StringLike"), A),
    case("StringLike-star-crosses-slash-colon", sub_is("repo:*:refs/heads/main", "StringLike"), A),
    case("StringLike-anchored-both-ends", sub_is("octo-org/octo-repo", "StringLike"), D),
    case(
        "StringLike-leading-star-cross-tenant",
        sub_is("*octo-org/octo-repo*", "StringLike"),
        A,
        claims={"sub": "repo:evil/x:ref:refs/heads/octo-org/octo-repo"},
    ),
    case("StringLike-case-sensitive", sub_is("REPO:*", "StringLike"), D),
    case("StringLike-dot-is-literal", sub_is("repo:octo.org/*", "StringLike"), D),
    case(
        "StringLike-brackets-are-literal",
        sub_is("repo:octo-[a-z]rg/*", "StringLike"),
        D,
    ),
    case("StringLike-empty-pattern", sub_is("", "StringLike"), D),
    case("StringNotLike-other-owner", sub_is("repo:evil/*", "StringNotLike"), A),
    case("StringNotLike-own-owner", sub_is("repo:octo-org/*", "StringNotLike"), D),
    # --- Several values, keys and operators ----------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
    case("values-OR-second-matches", sub_is(["repo:x/y:ref:refs/heads/main", SUB]), A),
    case(
        "values-OR-loose-value-opens", sub_is([SUB.replace("main", "x"), "repo:*"], "StringLike"), A
    ),
    case("values-OR-none-matches", sub_is(["a", "b"]), D),
    case("negated-values-NOR-none-equal", sub_is(["a", "b"], "StringNotEquals"), A),
    case("negated-values-NOR-one-equal", sub_is(["a", SUB], "StringNotEquals"), D),
    case(
        "negated-like-NOR-one-like",
        sub_is(["repo:evil/*", "repo:octo-org/*"], "StringNotLike"),
        D,
    ),
    case(
        "keys-AND-one-fails",
        {"StringEquals": {f"{GH}:sub": SUB, f"{GH}:aud": "other"}},
        D,
    ),
    case(
        "keys-AND-both-hold",
        {"StringEquals": {f"{GH}:sub": SUB, f"{GH}:aud": "sts.amazonaws.com"}},
        A,
    ),
    case(
        "operators-AND-both-hold",
        {
            "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
            "StringLike": {f"{GH}:sub": "repo:octo-org/octo-repo:*"},
        },
        A,
    ),
    case(
        "operators-AND-one-fails",
        {
            "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
            "StringLike": {f"{GH}:sub": "repo:other/*"},
        },
        D,
    ),
    case(
        "same-key-two-operators-hold",
        {
            "StringLike": {f"{GH}:sub": "repo:octo-org/*"},
            "StringNotLike": {f"{GH}:sub": "*:pull_request"},
        },
        A,
    ),
    case(
        "same-key-two-operators-pull-request",
        {
            "StringLike": {f"{GH}:sub": "repo:octo-org/*"},
            "StringNotLike": {f"{GH}:sub": "*:pull_request"},
        },
        D,
        claims={"sub": "repo:octo-org/octo-repo:pull_request"},
    ),
    # --- Absent keys and ...IfExists -----------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists
    case("absent-StringEquals-false", {"StringEquals": {f"{GH}:environment": "prod"}}, D),
    case("absent-StringNotEquals-true", {"StringNotEquals": {f"{GH}:environment": "prod"}}, A),
    case("absent-IfExists-true", {"StringEqualsIfExists": {f"{GH}:environment": "prod"}}, A),
    case(
        "present-IfExists-matches",
        {"StringEqualsIfExists": {f"{GH}:environment": "prod"}},
        A,
        claims={"environment": "prod"},
    ),
    case(
        "present-IfExists-differs",
        {"StringEqualsIfExists": {f"{GH}:environment": "prod"}},
        D,
        claims={"environment": "staging"},
    ),
    case("absent-StringNotLikeIfExists", {"StringNotLikeIfExists": {f"{GH}:environment": "p*"}}, A),
    case("absent-StringLike-false", {"StringLike": {f"{GH}:environment": "*"}}, D),
    case("absent-StringNotLike-true", {"StringNotLike": {f"{GH}:environment": "*"}}, A),
    case(
        "absent-NumericLessThanIfExists",
        {"NumericLessThanIfExists": {f"{GH}:enterprise_id": "5"}},
        A,
    ),
    case(
        "absent-ForAnyValue-IfExists",
        {"ForAnyValue:StringEqualsIfExists": {f"{GH}:environment": "prod"}},
        A,
    ),
    case(
        "deny-StringNotEqualsIfExists-absent-still-denies",
        None,
        X,
        document=policy(
            statement(sub_is(SUB)),
            statement({"StringNotEqualsIfExists": {f"{GH}:environment": "prod"}}, effect="Deny"),
        ),
    ),
    case("absent-ArnLikeIfExists", {"ArnLikeIfExists": {f"{GH}:environment": "arn:*"}}, A),
    # --- Null --------------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null
    case("Null-true-absent", {"Null": {f"{GH}:environment": "true"}}, A),
    case("Null-true-present", {"Null": {f"{GH}:sub": "true"}}, D),
    case("Null-false-present", {"Null": {f"{GH}:sub": "false"}}, A),
    case("Null-false-absent", {"Null": {f"{GH}:environment": "false"}}, D),
    case("Null-json-boolean", {"Null": {f"{GH}:environment": True}}, A),
    case(
        "Null-true-unexposed-claim-is-absent",
        {"Null": {f"{BB}:branchName": "true"}},
        A,
        document=policy(
            statement({"Null": {f"{BB}:branchName": "true"}}, principal={"Federated": arn(BB)})
        ),
        claims={"iss": f"https://{BB}", "sub": "{r}:{s}", "branchName": "main"},
        provider_arn=arn(BB),
    ),
    # --- Set operators and multivalued keys ----------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    case(
        "ForAnyValue-aud-array-contains",
        {"ForAnyValue:StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}},
        A,
        claims={"aud": ["sts.amazonaws.com", "https://github.com/octo-org"]},
    ),
    case(
        "ForAnyValue-aud-array-none",
        {"ForAnyValue:StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}},
        D,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "ForAllValues-aud-array-all-in",
        {"ForAllValues:StringEquals": {f"{GH}:aud": ["a", "b", "c"]}},
        A,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "ForAllValues-aud-array-one-out",
        {"ForAllValues:StringEquals": {f"{GH}:aud": ["a"]}},
        D,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "ForAllValues-absent-is-true", {"ForAllValues:StringEquals": {f"{GH}:environment": "x"}}, A
    ),
    case(
        "ForAnyValue-absent-is-false", {"ForAnyValue:StringEquals": {f"{GH}:environment": "x"}}, D
    ),
    case(
        "ForAllValues-single-value-sub",
        {"ForAllValues:StringLike": {f"{GH}:sub": "repo:octo-org/*"}},
        A,
    ),
    case(
        "ForAllValues-single-value-sub-mismatch",
        {"ForAllValues:StringLike": {f"{GH}:sub": "repo:evil/*"}},
        D,
    ),
    case(
        "ForAnyValue-StringNotEquals-one-differs",
        {"ForAnyValue:StringNotEquals": {f"{GH}:aud": "a"}},
        A,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "ForAllValues-StringNotEquals-one-equal",
        {"ForAllValues:StringNotEquals": {f"{GH}:aud": "a"}},
        D,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "ForAllValues-empty-string-is-null-set",
        {"ForAllValues:StringEquals": {f"{GH}:aud": "x"}},
        A,
        claims={"aud": ""},
    ),
    case(
        "ForAllValues-empty-list",
        {"ForAllValues:StringEquals": {f"{GH}:aud": "x"}},
        A,
        claims={"aud": []},
    ),
    case(
        "ForAnyValue-StringLike-aud",
        {"ForAnyValue:StringLike": {f"{GH}:aud": "sts.*"}},
        A,
        claims={"aud": ["x", "sts.amazonaws.com"]},
    ),
    # A plain operator over a multivalued request value is undocumented
    # (docs/aws-sts-iam.md#set-operators).
    case(
        "plain-StringEquals-aud-array-indeterminate",
        {"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}},
        I,
        claims={"aud": ["sts.amazonaws.com", "x"]},
    ),
    case(
        "plain-StringEquals-aud-one-element-array-indeterminate",
        {"StringEquals": {f"{GH}:aud": "sts.amazonaws.com"}},
        I,
        claims={"aud": ["sts.amazonaws.com"]},
    ),
    case(
        "plain-StringNotEquals-aud-array-indeterminate",
        {"StringNotEquals": {f"{GH}:aud": "x"}},
        I,
        claims={"aud": ["a", "b"]},
    ),
    case(
        "plain-array-irrelevant-when-another-condition-fails",
        {"StringEquals": {f"{GH}:aud": "a", f"{GH}:sub": "nope"}},
        D,
        claims={"aud": ["a", "b"]},
    ),
    # --- Bool ----------------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Boolean
    case(
        "Bool-true",
        {"Bool": {"aws:SecureTransport": "true"}},
        A,
        context={"aws:SecureTransport": "true"},
    ),
    case(
        "Bool-false-vs-true",
        {"Bool": {"aws:SecureTransport": False}},
        D,
        context={"aws:SecureTransport": "true"},
    ),
    case(
        "Bool-not-boolean-value",
        {"Bool": {"aws:SecureTransport": "true"}},
        I,
        context={"aws:SecureTransport": "yes"},
    ),
    case("Bool-absent", {"Bool": {f"{GH}:environment": "true"}}, D),
    case("BoolIfExists-absent", {"BoolIfExists": {f"{GH}:environment": "true"}}, A),
    # --- Numeric (on the numeric claim repository_id) ------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Numeric
    case("NumericEquals", {"NumericEquals": {f"{GH}:repository_id": "456"}}, A),
    case("NumericEquals-json-number", {"NumericEquals": {f"{GH}:repository_id": 456}}, A),
    case("NumericNotEquals", {"NumericNotEquals": {f"{GH}:repository_id": "456"}}, D),
    case("NumericLessThan", {"NumericLessThan": {f"{GH}:repository_id": "500"}}, A),
    case("NumericLessThanEquals", {"NumericLessThanEquals": {f"{GH}:repository_id": "456"}}, A),
    case("NumericGreaterThan", {"NumericGreaterThan": {f"{GH}:repository_id": "456"}}, D),
    case(
        "NumericGreaterThanEquals", {"NumericGreaterThanEquals": {f"{GH}:repository_id": "456"}}, A
    ),
    case("NumericEquals-decimal", {"NumericEquals": {f"{GH}:repository_id": "456.0"}}, A),
    case("Numeric-on-text-claim", {"NumericEquals": {f"{GH}:actor": "1"}}, I),
    case("Numeric-absent", {"NumericEquals": {f"{GH}:enterprise_id": "1"}}, D),
    case(
        "Numeric-on-json-number-claim",
        {"NumericGreaterThan": {f"{GH}:actor_id": "100"}},
        A,
        claims={"actor_id": 4242},
    ),
    # --- Date ------------------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Date
    case(
        "DateLessThan",
        {"DateLessThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"}},
        A,
        context={"aws:CurrentTime": "2026-06-01T12:00:00Z"},
    ),
    case(
        "DateGreaterThan",
        {"DateGreaterThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"}},
        D,
        context={"aws:CurrentTime": "2026-06-01T12:00:00Z"},
    ),
    case(
        "DateEquals-epoch-vs-iso",
        {"DateEquals": {"aws:EpochTime": "2026-06-01T12:00:00Z"}},
        A,
        context={"aws:EpochTime": "1780315200"},
    ),
    case(
        "DateNotEquals",
        {"DateNotEquals": {"aws:EpochTime": 1780315200}},
        D,
        context={"aws:EpochTime": "1780315200"},
    ),
    case(
        "DateLessThanEquals-epoch",
        {"DateLessThanEquals": {"aws:EpochTime": "1780315200"}},
        A,
        context={"aws:EpochTime": "1780315200"},
    ),
    case(
        "DateGreaterThanEquals-date-only",
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01"}},
        A,
        context={"aws:CurrentTime": "2026-06-01T12:00:00Z"},
    ),
    case("Date-unknown-offline", {"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}, I),
    # --- IP address, binary, ARN ---------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IPAddress
    case(
        "IpAddress-in-range",
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        A,
        context={"aws:SourceIp": "203.0.113.7"},
    ),
    case(
        "IpAddress-out-of-range",
        {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}},
        D,
        context={"aws:SourceIp": "203.0.113.7"},
    ),
    case(
        "NotIpAddress",
        {"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}},
        A,
        context={"aws:SourceIp": "203.0.113.7"},
    ),
    case("IpAddress-unknown-offline", {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, I),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_BinaryEquals
    case(
        "BinaryEquals-same",
        {"BinaryEquals": {"aws:Custom": "QmluYXJ5"}},
        A,
        context={"aws:Custom": "QmluYXJ5"},
    ),
    case(
        "BinaryEquals-differs",
        {"BinaryEquals": {"aws:Custom": "QmluYXJ5"}},
        D,
        context={"aws:Custom": "T3RoZXI="},
    ),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN
    case(
        "ArnLike-component-wildcards",
        {"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:role/deploy-*"}},
        A,
        context={"aws:SourceArn": "arn:aws:iam::123456789012:role/deploy-web"},
    ),
    case(
        "ArnEquals-also-takes-wildcards",
        {"ArnEquals": {"aws:SourceArn": "arn:aws:iam::123456789012:role/*"}},
        A,
        context={"aws:SourceArn": "arn:aws:iam::123456789012:role/x"},
    ),
    case(
        "ArnNotLike",
        {"ArnNotLike": {"aws:SourceArn": "arn:aws:iam::*:role/*"}},
        D,
        context={"aws:SourceArn": "arn:aws:iam::123456789012:role/x"},
    ),
    case(
        "ArnLike-star-stays-in-its-component",
        {"ArnLike": {"aws:SourceArn": "arn:aws:iam::*:role"}},
        D,
        context={"aws:SourceArn": "arn:aws:iam::123456789012:role/x"},
    ),
    case(
        "ArnLike-fewer-components-undocumented",
        {"ArnLike": {"aws:SourceArn": "arn:aws:*"}},
        I,
        context={"aws:SourceArn": "arn:aws:iam::123456789012:role/x"},
    ),
    case(
        "ArnLike-lone-star",
        {"ArnLike": {"aws:SourceArn": "*"}},
        A,
        context={"aws:SourceArn": "arn:aws:s3:::b"},
    ),
    # --- Deny and Allow --------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    case("deny-wins", None, X, document=policy(statement(), statement(effect="Deny"))),
    case(
        "deny-not-matching",
        None,
        A,
        document=policy(statement(), statement(sub_is("repo:evil/*", "StringLike"), effect="Deny")),
    ),
    case(
        "deny-only-is-implicit-deny",
        None,
        D,
        document=policy(statement(sub_is("x"), effect="Deny")),
    ),
    case(
        "deny-for-other-principal",
        None,
        A,
        document=policy(statement(), statement(effect="Deny", principal={"Federated": arn(GL)})),
    ),
    case(
        "deny-undecidable-blocks-allow",
        None,
        I,
        document=policy(
            statement(),
            statement({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, effect="Deny"),
        ),
    ),
    case(
        "allow-undecidable-but-another-allow-holds",
        None,
        A,
        document=policy(
            statement({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            statement(sub_is(SUB)),
        ),
    ),
    case(
        "second-allow-matches",
        None,
        A,
        document=policy(statement(sub_is("x")), statement(sub_is(SUB))),
    ),
    case(
        "deny-with-NotAction-covers-web-identity",
        None,
        X,
        document=policy(statement(), statement(effect="Deny", not_action="sts:TagSession")),
    ),
    case(
        "deny-negated-sub-guard",
        None,
        X,
        document=policy(
            statement(),
            statement(sub_is("repo:octo-org/other:*", "StringNotLike"), effect="Deny"),
        ),
    ),
    # --- Action and NotAction ------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
    case("action-sts-star", None, A, document=policy(statement(action="sts:*"))),
    case("action-star", None, A, document=policy(statement(action="*"))),
    case("action-prefix-star", None, A, document=policy(statement(action="sts:AssumeRole*"))),
    case("action-AssumeRole-only", None, D, document=policy(statement(action="sts:AssumeRole"))),
    case(
        "action-case-insensitive",
        None,
        A,
        document=policy(statement(action="STS:assumerolewithwebidentity")),
    ),
    case(
        "action-question-mark",
        None,
        A,
        document=policy(statement(action="sts:AssumeRoleWith???Identity")),
    ),
    case("NotAction-other", None, A, document=policy(statement(not_action="sts:TagSession"))),
    case("NotAction-this", None, D, document=policy(statement(not_action=WIF))),
    case(
        "action-list",
        None,
        A,
        document=policy(statement(action=["sts:TagSession", WIF])),
    ),
    # --- Principal -------------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    case("principal-exact-provider", None, A),
    case(
        "principal-other-account",
        None,
        D,
        document=policy(statement(principal={"Federated": arn(GH, "999999999999")})),
    ),
    case(
        "principal-other-provider",
        None,
        D,
        document=policy(statement(principal={"Federated": arn(GL)})),
    ),
    case(
        "principal-list-includes-provider",
        None,
        A,
        document=policy(statement(principal={"Federated": [arn(GL), GH_ARN]})),
    ),
    case(
        "principal-aws-account",
        None,
        D,
        document=policy(statement(principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})),
    ),
    case("principal-star-undocumented", None, I, document=policy(statement(principal="*"))),
    case(
        "principal-aws-star-undocumented",
        None,
        I,
        document=policy(statement(principal={"AWS": "*"})),
    ),
    case("principal-without-provider-arn-checks-issuer", None, A, provider_arn=None),
    case(
        "principal-without-provider-arn-other-issuer",
        None,
        D,
        document=policy(statement(principal={"Federated": arn(GL)})),
        provider_arn=None,
    ),
    case(
        "principal-service",
        None,
        D,
        document=policy(statement(principal={"Service": "ec2.amazonaws.com"})),
    ),
    case(
        "principal-built-in-provider-by-host",
        {"StringEquals": {"accounts.google.com:sub": "1234"}},
        A,
        document=policy(
            statement(
                {"StringEquals": {"accounts.google.com:sub": "1234"}},
                principal={"Federated": "accounts.google.com"},
            )
        ),
        claims={"iss": "https://accounts.google.com", "sub": "1234"},
        provider_arn=None,
    ),
    # --- Case rules ------------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
    # ("Condition key names are not case-sensitive"; values are, except ...IgnoreCase)
    case("key-name-upper", {"StringEquals": {f"{GH.upper()}:SUB": SUB}}, A),
    case("key-claim-mixed", {"StringEquals": {f"{GH}:Sub": SUB}}, A),
    case("aud-IgnoreCase", {"StringEqualsIgnoreCase": {f"{GH}:aud": "STS.AMAZONAWS.COM"}}, A),
    case(
        "environment-value-case",
        {"StringEquals": {f"{GH}:sub": "repo:octo-org/octo-repo:environment:production"}},
        D,
        claims={"sub": "repo:octo-org/octo-repo:environment:Production"},
    ),
    # --- Claims AWS exposes, per issuer --------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
    # and the January 2026 STS claim validation (docs/aws-sts-iam.md#condition-keys)
    case(
        "bitbucket-branchName-never-matches",
        None,
        D,
        document=policy(
            statement(
                {"StringEquals": {f"{BB}:branchName": "main"}}, principal={"Federated": arn(BB)}
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r}:{s}", "branchName": "main"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-branchName-negated-does-nothing",
        None,
        A,
        document=policy(
            statement(
                {"StringNotEquals": {f"{BB}:branchName": "feature"}},
                principal={"Federated": arn(BB)},
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r}:{s}", "branchName": "feature"},
        provider_arn=arn(BB),
    ),
    case(
        "gitlab-ref_protected-never-matches",
        None,
        D,
        document=policy(
            statement(
                {"StringEquals": {f"{GL}:ref_protected": "true"}}, principal={"Federated": arn(GL)}
            )
        ),
        claims={
            "iss": f"https://{GL}",
            "sub": "project_path:g/p:ref_type:branch:ref:main",
            "ref_protected": "true",
        },
        provider_arn=arn(GL),
    ),
    case(
        "github-repository_owner-not-exposed",
        {"StringEquals": {f"{GH}:repository_owner": "octo-org"}},
        D,
    ),
    case(
        "github-job_workflow_ref-exposed",
        {"StringLike": {f"{GH}:job_workflow_ref": "octo-org/octo-repo/.github/workflows/*"}},
        A,
    ),
    case(
        "github-environment-exposed",
        {"StringEquals": {f"{GH}:environment": "prod"}},
        A,
        claims={"environment": "prod"},
    ),
    case(
        "github-repository_id-exposed",
        {"StringEquals": {f"{GH}:repository_id": "456"}},
        A,
    ),
    case("other-issuer-key-is-absent", {"StringEquals": {f"{GL}:sub": SUB}}, D),
    case("service-key-is-absent", {"StringEquals": {"s3:prefix": "x"}}, D),
    case(
        "circleci-unconfirmed-claim-indeterminate",
        None,
        I,
        document=policy(
            statement(
                {"StringNotEquals": {f"{CC}:oidc.circleci.com/project-id": "x"}},
                principal={"Federated": arn(CC)},
            )
        ),
        claims={
            "iss": f"https://{CC}",
            "sub": f"org/{CC_ORG}/project/p/user/u",
            "oidc.circleci.com/project-id": "p",
        },
        provider_arn=arn(CC),
    ),
    # --- Global keys keyless cannot know offline -----------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
    case("aws-key-unknown", {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, I),
    case(
        "aws-key-given",
        {"StringEquals": {"aws:PrincipalOrgID": "o-1"}},
        A,
        context={"aws:PrincipalOrgID": "o-1"},
    ),
    case(
        "aws-key-given-case-insensitive",
        {"StringEquals": {"AWS:principalorgid": "o-1"}},
        A,
        context={"aws:PrincipalOrgID": "o-1"},
    ),
    # --- Policy variables ------------------------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
    case("variable-claim", sub_is(f"repo:${{{GH}:repository}}:ref:refs/heads/main"), A),
    case(
        "variable-literal-in-2008-version",
        None,
        D,
        document=policy(
            statement(sub_is(f"repo:${{{GH}:repository}}:ref:refs/heads/main")),
            version="2008-10-17",
        ),
    ),
    case(
        "variable-literal-without-version",
        None,
        D,
        document=policy(
            statement(sub_is(f"repo:${{{GH}:repository}}:ref:refs/heads/main")), version=None
        ),
    ),
    case("variable-absent-is-null", sub_is(f"${{{GH}:environment}}"), D),
    case(
        "variable-absent-null-satisfies-negated",
        sub_is(f"${{{GH}:environment}}", "StringNotEquals"),
        A,
    ),
    case(
        "variable-default-value",
        sub_is(f"repo:${{{GH}:repository_owner, 'octo-org'}}/octo-repo:ref:refs/heads/main"),
        A,
    ),
    case(
        "variable-literal-star",
        sub_is("repo:octo-org/octo-repo:ref:refs/heads/${*}", "StringLike"),
        A,
        claims={"sub": "repo:octo-org/octo-repo:ref:refs/heads/*"},
    ),
    case(
        "variable-literal-star-no-wildcard", sub_is("repo:octo-org/octo-repo:${*}", "StringLike"), D
    ),
    case("variable-literal-question", sub_is(SUB[:-1] + "${?}", "StringLike"), D),
    case("variable-literal-dollar", sub_is("${$}x"), A, claims={"sub": "$x"}),
    case("variable-unknown-key", sub_is("${aws:SourceIp}"), I),
    # --- Each CI's real subject forms ------------------------------------------------------------
    # Bitbucket (docs/ci-tokens.md#bitbucket-sub; Atlassian "Deploy on AWS using Bitbucket Pipelines
    # OpenID Connect")
    case(
        "bitbucket-repository-pattern",
        None,
        A,
        document=policy(
            statement({"StringLike": {f"{BB}:sub": "{r1}:*"}}, principal={"Federated": arn(BB)})
        ),
        claims={"iss": f"https://{BB}", "sub": "{r1}:{step-1}"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-sibling-repository",
        None,
        D,
        document=policy(
            statement({"StringLike": {f"{BB}:sub": "{r1}:*"}}, principal={"Federated": arn(BB)})
        ),
        claims={"iss": f"https://{BB}", "sub": "{r2}:{step-1}"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-environment-pattern",
        None,
        A,
        document=policy(
            statement(
                {"StringLike": {f"{BB}:sub": "{r1}:{e1}:*"}}, principal={"Federated": arn(BB)}
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r1}:{e1}:{step-1}"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-environment-pattern-plain-step",
        None,
        D,
        document=policy(
            statement(
                {"StringLike": {f"{BB}:sub": "{r1}:{e1}:*"}}, principal={"Federated": arn(BB)}
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r1}:{step-1}"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-full-sub-breaks-next-run",
        None,
        D,
        document=policy(
            statement(
                {"StringEquals": {f"{BB}:sub": "{r1}:{step-1}"}}, principal={"Federated": arn(BB)}
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r1}:{step-2}"},
        provider_arn=arn(BB),
    ),
    case(
        "bitbucket-environment-name-never-matches",
        None,
        D,
        document=policy(
            statement(
                {"StringLike": {f"{BB}:sub": "{r1}:production:*"}}, principal={"Federated": arn(BB)}
            )
        ),
        claims={"iss": f"https://{BB}", "sub": "{r1}:{e1}:{step-1}"},
        provider_arn=arn(BB),
    ),
    # GitHub (docs/ci-tokens.md#github-sub; GitHub "OpenID Connect reference")
    case(
        "github-environment-subject",
        sub_is("repo:octo-org/octo-repo:environment:prod"),
        A,
        claims={"sub": "repo:octo-org/octo-repo:environment:prod", "environment": "prod"},
    ),
    case(
        "github-pull-request-vs-branch-pin",
        sub_is(SUB),
        D,
        claims={"sub": "repo:octo-org/octo-repo:pull_request"},
    ),
    case(
        "github-tag-vs-branch-pin",
        sub_is(SUB),
        D,
        claims={"sub": "repo:octo-org/octo-repo:ref:refs/tags/main"},
    ),
    case(
        "github-immutable-subject-vs-name-pin",
        sub_is(SUB),
        D,
        claims={"sub": "repo:octo-org@123/octo-repo@456:ref:refs/heads/main"},
    ),
    case(
        "github-immutable-subject-pinned",
        sub_is("repo:octo-org@123/octo-repo@456:ref:refs/heads/main"),
        A,
        claims={"sub": "repo:octo-org@123/octo-repo@456:ref:refs/heads/main"},
    ),
    case(
        "github-repo-wide-excludes-prefix-sibling",
        sub_is("repo:octo-org/octo-repo:*", "StringLike"),
        D,
        claims={"sub": "repo:octo-org/octo-repo-fork:ref:refs/heads/main"},
    ),
    case(
        "github-repo-prefix-admits-sibling",
        sub_is("repo:octo-org/octo-repo*", "StringLike"),
        A,
        claims={"sub": "repo:octo-org/octo-repo-fork:ref:refs/heads/main"},
    ),
    case(
        "github-environment-colon-encoded",
        sub_is("repo:octo-org/octo-repo:environment:Production%3AV1"),
        A,
        claims={"sub": "repo:octo-org/octo-repo:environment:Production%3AV1"},
    ),
    # GitLab (docs/ci-tokens.md#gitlab-sub; GitLab "Configure OpenID Connect in AWS")
    *[
        case(
            case_id,
            None,
            expected,
            document=policy(
                statement({operator: {f"{GL}:sub": pattern}}, principal={"Federated": arn(GL)})
            ),
            claims={"iss": f"https://{GL}", "sub": subject},
            provider_arn=arn(GL),
        )
        for case_id, operator, pattern, subject, expected in (
            (
                "gitlab-branch-exact",
                "StringEquals",
                "project_path:g/p:ref_type:branch:ref:main",
                "project_path:g/p:ref_type:branch:ref:main",
                A,
            ),
            (
                "gitlab-tag-named-like-branch",
                "StringEquals",
                "project_path:g/p:ref_type:branch:ref:main",
                "project_path:g/p:ref_type:tag:ref:main",
                D,
            ),
            (
                "gitlab-any-ref-type-admits-tag",
                "StringLike",
                "project_path:g/p:ref_type:*:ref:main",
                "project_path:g/p:ref_type:tag:ref:main",
                A,
            ),
            (
                "gitlab-group-wide-admits-subgroup",
                "StringLike",
                "project_path:g/*",
                "project_path:g/sub/p:ref_type:branch:ref:main",
                A,
            ),
            (
                "gitlab-project-wide-excludes-sibling",
                "StringLike",
                "project_path:g/p:*",
                "project_path:g/p2:ref_type:branch:ref:main",
                D,
            ),
        )
    ],
    # CircleCI (docs/ci-tokens.md#circleci; CircleCI "Using OpenID Connect tokens in jobs")
    *[
        case(
            case_id,
            None,
            expected,
            document=policy(
                statement({"StringLike": {f"{CC}:sub": pattern}}, principal={"Federated": arn(CC)})
            ),
            claims={"iss": f"https://{CC}", "sub": subject, "aud": CC_ORG},
            provider_arn=arn(CC),
        )
        for case_id, pattern, subject, expected in (
            (
                "circleci-project-v1",
                f"org/{CC_ORG}/project/p1/user/*",
                f"org/{CC_ORG}/project/p1/user/u1",
                A,
            ),
            (
                "circleci-project-v2",
                f"org/{CC_ORG}/project/p1/user/*",
                f"org/{CC_ORG}/project/p1/user/u1/vcs-origin/github.com/o/r/vcs-ref/refs/heads/dev",
                A,
            ),
            (
                "circleci-other-project",
                f"org/{CC_ORG}/project/p1/user/*",
                f"org/{CC_ORG}/project/p2/user/u1",
                D,
            ),
            (
                "circleci-v2-branch-pin-other-branch",
                f"org/{CC_ORG}/project/p1/user/*/vcs-origin/*/vcs-ref/refs/heads/main",
                f"org/{CC_ORG}/project/p1/user/u1/vcs-origin/github.com/o/r/vcs-ref/refs/heads/dev",
                D,
            ),
        )
    ],
    # Buildkite (docs/ci-tokens.md#buildkite; Buildkite "OIDC with AWS")
    *[
        case(
            case_id,
            None,
            expected,
            document=policy(
                statement({"StringLike": {f"{BK}:sub": pattern}}, principal={"Federated": arn(BK)})
            ),
            claims={"iss": f"https://{BK}", "sub": subject},
            provider_arn=arn(BK),
        )
        for case_id, pattern, subject, expected in (
            (
                "buildkite-branch",
                "organization:acme:pipeline:app:ref:refs/heads/main:*",
                "organization:acme:pipeline:app:ref:refs/heads/main:commit:abc:step:deploy",
                A,
            ),
            (
                "buildkite-other-pipeline",
                "organization:acme:pipeline:app:ref:refs/heads/main:*",
                "organization:acme:pipeline:app2:ref:refs/heads/main:commit:abc:step:deploy",
                D,
            ),
            (
                "buildkite-other-branch",
                "organization:acme:pipeline:app:ref:refs/heads/main:*",
                "organization:acme:pipeline:app:ref:refs/heads/dev:commit:abc:step:deploy",
                D,
            ),
        )
    ],
    # --- Session tags and source identity -------------------------------------------------------
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html#id_session-tags_adding-assume-role-idp
    case(
        "tags-need-TagSession",
        None,
        D,
        claims={
            "https://aws.amazon.com/tags": {
                "principal_tags": {"org": ["acme"]},
                "transitive_tag_keys": [],
            }
        },
    ),
    case(
        "tags-with-TagSession",
        None,
        A,
        document=policy(statement(action=[WIF, "sts:TagSession"])),
        claims={
            "https://aws.amazon.com/tags": {
                "principal_tags": {"org": ["acme"]},
                "transitive_tag_keys": [],
            }
        },
    ),
    case(
        "RequestTag-condition",
        None,
        A,
        document=policy(
            statement(
                {"StringEquals": {"aws:RequestTag/org": "acme"}}, action=[WIF, "sts:TagSession"]
            )
        ),
        claims={
            "https://aws.amazon.com/tags": {
                "principal_tags": {"org": ["acme"]},
                "transitive_tag_keys": [],
            }
        },
    ),
    case(
        "RequestTag-absent-without-tags",
        {"StringEquals": {"aws:RequestTag/org": "acme"}},
        D,
    ),
    case(
        "TagKeys-ForAllValues",
        None,
        A,
        document=policy(
            statement(
                {"ForAllValues:StringEquals": {"aws:TagKeys": ["org", "pipeline"]}},
                action=["sts:*"],
            )
        ),
        claims={
            "https://aws.amazon.com/tags": {
                "principal_tags": {"org": ["acme"]},
                "transitive_tag_keys": ["org"],
            }
        },
    ),
    case(
        "source-identity-needs-SetSourceIdentity",
        None,
        D,
        claims={"https://aws.amazon.com/source_identity": "octocat"},
    ),
    # --- Empty means deny; documents IAM refuses as trust policies -------------------------------
    case("no-statements", None, D, document={"Version": "2012-10-17", "Statement": []}),
    case("empty-condition-block-not-vacuous", {}, I),
    case("no-condition-allows", None, A),
    case(
        "NotPrincipal-invalid-in-trust-policy",
        None,
        I,
        document=policy({"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": WIF}),
    ),
    case("Resource-invalid-in-trust-policy", None, I, document=policy(statement(Resource="*"))),
    case(
        "no-principal-invalid-in-trust-policy",
        None,
        I,
        document=policy({"Effect": "Allow", "Action": WIF}),
    ),
]


@pytest.mark.parametrize(
    ("document", "claims", "issuer", "provider_arn", "context", "expected"), CASES
)
def test_documented_case(
    document: dict[str, Any],
    claims: Mapping[str, Any],
    issuer: str | None,
    provider_arn: str | None,
    context: Mapping[str, Any] | None,
    expected: Decision,
) -> None:
    result = run(document, claims, issuer, provider_arn, context)
    assert result.decision is expected, result.explanation
    assert result.reason
    assert "\n" not in result.reason
    assert result.explanation


def test_there_are_at_least_a_hundred_documented_cases() -> None:
    assert len(CASES) >= 100


# --- the shape of an Evaluation ---------------------------------------------------------------


def test_rows_name_operator_key_values_actual_and_result() -> None:
    document = policy(
        statement(
            {
                "StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{GH}:sub": "repo:octo-org/octo-repo:ref:refs/heads/release*"},
            }
        )
    )
    result = run(document, BASE_CLAIMS)
    assert result.decision is D
    aud, sub = result.conditions
    assert (aud.operator, aud.key, aud.values, aud.actual, aud.result) == (
        "StringEquals",
        f"{GH}:aud",
        ("sts.amazonaws.com",),
        "sts.amazonaws.com",
        Outcome.PASS,
    )
    assert sub.actual == SUB
    assert sub.result is Outcome.FAIL
    assert "release*" in result.reason
    assert result.deciding_statement is None
    data = result.to_json()
    assert data["decision"] == "deny"
    assert data["decision_detail"] == "implicit-deny"
    assert {"operator", "key", "values", "actual", "result"} <= set(data["conditions"][0])


def test_deciding_statement_is_the_deny() -> None:
    result = run(policy(statement(), statement(effect="Deny", Sid="Block")), BASE_CLAIMS)
    assert result.deciding_statement is not None
    assert result.deciding_statement.sid == "Block"
    assert 'Sid "Block"' in result.reason


def test_unexposed_claim_row_has_no_actual_and_says_why() -> None:
    document = policy(
        statement({"StringEquals": {f"{BB}:branchName": "main"}}, principal={"Federated": arn(BB)})
    )
    claims = {"iss": f"https://{BB}", "sub": "{r}:{s}", "branchName": "main"}
    result = run(document, claims, provider_arn=arn(BB))
    (row,) = result.conditions
    assert row.actual is None
    assert row.note is not None
    assert "Bitbucket Pipelines" in row.note
    assert "`branchName` can never match: AWS does not expose it for Bitbucket" in (
        result.explanation
    )


def test_negated_unexposed_claim_is_called_a_no_op() -> None:
    document = policy(
        statement({"StringNotEquals": {f"{BB}:branchName": "x"}}, principal={"Federated": arn(BB)})
    )
    claims = {"iss": f"https://{BB}", "sub": "{r}:{s}"}
    result = run(document, claims, provider_arn=arn(BB))
    assert "does nothing" in result.explanation


def test_missing_provider_arn_is_noted() -> None:
    result = run(policy(statement()), BASE_CLAIMS, provider_arn=None)
    assert result.allowed
    assert result.statements[0].principal_note is not None
    assert "account" in result.statements[0].principal_note


def test_indeterminate_reason_says_undocumented() -> None:
    result = run(
        policy(statement({"StringEquals": {f"{GH}:aud": "a"}})), {**BASE_CLAIMS, "aud": ["a", "b"]}
    )
    assert result.decision is I
    assert "documents no result" in result.reason
    assert not result.allowed


def test_raise_for_decision() -> None:
    from keyless.errors import AccessDeniedError

    run(policy(statement()), BASE_CLAIMS).raise_for_decision()
    with pytest.raises(AccessDeniedError, match="Not authorized"):
        run(policy(statement(sub_is("x"))), BASE_CLAIMS).raise_for_decision()


def test_claims_frozen_by_tokens_peek_evaluate_alike() -> None:
    # keyless.tokens freezes JSON arrays into tuples and objects into read-only mappings.
    from types import MappingProxyType

    tags = MappingProxyType(
        {"principal_tags": MappingProxyType({"org": ("acme",)}), "transitive_tag_keys": ()}
    )
    claims = {**BASE_CLAIMS, "aud": ("sts.amazonaws.com", "x"), "https://aws.amazon.com/tags": tags}
    document = policy(
        statement(
            {
                "ForAnyValue:StringEquals": {f"{GH}:aud": "sts.amazonaws.com"},
                "StringEquals": {"aws:RequestTag/org": "acme"},
            },
            action=[WIF, "sts:TagSession"],
        )
    )
    assert run(document, claims).decision is A


def test_issuer_comes_from_claims_unless_given() -> None:
    from keyless.errors import TokenError

    claims = {k: v for k, v in BASE_CLAIMS.items() if k != "iss"}
    with pytest.raises(TokenError, match="iss"):
        Request.from_claims(claims)
    assert Request.from_claims(claims, issuer=GH_ISS).issuer == GH_ISS
