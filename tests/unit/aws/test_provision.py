"""plan is pure and apply makes exactly the plan's write calls: create, reuse, widen only with
--force, refuse risky trust, and say what exists when a call fails part-way."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from keyless.aws.permissions import S3DeployPreset, parse_s3_location, s3_deploy_policy
from keyless.aws.provision import Action, Call, Item, plan
from keyless.aws.provision_apply import (
    ProvisionIncompleteError,
    ProvisionRefusedError,
    apply,
    read_current,
)
from keyless.aws.provision_state import (
    Current,
    Desired,
    RoleName,
    parse_max_session_duration,
    parse_permissions_boundary,
    parse_role_name,
    parse_tag,
)
from keyless.aws.thumbprint import Thumbprint
from keyless.ci import local_issuers
from keyless.ci.bitbucket import BitbucketScope
from keyless.errors import AccessDeniedError, UsageError
from keyless.trust.build import account_id, trust_policy
from keyless.trust.model import dumps_policy, parse_policy, to_document
from tests.unit.aws.fake_iam import ACCOUNT, FakeIam, client_error

WORKSPACE_UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
REPO_UUID = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
ENV_UUID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
TP1 = Thumbprint("1" * 40)
TP2 = Thumbprint("2" * 40)


def scope(environment: str | None = None) -> BitbucketScope:
    return BitbucketScope(
        workspace="acme",
        workspace_uuid=WORKSPACE_UUID,
        repository_uuid=REPO_UUID,
        environment_uuid=environment,
    )


def desired(environment: str | None = ENV_UUID, **changes: Any) -> Desired:
    spec = scope(environment).trust_spec()
    base = Desired(
        account_id=ACCOUNT,
        issuer=spec.issuer,
        client_ids=(scope().audience,),
        thumbprints=(TP1,),
        role_name=RoleName("deploy"),
        trust=trust_policy(spec, account=account_id(ACCOUNT)),
        permissions=s3_deploy_policy(
            S3DeployPreset(location=parse_s3_location("site/www")), account_id=ACCOUNT
        ),
    )
    return dataclasses.replace(base, **changes)


def run(iam: FakeIam, want: Desired, **flags: bool) -> list[str]:
    """Plan against the fake's state and apply; the write calls made."""
    before = len(iam.writes)
    apply(plan(want, read_current(iam.client, want)), iam.client, sleep=lambda _: None, **flags)
    return iam.writes[before:]


def actions(want: Desired, iam: FakeIam) -> dict[Item, Action]:
    return {c.item: c.action for c in plan(want, read_current(iam.client, want)).changes}


def test_an_empty_account_gets_provider_role_and_policy_in_three_calls() -> None:
    iam = FakeIam()
    want = desired()
    assert set(actions(want, iam).values()) == {Action.CREATE, Action.UNCHANGED}
    assert run(iam, want) == ["create_open_id_connect_provider", "create_role", "put_role_policy"]
    provider = iam.providers[want.provider_arn]
    assert provider == {"ClientIDList": [want.client_ids[0]], "ThumbprintList": [TP1]}
    role = iam.roles["deploy"]
    assert role["trust"] == to_document(want.trust)
    assert role["policies"]["keyless-permissions"] == to_document(want.permissions)
    assert role["MaxSessionDuration"] == 3600


def test_a_second_run_plans_nothing_and_writes_nothing() -> None:
    iam = FakeIam()
    want = desired(tags=(("team", "web"),), max_session_duration=7200)
    run(iam, want)
    again = plan(want, read_current(iam.client, want))
    assert not again.changed
    assert all(change.calls == () for change in again.changes)
    assert run(iam, want) == []


def test_plan_is_pure() -> None:
    want, current = desired(), Current()
    assert plan(want, current) == plan(want, current)


def test_an_existing_provider_is_reused_and_gets_the_missing_audience() -> None:
    iam = FakeIam()
    want = desired()
    iam.providers[want.provider_arn] = {"ClientIDList": ["other"], "ThumbprintList": [TP1]}
    the_plan = plan(want, read_current(iam.client, want))
    change = the_plan.change(Item.CLIENT_IDS)
    assert change.action is Action.UPDATE
    assert [c.operation for c in change.calls] == ["iam:AddClientIDToOpenIDConnectProvider"]
    assert any("also accepts the audiences other" in note for note in the_plan.notes)
    assert run(iam, want) == [
        "add_client_id_to_open_id_connect_provider",
        "create_role",
        "put_role_policy",
    ]
    assert iam.providers[want.provider_arn]["ClientIDList"] == ["other", want.client_ids[0]]
    assert run(iam, want) == []


