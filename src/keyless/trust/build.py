"""Least-privilege trust policies for one CI scope, as IAM JSON, Terraform or CloudFormation.

What to pin comes from the CI's provider module (``Scope.trust_spec()``); this module only turns
that into one Allow statement (docs/security-model.md#generator-rules: ``StringEquals`` where the
value is exact, ``StringLike`` only where a segment varies per run, never ``ForAllValues`` in an
Allow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keyless.arn import AccountId, is_account_id
from keyless.ci import get_provider
from keyless.ci.base import Scope, TrustSpec
from keyless.errors import UsageError
from keyless.trust.build_format import ACCOUNT_PLACEHOLDER, OutputFormat
from keyless.trust.hcl import Raw, hcl_value
from keyless.trust.model import Policy, dumps_policy, parse_policy, to_document
from keyless.trust.web_identity import WEB_IDENTITY_ACTION, issuer_prefix, provider_arn_for

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "AccountId",
    "Built",
    "OutputFormat",
    "account_id",
    "build",
    "render",
    "trust_policy",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Built:
    """A built trust policy: the document, what it pins, and who can satisfy it."""

    spec: TrustSpec
    policy: Policy
    account_id: AccountId | None

    @property
    def provider_path(self) -> str:
        return issuer_prefix(self.spec.issuer)

    @property
    def notes(self) -> tuple[str, ...]:
        return self.spec.notes


def account_id(value: str) -> AccountId:
    if not is_account_id(value):
        raise UsageError(f"AWS account ID {value!r} is not 12 digits")
    return AccountId(value)


def trust_policy(spec: TrustSpec, *, account: AccountId | None = None) -> Policy:
    """One Allow statement for ``spec``: the provider as principal, web identity as the only
    action, and the spec's conditions, each key in its own operator block."""
    if not any(condition.claim == "sub" for condition in spec.conditions):
        # Empty means deny: a spec that does not pin the subject is a bug, not a broad policy.
        raise UsageError(f"{spec.provider}: the scope pins no subject; refusing to build")
    prefix = issuer_prefix(spec.issuer)
    block: dict[str, dict[str, Any]] = {}
    for condition in spec.conditions:
        if condition.operator not in ("StringEquals", "StringLike"):
            raise UsageError(f"{spec.provider}: unexpected operator {condition.operator}")
        values = list(condition.values)
        block.setdefault(condition.operator, {})[f"{prefix}:{condition.claim}"] = (
            values[0] if len(values) == 1 else values
        )
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Keyless" + "".join(ch for ch in _display(spec) if ch.isalnum()),
                "Effect": "Allow",
                "Principal": {
                    "Federated": provider_arn_for(spec.issuer, account or ACCOUNT_PLACEHOLDER)
                },
                "Action": WEB_IDENTITY_ACTION,
                "Condition": block,
            }
        ],
    }
    return parse_policy(document)


def _display(spec: TrustSpec) -> str:
    return get_provider(spec.provider).display_name


def build(spec: Scope | TrustSpec, *, account: AccountId | None = None) -> Built:
    """The policy for a scope, or for a spec already made from one (``--issuer``)."""
    if not isinstance(spec, TrustSpec):
        spec = spec.trust_spec()
    return Built(spec=spec, policy=trust_policy(spec, account=account), account_id=account)


def render(built: Built, output: OutputFormat) -> str:
    if output is OutputFormat.JSON:
        return dumps_policy(built.policy)
    if output is OutputFormat.TERRAFORM:
        return _terraform(built)
    return _cloudformation(built)


# --- Terraform -----------------------------------------------------------------------------------


def _terraform(built: Built) -> str:
    document = to_document(built.policy)
    name = f"keyless_{built.spec.provider}_trust_policy"
    header = [f"# {note}" for note in built.notes]
    header.append(f"# Use it as: assume_role_policy = local.{name}")
    if built.account_id is None:
        arn = (
            '"arn:aws:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/'
            + built.provider_path.replace("${", "$${")
            + '"'
        )
        document["Statement"][0]["Principal"]["Federated"] = Raw(arn)
        header.append('data "aws_caller_identity" "current" {}')
        header.append("")
    body = hcl_value(document, 1)
    return "\n".join([*header, "locals {", f"  {name} = jsonencode({body})", "}", ""])


# --- CloudFormation ------------------------------------------------------------------------------


def _cloudformation(built: Built) -> str:
    document = to_document(built.policy)
    if built.account_id is None:
        # Fn::Sub only on the ARN: elsewhere `${...}` must stay IAM's own syntax.
        document["Statement"][0]["Principal"]["Federated"] = {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/"
            + built.provider_path
        }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"keyless: a role {_display(built.spec)} jobs of one scope can assume. "
        + " ".join(built.notes),
        "Resources": {
            "KeylessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": document},
            }
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["KeylessRole", "Arn"]}}},
    }
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"
