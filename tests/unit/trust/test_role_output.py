"""Trust policies read from what ``aws iam`` prints: get-role, list-roles pages,
get-account-authorization-details, URL-encoded documents; each role's place in the text, and the
limits at their edge."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from keyless.errors import PolicyError
from keyless.limits import DOCUMENT_MAX_CHARS, IAM_OUTPUT_MAX_ROLES
from keyless.trust.lint import LintedFile, lint
from keyless.trust.role_output import read_trusts
from tests.trust_policies import github_trust

GH = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::123456789012:oidc-provider/{GH}"


def trust(sub: str) -> dict[str, Any]:
    return github_trust(sub)


SERVICE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def role(name: str, document: object) -> dict[str, Any]:
    # The members `aws iam list-roles` prints for each role, in its order.
    return {
        "Path": "/",
        "RoleName": name,
        "RoleId": "AROA" + name.upper().ljust(17, "X")[:17],
        "Arn": f"arn:aws:iam::123456789012:role/{name}",
        "CreateDate": "2026-01-02T03:04:05+00:00",
        "AssumeRolePolicyDocument": document,
        "MaxSessionDuration": 3600,
    }


def test_a_policy_on_its_own_is_one_trust_without_a_role() -> None:
    (only,) = read_trusts(json.dumps(trust("repo:acme/app:ref:refs/heads/main")))
    assert (only.role, only.where, only.start, only.end) == (None, "", 0, None)


def test_get_role_output() -> None:
    (only,) = read_trusts(json.dumps({"Role": role("deploy", trust("repo:acme/*"))}))
    assert (only.role, only.where) == ("deploy", "Role")
    assert next(f.rule for f in lint(only.policy)) == "subject-org-wide"


def test_a_list_roles_page_gives_every_role_with_its_lines() -> None:
    page = {
        "Roles": [
            role("web", SERVICE),
            role("deploy", trust("repo:acme/*")),
            role("exact", trust("repo:acme/app:environment:prod")),
        ],
        "IsTruncated": False,
    }
    text = json.dumps(page, indent=4)
    trusts = read_trusts(text)
    assert [(t.role, t.where) for t in trusts] == [
        ("web", "Roles[0]"),
        ("deploy", "Roles[1]"),
        ("exact", "Roles[2]"),
    ]
    assert lint(trusts[0].policy) == []  # a service role: no OIDC trust to grade
    deploy = trusts[1]
    findings = tuple(lint(deploy.policy))
    linted = LintedFile(
        path="roles.json",
        text=text,
        findings=findings,
        role=deploy.role,
        where=deploy.where,
        start=deploy.start,
        end=deploy.end,
    )
    wildcard = next(f for f in findings if f.rule == "subject-org-wide")
    line = text.splitlines()[linted.line(wildcard) - 1]
    assert "repo:acme/*" in line  # the deploy role's own sub line, not another role's
    assert linted.qualified(wildcard).startswith("Roles[1].AssumeRolePolicyDocument.Statement[0]")


def test_pages_in_a_json_list_and_authorization_details() -> None:
    pages = [{"Roles": [role("a", SERVICE)]}, {"Roles": [role("b", trust("repo:acme/*"))]}]
    assert [t.where for t in read_trusts(json.dumps(pages))] == ["[0].Roles[0]", "[1].Roles[0]"]
    details = {
        "UserDetailList": [],
        "RoleDetailList": [{**role("b", trust("repo:acme/*")), "RolePolicyList": []}],
        "Policies": [],
    }
    (only,) = read_trusts(json.dumps(details))
    assert (only.role, only.where) == ("b", "RoleDetailList[0]")


def test_a_url_encoded_document_as_the_iam_api_returns_it() -> None:
    encoded = urllib.parse.quote(json.dumps(trust("repo:acme/*")), safe="")
    (only,) = read_trusts(json.dumps({"Role": role("deploy", encoded)}))
    assert "subject-org-wide" in {f.rule for f in lint(only.policy)}


def test_a_broken_role_is_named_with_its_element() -> None:
    broken = trust("repo:acme/*")
    broken["Statement"][0]["Effect"] = "allow"
    page = {"Roles": [role("ok", SERVICE), role("bad", broken)]}
    with pytest.raises(PolicyError) as caught:
        read_trusts(json.dumps(page))
    assert caught.value.message.startswith(
        'Roles[1] (RoleName "bad").AssumeRolePolicyDocument: Statement[0].Effect:'
    )
    with pytest.raises(PolicyError, match=r"Roles\[0\] \(RoleName \"x\"\)"):
        read_trusts(json.dumps({"Roles": [{"RoleName": "x"}]}))
    with pytest.raises(PolicyError, match=r"URL-encoded"):
        read_trusts(json.dumps({"Role": role("deploy", "%7Bnot json")}))


def test_text_that_is_no_iam_output_gets_the_policy_error() -> None:
    with pytest.raises(PolicyError, match="neither a policy document nor aws iam output"):
        read_trusts(json.dumps({"Users": []}))
    with pytest.raises(PolicyError, match="not valid JSON at line 1"):
        read_trusts("{")


def test_a_duplicate_key_inside_a_listed_role_is_refused() -> None:
    text = json.dumps({"Roles": [role("d", trust("repo:acme/*"))]}).replace(
        '"Version": "2012-10-17"', '"Version": "2012-10-17", "Version": "2008-10-17"'
    )
    with pytest.raises(PolicyError, match="'Version' appears more than once"):
        read_trusts(text)


def test_the_role_count_at_its_limit() -> None:
    small = {"Version": "2012-10-17", "Statement": SERVICE["Statement"]}
    at_limit = {
        "Roles": [
            {"RoleName": f"r{i}", "AssumeRolePolicyDocument": small}
            for i in range(IAM_OUTPUT_MAX_ROLES)
        ]
    }
    assert len(read_trusts(json.dumps(at_limit))) == IAM_OUTPUT_MAX_ROLES
    at_limit["Roles"].append({"RoleName": "one-more", "AssumeRolePolicyDocument": small})
    with pytest.raises(PolicyError, match=f"more than the {IAM_OUTPUT_MAX_ROLES} IAM allows"):
        read_trusts(json.dumps(at_limit))


def test_a_key_named_like_the_document_inside_a_policy_gives_line_one_not_a_wrong_role() -> None:
    odd = trust("repo:acme/*")
    odd["Statement"][0]["Condition"]["StringEquals"]["AssumeRolePolicyDocument"] = "x"
    trusts = read_trusts(json.dumps({"Roles": [role("a", odd), role("b", trust("repo:x/*"))]}))
    assert [(t.start, t.end) for t in trusts] == [(0, 0), (0, 0)]


def test_a_policy_with_a_mistake_keeps_the_policy_parsers_message() -> None:
    with pytest.raises(PolicyError, match="unknown element 'Statment'"):
        read_trusts(json.dumps({"Version": "2012-10-17", "Statment": []}))


def test_output_larger_than_a_policy_is_read_up_to_the_output_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyless.trust import role_output

    padding = "d" * 1000  # Description: what makes real list-roles output long
    page = {"Roles": [{**role(f"r{i}", SERVICE), "Description": padding} for i in range(1100)]}
    text = json.dumps(page)
    assert len(text) > DOCUMENT_MAX_CHARS
    assert len(read_trusts(text)) == 1100
    monkeypatch.setattr(role_output, "IAM_OUTPUT_MAX_CHARS", len(text))
    assert len(read_trusts(text)) == 1100
    monkeypatch.setattr(role_output, "IAM_OUTPUT_MAX_CHARS", len(text) - 1)
    with pytest.raises(PolicyError, match=f"is {len(text)} characters, more than the"):
        read_trusts(text)


def test_a_large_document_that_is_no_iam_output_says_both_limits() -> None:
    text = json.dumps({"Users": ["u" * DOCUMENT_MAX_CHARS]})
    with pytest.raises(PolicyError, match=f"more than the {DOCUMENT_MAX_CHARS} of a policy"):
        read_trusts(text)