def test_a_new_thumbprint_is_added_in_front_and_five_are_kept() -> None:
    iam = FakeIam()
    want = desired(thumbprints=(TP2,))
    old = [str(n) * 40 for n in range(3, 8)]
    iam.providers[want.provider_arn] = {
        "ClientIDList": list(want.client_ids),
        "ThumbprintList": old,
    }
    assert run(iam, want)[0] == "update_open_id_connect_provider_thumbprint"
    assert iam.providers[want.provider_arn]["ThumbprintList"] == [TP2, *old[:4]]


def test_a_wider_trust_needs_force_and_writes_nothing_without_it() -> None:
    iam = FakeIam()
    run(iam, desired(environment=ENV_UUID))
    wider = desired(environment=None)
    the_plan = plan(wider, read_current(iam.client, wider))
    trust = the_plan.change(Item.TRUST)
    assert trust.action is Action.UPDATE
    assert trust.widening is not None
    assert trust.widening.claims["sub"].startswith("{" + REPO_UUID + "}:")
    assert any(line.startswith("-") and ENV_UUID in line for line in trust.diff)
    with pytest.raises(ProvisionRefusedError) as caught:
        # A repository-wide subject on a deploy role is also high (docs/lint-severity.md).
        apply(the_plan, iam.client, allow_risky=True)
    with pytest.raises(ProvisionRefusedError) as risky:
        apply(the_plan, iam.client, force=True)
    assert "subject-repo-wide" in risky.value.message
    assert "widens who can assume it" in caught.value.message
    assert caught.value.remedy is not None
    assert "--force" in caught.value.remedy
    assert "Nothing was written" in caught.value.remedy
    assert iam.writes[-1] == "put_role_policy"  # nothing after the first run
    assert run(iam, wider, force=True, allow_risky=True) == ["update_assume_role_policy"]


def test_a_narrower_trust_needs_no_force() -> None:
    iam = FakeIam()
    run(iam, desired(environment=None), allow_risky=True)  # repository-wide deploy role: high
    narrower = desired(environment=ENV_UUID)
    assert plan(narrower, read_current(iam.client, narrower)).change(Item.TRUST).widening is None
    assert run(iam, narrower) == ["update_assume_role_policy"]


def test_an_unreadable_current_trust_needs_force() -> None:
    iam = FakeIam()
    want = desired()
    run(iam, want)
    iam.roles["deploy"]["trust"] = {"Statement": "not a list"}
    refusals = plan(want, read_current(iam.client, want)).refusals()
    assert [r.flag for r in refusals] == ["--force"]
    assert "cannot be compared" in refusals[0].reason
    assert run(iam, want, force=True) == ["update_assume_role_policy"]


def test_a_risky_trust_needs_allow_risky() -> None:
    iam = FakeIam()
    want = desired()
    # aud only: every pipeline of the workspace could assume the role
    document = to_document(want.trust)
    del document["Statement"][0]["Condition"]["StringLike"]
    risky = dataclasses.replace(want, trust=parse_policy(document))
    the_plan = plan(risky, Current())
    refusals = the_plan.refusals()
    assert [r.flag for r in refusals] == ["--allow-risky"]
    with pytest.raises(ProvisionRefusedError, match="high severity or above"):
        apply(the_plan, iam.client)
    assert iam.writes == []
    assert run(iam, risky, allow_risky=True)[0] == "create_open_id_connect_provider"


def test_session_boundary_and_tags_are_updated_only_when_asked() -> None:
    iam = FakeIam()
    run(iam, desired(tags=(("team", "web"),)))
    iam.roles["deploy"]["Tags"]["owner"] = "ops"
    iam.roles["deploy"]["boundary"] = "arn:aws:iam::123456789012:policy/old"
    kept = desired()
    assert run(iam, kept) == []  # None means "leave as is": the boundary is never removed
    boundary = "arn:aws:iam::123456789012:policy/new"
    changed = desired(
        max_session_duration=7200, permissions_boundary=boundary, tags=(("team", "site"),)
    )
    assert run(iam, changed) == ["update_role", "put_role_permissions_boundary", "tag_role"]
    role = iam.roles["deploy"]
    assert (role["MaxSessionDuration"], role["boundary"]) == (7200, boundary)
    assert role["Tags"] == {"team": "site", "owner": "ops"}


