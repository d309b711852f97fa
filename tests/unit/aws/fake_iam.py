"""An in-memory IAM with the calls ``keyless.aws.provision`` makes; records every write call and
fails the ones a test names, with IAM's error codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

ACCOUNT = "123456789012"


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or f"{code} on {operation}"}}, operation
    )


@dataclass
class _Paginator:
    pages: list[dict[str, Any]]

    def paginate(self, **_: Any) -> Iterator[dict[str, Any]]:
        return iter(self.pages)


@dataclass
class FakeIam:
    providers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Write calls made, as boto3 method names, in order.
    writes: list[str] = field(default_factory=list)
    #: method -> list of errors to raise on its next calls (popped one per call).
    failures: dict[str, list[ClientError]] = field(default_factory=dict)

    @property
    def client(self) -> IAMClient:
        return cast("IAMClient", self)

    def _write(self, method: str) -> None:
        queued = self.failures.get(method)
        if queued:
            raise queued.pop(0)
        self.writes.append(method)

    # --- reads -----------------------------------------------------------------------------------

    def get_open_id_connect_provider(self, *, OpenIDConnectProviderArn: str) -> dict[str, Any]:
        provider = self.providers.get(OpenIDConnectProviderArn)
        if provider is None:
            raise client_error("NoSuchEntity", "GetOpenIDConnectProvider")
        return {key: list(value) for key, value in provider.items()}

    def get_role(self, *, RoleName: str) -> dict[str, Any]:
        failure = self.failures.get("get_role")
        if failure:
            raise failure.pop(0)
        role = self.roles.get(RoleName)
        if role is None:
            raise client_error("NoSuchEntity", "GetRole")
        shown = {
            "Arn": role["Arn"],
            "AssumeRolePolicyDocument": role["trust"],
            "MaxSessionDuration": role["MaxSessionDuration"],
            "Tags": [{"Key": k, "Value": v} for k, v in role["Tags"].items()],
        }
        if role.get("boundary"):
            shown["PermissionsBoundary"] = {"PermissionsBoundaryArn": role["boundary"]}
        return {"Role": shown}

    def get_paginator(self, name: str) -> _Paginator:
        if name == "list_role_policies":
            return _Paginator([{"PolicyNames": list(r["policies"])} for r in self._one_role()])
        if name == "list_attached_role_policies":
            return _Paginator(
                [
                    {"AttachedPolicies": [{"PolicyArn": arn} for arn in r["attached"]]}
                    for r in self._one_role()
                ]
            )
        raise AssertionError(name)

    def _one_role(self) -> list[dict[str, Any]]:
        # provision reads one role per run; the fake serves the only one it has
        return list(self.roles.values())[:1]

    def get_role_policy(self, *, RoleName: str, PolicyName: str) -> dict[str, Any]:
        # IAM returns it URL-encoded; botocore decodes it to a dict, which is what this returns.
        return {"PolicyDocument": self.roles[RoleName]["policies"][PolicyName]}

    # --- writes ----------------------------------------------------------------------------------

    def create_open_id_connect_provider(
        self, *, Url: str, ClientIDList: list[str], ThumbprintList: list[str] | None = None
    ) -> dict[str, Any]:
        self._write("create_open_id_connect_provider")
        arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{Url.removeprefix('https://')}"
        if arn in self.providers:
            raise client_error("EntityAlreadyExists", "CreateOpenIDConnectProvider")
        self.providers[arn] = {
            "ClientIDList": list(ClientIDList),
            "ThumbprintList": list(ThumbprintList or []),
        }
        return {"OpenIDConnectProviderArn": arn}

    def add_client_id_to_open_id_connect_provider(
        self, *, OpenIDConnectProviderArn: str, ClientID: str
    ) -> None:
        self._write("add_client_id_to_open_id_connect_provider")
        self.providers[OpenIDConnectProviderArn]["ClientIDList"].append(ClientID)

    def update_open_id_connect_provider_thumbprint(
        self, *, OpenIDConnectProviderArn: str, ThumbprintList: list[str]
    ) -> None:
        self._write("update_open_id_connect_provider_thumbprint")
        self.providers[OpenIDConnectProviderArn]["ThumbprintList"] = list(ThumbprintList)

    def create_role(
        self,
        *,
        RoleName: str,
        AssumeRolePolicyDocument: str,
        Description: str = "",
        MaxSessionDuration: int = 3600,
        PermissionsBoundary: str | None = None,
        Tags: list[dict[str, str]] | None = None,
    ) -> None:
        self._write("create_role")
        self.roles[RoleName] = {
            "Arn": f"arn:aws:iam::{ACCOUNT}:role/{RoleName}",
            "trust": json.loads(AssumeRolePolicyDocument),
            "MaxSessionDuration": MaxSessionDuration,
            "boundary": PermissionsBoundary,
            "Tags": {t["Key"]: t["Value"] for t in Tags or []},
            "policies": {},
            "attached": [],
        }

    def update_assume_role_policy(self, *, RoleName: str, PolicyDocument: str) -> None:
        self._write("update_assume_role_policy")
        self.roles[RoleName]["trust"] = json.loads(PolicyDocument)

    def update_role(self, *, RoleName: str, MaxSessionDuration: int) -> None:
        self._write("update_role")
        self.roles[RoleName]["MaxSessionDuration"] = MaxSessionDuration

    def put_role_permissions_boundary(self, *, RoleName: str, PermissionsBoundary: str) -> None:
        self._write("put_role_permissions_boundary")
        self.roles[RoleName]["boundary"] = PermissionsBoundary

    def tag_role(self, *, RoleName: str, Tags: list[dict[str, str]]) -> None:
        self._write("tag_role")
        self.roles[RoleName]["Tags"].update({t["Key"]: t["Value"] for t in Tags})

    def put_role_policy(self, *, RoleName: str, PolicyName: str, PolicyDocument: str) -> None:
        self._write("put_role_policy")
        self.roles[RoleName]["policies"][PolicyName] = json.loads(PolicyDocument)
