"""``keyless provision --emit``: the provider, role, trust and permissions of a ``Desired`` state as
Terraform (HCL) or a CloudFormation template (YAML), with exactly the documents ``apply`` writes.

Account-specific values (role name, whether the provider already exists, thumbprints, session
length, boundary, tags) are variables or parameters whose defaults are what ``provision`` would
use; the account ID and partition come from the deploying account itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from keyless.compat import StrEnum
from keyless.trust.hcl import Raw, hcl_string, hcl_value
from keyless.trust.model import to_document
from keyless.trust.web_identity import issuer_prefix

if TYPE_CHECKING:
    from keyless.aws.provision_state import Desired

__all__ = [
    "ACCOUNT_TOKEN",
    "PARTITION_TOKEN",
    "EmitFormat",
    "emit",
    "template_desired",
]

#: Stand for the deploying account's ID and partition in documents built for a template; the
#: emitters turn them into ``data.aws_caller_identity`` / ``${AWS::AccountId}`` references.
ACCOUNT_TOKEN = "<<keyless:account-id>>"  # noqa: S105 - a placeholder, not a secret
PARTITION_TOKEN = "<<keyless:partition>>"  # noqa: S105 - a placeholder, not a secret

_TOKENS = re.compile(re.escape(ACCOUNT_TOKEN) + "|" + re.escape(PARTITION_TOKEN))


class EmitFormat(StrEnum):
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"


def template_desired(desired: Desired) -> Desired:
    """``desired`` for no account in particular (its documents must be built with the tokens)."""
    return replace(desired, account_id=ACCOUNT_TOKEN, partition=PARTITION_TOKEN)


def emit(desired: Desired, output: EmitFormat, *, notes: tuple[str, ...] = ()) -> str:
    """The template text. ``desired`` must come from ``template_desired`` (tokens for the
    account and partition), so that every ARN refers to the account the template is deployed in.
    """
    if output is EmitFormat.TERRAFORM:
        return _terraform(desired, notes)
    return _cloudformation(desired, notes)


def _with_principal(document: dict[str, Any], provider_arn: str, reference: object) -> None:
    # The trust names the provider by ARN; in a template it is a reference to the provider
    # resource (or the existing provider), which also orders creation.
    for statement in document["Statement"]:
        federated = statement.get("Principal", {}).get("Federated")
        if federated == provider_arn:
            statement["Principal"]["Federated"] = reference


# --- Terraform -----------------------------------------------------------------------------------

_TF_PARTITION = "${data.aws_partition.current.partition}"
_TF_ACCOUNT = "${data.aws_caller_identity.current.account_id}"


def _tf_tokens(value: Any) -> Any:
    """Strings holding the account or partition tokens as HCL template expressions."""
    if isinstance(value, str) and _TOKENS.search(value):
        parts = _TOKENS.split(value)
        found = _TOKENS.findall(value)
        text = hcl_string(parts[0])[:-1]
        for token, part in zip(found, parts[1:], strict=True):
            text += _TF_ACCOUNT if token == ACCOUNT_TOKEN else _TF_PARTITION
            text += hcl_string(part)[1:-1]
        return Raw(text + '"')
    if isinstance(value, Mapping):
        return {key: _tf_tokens(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tf_tokens(item) for item in value]
    return value


def _tf_variable(name: str, kind: str, default: Any, description: str) -> list[str]:
    return [
        f'variable "{name}" {{',
        f"  description = {hcl_string(description)}",
        f"  type        = {kind}",
        f"  default     = {hcl_value(default, 1) if default is not None else 'null'}",
        "}",
        "",
    ]


def _terraform(desired: Desired, notes: tuple[str, ...]) -> str:
    from keyless.limits import IAM_ROLE_DEFAULT_SESSION_SECONDS

    issuer = desired.issuer
    trust = to_document(desired.trust)
    _with_principal(trust, desired.provider_arn, Raw("local.oidc_provider_arn"))
    permissions = _tf_tokens(to_document(desired.permissions))
    lines = [
        "# keyless provision --emit terraform: the OIDC provider, the role and its permissions.",
        *(f"# {note}" for note in notes),
        "",
        "terraform {",
        "  required_providers {",
        "    aws = {",
        '      source  = "hashicorp/aws"',
        # thumbprint_list is optional from 5.81.0 on (hashicorp/terraform-provider-aws#37255);
        # earlier releases require it, and the template leaves it out unless one is given.
        '      version = ">= 5.81.0"',
        "    }",
        "  }",
        "}",
        "",
    ]
    lines += _tf_variable("role_name", "string", desired.role_name, "Name of the IAM role.")
    lines += _tf_variable(
        "create_oidc_provider",
        "bool",
        Raw("true"),
        f"Create the OIDC provider for {issuer}. Set false when the account already has it (IAM"
        f" allows one per issuer URL); it must then accept {', '.join(desired.client_ids)}.",
    )
    lines += _tf_variable(
        "oidc_client_ids",
        "list(string)",
        list(desired.client_ids),
        "Audiences the new OIDC provider accepts.",
    )
    lines += _tf_variable(
        "oidc_thumbprints",
        "list(string)",
        list(desired.thumbprints) if desired.thumbprints else None,
        "SHA-1 of the top certificate the issuer's key host presents (IAM uses them only for"
        " issuers whose certificate is not from a CA AWS trusts); null: IAM retrieves it.",
    )
    lines += _tf_variable(
        "max_session_duration",
        "number",
        Raw(str(desired.max_session_duration or IAM_ROLE_DEFAULT_SESSION_SECONDS)),
        "Longest session of the role, in seconds (3600-43200).",
    )
    lines += _tf_variable(
        "permissions_boundary",
        "string",
        desired.permissions_boundary,
        "ARN of a managed policy that bounds the role's permissions, or null.",
    )
    lines += _tf_variable("tags", "map(string)", dict(desired.tags), "Tags of the role.")
    lines += [
        'data "aws_partition" "current" {}',
        "",
        'data "aws_caller_identity" "current" {}',
        "",
        'resource "aws_iam_openid_connect_provider" "this" {',
        "  count           = var.create_oidc_provider ? 1 : 0",
        f"  url             = {hcl_string(issuer)}",
        "  client_id_list  = var.oidc_client_ids",
        "  thumbprint_list = var.oidc_thumbprints",
        "}",
        "",
        'data "aws_iam_openid_connect_provider" "existing" {',
        "  count = var.create_oidc_provider ? 0 : 1",
        f"  url   = {hcl_string(issuer)}",
        "}",
        "",
        "locals {",
        "  oidc_provider_arn = (var.create_oidc_provider",
        "    ? aws_iam_openid_connect_provider.this[0].arn",
        "  : data.aws_iam_openid_connect_provider.existing[0].arn)",
        f"  trust_policy = {hcl_value(trust, 1)}",
        f"  permissions_policy = {hcl_value(permissions, 1)}",
        "}",
        "",
        'resource "aws_iam_role" "this" {',
        "  name                 = var.role_name",
        f"  description          = {hcl_string(desired.description)}",
        "  assume_role_policy   = jsonencode(local.trust_policy)",
        "  max_session_duration = var.max_session_duration",
        "  permissions_boundary = var.permissions_boundary",
        "  tags                 = var.tags",
        "}",
        "",
        'resource "aws_iam_role_policy" "permissions" {',
        f"  name   = {hcl_string(desired.policy_name)}",
        "  role   = aws_iam_role.this.id",
        "  policy = jsonencode(local.permissions_policy)",
        "}",
        "",
        'output "role_arn" {',
        '  description = "ARN of the role; give it to the CI job (keyless assume --role-arn)."',
        "  value       = aws_iam_role.this.arn",
        "}",
        "",
        'output "oidc_provider_arn" {',
        "  value = local.oidc_provider_arn",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- CloudFormation ------------------------------------------------------------------------------


def _cfn_sub_literal(text: str) -> str:
    # Inside Fn::Sub, `${` starts a substitution; `${!` writes a literal `${` (IAM's own escapes
    # and policy variables stay intact).
    return text.replace("${", "${!")


def _cfn_tokens(value: Any) -> Any:
    if isinstance(value, str) and _TOKENS.search(value):
        parts = _TOKENS.split(value)
        found = _TOKENS.findall(value)
        text = _cfn_sub_literal(parts[0])
        for token, part in zip(found, parts[1:], strict=True):
            text += "${AWS::AccountId}" if token == ACCOUNT_TOKEN else "${AWS::Partition}"
            text += _cfn_sub_literal(part)
        return {"Fn::Sub": text}
    if isinstance(value, Mapping):
        return {key: _cfn_tokens(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cfn_tokens(item) for item in value]
    return value


def _cloudformation(desired: Desired, notes: tuple[str, ...]) -> str:
    from keyless.limits import IAM_ROLE_DEFAULT_SESSION_SECONDS

    provider_ref = {
        "Fn::If": [
            "CreateProvider",
            {"Ref": "OidcProvider"},
            {
                "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/"
                + _cfn_sub_literal(issuer_prefix(desired.issuer))
            },
        ]
    }
    trust = to_document(desired.trust)
    _with_principal(trust, desired.provider_arn, provider_ref)
    role: dict[str, Any] = {
        "RoleName": {"Ref": "RoleName"},
        "Description": desired.description,
        "AssumeRolePolicyDocument": trust,
        "MaxSessionDuration": {"Ref": "MaxSessionDuration"},
        "PermissionsBoundary": {
            "Fn::If": [
                "HasPermissionsBoundary",
                {"Ref": "PermissionsBoundary"},
                {"Ref": "AWS::NoValue"},
            ]
        },
        "Policies": [
            {
                "PolicyName": desired.policy_name,
                "PolicyDocument": _cfn_tokens(to_document(desired.permissions)),
            }
        ],
    }
    if desired.tags:
        role["Tags"] = [{"Key": key, "Value": value} for key, value in desired.tags]
    provider: dict[str, Any] = {"Url": desired.issuer, "ClientIdList": list(desired.client_ids)}
    parameters: dict[str, Any] = {
        "RoleName": {
            "Type": "String",
            "Default": desired.role_name,
            "Description": "Name of the IAM role.",
        },
        "CreateOidcProvider": {
            "Type": "String",
            "AllowedValues": ["true", "false"],
            "Default": "true",
            "Description": f"Create the OIDC provider for {desired.issuer}; false when the"
            " account already has it (IAM allows one per issuer URL). It must then accept "
            + ", ".join(desired.client_ids)
            + ".",
        },
    }
    if desired.thumbprints:
        parameters["OidcThumbprints"] = {
            "Type": "CommaDelimitedList",
            "Default": ",".join(desired.thumbprints),
            "Description": "SHA-1 of the top certificate the issuer's key host presents.",
        }
        provider["ThumbprintList"] = {"Ref": "OidcThumbprints"}
    parameters["MaxSessionDuration"] = {
        "Type": "Number",
        "Default": desired.max_session_duration or IAM_ROLE_DEFAULT_SESSION_SECONDS,
        "MinValue": 3600,
        "MaxValue": 43200,
        "Description": "Longest session of the role, in seconds.",
    }
    parameters["PermissionsBoundary"] = {
        "Type": "String",
        "Default": desired.permissions_boundary or "",
        "Description": "ARN of a managed policy that bounds the role's permissions (empty: none).",
    }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "keyless provision --emit cloudformation: the OIDC provider, the role and"
        " its permissions. " + " ".join(notes),
        "Parameters": parameters,
        "Conditions": {
            "CreateProvider": {"Fn::Equals": [{"Ref": "CreateOidcProvider"}, "true"]},
            "HasPermissionsBoundary": {
                "Fn::Not": [{"Fn::Equals": [{"Ref": "PermissionsBoundary"}, ""]}]
            },
        },
        "Resources": {
            "OidcProvider": {
                "Type": "AWS::IAM::OIDCProvider",
                "Condition": "CreateProvider",
                "Properties": provider,
            },
            "Role": {"Type": "AWS::IAM::Role", "Properties": role},
        },
        "Outputs": {
            "RoleArn": {
                "Description": "ARN of the role; give it to the CI job.",
                "Value": {"Fn::GetAtt": ["Role", "Arn"]},
            },
            "OidcProviderArn": {"Value": provider_ref},
        },
    }
    return "\n".join(_yaml(template, 0)) + "\n"


# --- a small YAML writer: block style, every string double-quoted (JSON's escapes are YAML's) ----

_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*(::[A-Za-z0-9]+)*")


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return json.dumps(str(value))


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _yaml_key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)


def _yaml(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{_yaml_key(key)}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_key(key)}: {_yaml_scalar(item)}")
        return lines
    for item in value:
        if _is_block(item):
            nested = _yaml(item, indent + 2)
            nested[0] = f"{pad}- {nested[0].lstrip()}"
            lines.extend(nested)
        else:
            lines.append(f"{pad}- {_yaml_scalar(item)}")
    return lines