def test_a_changed_permission_policy_is_rewritten_with_a_diff() -> None:
    iam = FakeIam()
    run(iam, desired())
    deleting = desired(
        permissions=s3_deploy_policy(
            S3DeployPreset(location=parse_s3_location("site/www"), allow_delete=True),
            account_id=ACCOUNT,
        )
    )
    change = plan(deleting, read_current(iam.client, deleting)).change(Item.PERMISSIONS)
    assert change.action is Action.UPDATE
    assert any(line.startswith("+") and "s3:DeleteObject" in line for line in change.diff)
    assert run(iam, deleting) == ["put_role_policy"]


def test_every_policy_the_plan_creates_shows_its_content() -> None:
    iam = FakeIam()
    want = desired()
    the_plan = plan(want, read_current(iam.client, want))
    for item, policy in ((Item.TRUST, want.trust), (Item.PERMISSIONS, want.permissions)):
        change = the_plan.change(item)
        assert change.action is Action.CREATE
        assert change.diff == tuple(f"+{line}" for line in dumps_policy(policy).splitlines())
    assert any("s3:PutObject" in line for line in the_plan.change(Item.PERMISSIONS).diff)


def test_a_role_without_keyless_policy_shows_the_policy_it_gets() -> None:
    iam = FakeIam()
    run(iam, desired())
    del iam.roles["deploy"]["policies"]["keyless-permissions"]
    want = desired()
    change = plan(want, read_current(iam.client, want)).change(Item.PERMISSIONS)
    assert change.action is Action.CREATE
    assert change.diff[0] == "+{"
    assert any("s3:ListBucket" in line for line in change.diff)


def test_the_summary_counts_rows_and_write_calls_apart() -> None:
    iam = FakeIam()
    want = desired()
    the_plan = plan(want, read_current(iam.client, want))
    assert the_plan.dry_run_summary() == (
        "Dry run: would make 7 changes (7 create) in 3 IAM write calls"
        " (iam:CreateOpenIDConnectProvider, iam:CreateRole, iam:PutRolePolicy);"
        " nothing was written."
    )
    applied = apply(the_plan, iam.client, sleep=lambda _: None)
    assert applied.summary() == (
        "Applied: 7 changes (7 create) in 3 IAM write calls"
        " (iam:CreateOpenIDConnectProvider, iam:CreateRole, iam:PutRolePolicy)."
    )
    again = plan(want, read_current(iam.client, want))
    assert again.dry_run_summary() == "Dry run: nothing to change, nothing was written."
    assert apply(again, iam.client).summary().startswith("Nothing to change")


def test_the_local_stacks_issuer_is_linted_as_its_ci() -> None:
    base = "https://127.0.0.1:45001"
    issuer = base + "/2.0/workspaces/acme/pipelines-config/identity/oidc"
    spec = dataclasses.replace(scope(ENV_UUID).trust_spec(), issuer=issuer)
    want = desired(issuer=issuer, trust=trust_policy(spec, account=account_id(ACCOUNT)))
    current = read_current(FakeIam().client, want)
    unknown = [f.rule for f in plan(want, current).findings]
    assert "unknown-issuer" in unknown
    local = local_issuers.from_environment({"KEYLESS_LOCAL_BITBUCKET_ISSUER_BASE": base})
    assert "unknown-issuer" not in [f.rule for f in plan(want, current, local=local).findings]


def test_other_policies_of_the_role_are_named_not_touched() -> None:
    iam = FakeIam()
    want = desired()
    run(iam, want)
    iam.roles["deploy"]["policies"]["legacy"] = {"Version": "2012-10-17", "Statement": []}
    iam.roles["deploy"]["attached"].append("arn:aws:iam::aws:policy/AdministratorAccess")
    notes = plan(want, read_current(iam.client, want)).notes
    assert any("legacy" in note for note in notes)
    assert any("AdministratorAccess" in note for note in notes)
    assert run(iam, want) == []


def test_a_denied_call_part_way_says_what_exists_and_what_to_run() -> None:
    iam = FakeIam()
    iam.failures["create_role"] = [
        client_error("AccessDenied", "CreateRole", "User x is not authorized to iam:CreateRole")
    ]
    want = desired()
    with pytest.raises(ProvisionIncompleteError) as caught:
        run(iam, want)
    error = caught.value
    assert error.code == "AccessDenied"
    assert error.exit_code == 2
    assert "iam:CreateRole failed with AccessDenied" in error.message
    assert "1 of 3 write calls" in error.message
    assert [c.method for c in error.done] == ["create_open_id_connect_provider"]
    assert [c.method for c in error.pending] == ["put_role_policy"]
    remedy = error.remedy or ""
    assert f"done       create the OIDC provider {want.provider_arn}" in remedy
    assert "failed     create the role deploy" in remedy
    assert "not done   write the inline policy keyless-permissions" in remedy
    assert "run the same keyless provision command again" in remedy
    assert error.to_json()["done"] == [
        {"call": "iam:CreateOpenIDConnectProvider", "what": error.done[0].describe}
    ]
    # What the report says exists does: the next run finishes the job from there.
    assert run(iam, want) == ["create_role", "put_role_policy"]


def test_a_provider_created_meanwhile_is_adopted() -> None:
    iam = FakeIam()
    want = desired()
    the_plan = plan(want, Current())  # planned before someone else created the provider
    iam.providers[want.provider_arn] = {"ClientIDList": ["other"], "ThumbprintList": []}
    applied = apply(the_plan, iam.client)
    assert [c.method for c in applied.calls] == [
        "add_client_id_to_open_id_connect_provider",
        "create_role",
        "put_role_policy",
    ]
    assert want.client_ids[0] in iam.providers[want.provider_arn]["ClientIDList"]


def test_a_role_write_waits_for_a_new_provider_to_propagate() -> None:
    iam = FakeIam()
    invalid = "Invalid principal in policy"
    iam.failures["create_role"] = [
        client_error("MalformedPolicyDocument", "CreateRole", invalid) for _ in range(2)
    ]
    slept: list[float] = []
    apply(plan(desired(), Current()), iam.client, sleep=slept.append)
    assert slept == [1.0, 2.0]
    assert iam.writes.count("create_role") == 1


def test_a_malformed_trust_is_not_retried_when_the_provider_was_there() -> None:
    iam = FakeIam()
    want = desired()
    iam.providers[want.provider_arn] = {
        "ClientIDList": list(want.client_ids),
        "ThumbprintList": [TP1],
    }
    iam.failures["create_role"] = [
        client_error("MalformedPolicyDocument", "CreateRole", "Invalid principal in policy")
    ]
    slept: list[float] = []
    with pytest.raises(ProvisionIncompleteError):
        apply(plan(want, read_current(iam.client, want)), iam.client, sleep=slept.append)
    assert slept == []


def test_a_denied_read_names_the_read_permissions() -> None:
    iam = FakeIam()
    iam.failures["get_role"] = [client_error("AccessDenied", "GetRole")]
    with pytest.raises(AccessDeniedError) as caught:
        read_current(iam.client, desired())
    assert "cannot read the role deploy" in caught.value.message
    assert "iam:GetRole" in (caught.value.remedy or "")


def test_operation_names_are_iams() -> None:
    names = {
        "create_open_id_connect_provider": "iam:CreateOpenIDConnectProvider",
        "add_client_id_to_open_id_connect_provider": "iam:AddClientIDToOpenIDConnectProvider",
        "update_open_id_connect_provider_thumbprint": "iam:UpdateOpenIDConnectProviderThumbprint",
        "put_role_permissions_boundary": "iam:PutRolePermissionsBoundary",
        "update_assume_role_policy": "iam:UpdateAssumeRolePolicy",
    }
    for method, operation in names.items():
        assert Call(method=method, params={}, describe="").operation == operation


def test_desired_refuses_an_empty_audience_list() -> None:
    with pytest.raises(UsageError, match="no audience"):
        desired(client_ids=())


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_role_name, "has space"),
        (parse_role_name, "x" * 65),
        (parse_tag, "novalue"),
        (parse_tag, "aws:reserved=x"),
        (parse_max_session_duration, "3599"),
        (parse_max_session_duration, "43201"),
        (parse_max_session_duration, "1h"),
        (parse_permissions_boundary, "arn:aws:iam::123:policy/x"),
        (parse_permissions_boundary, "PowerUserAccess"),
    ],
)
def test_bad_values_are_refused_naming_them(parse: Any, text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert repr(text) in caught.value.message


def test_good_values() -> None:
    assert parse_role_name("ci-deploy@site.example") == "ci-deploy@site.example"
    assert parse_tag("team=web=1") == ("team", "web=1")
    assert parse_tag("empty=") == ("empty", "")
    assert parse_max_session_duration("43200") == 43200
    boundary = "arn:aws:iam::aws:policy/PowerUserAccess"
    assert parse_permissions_boundary(boundary) == boundary
