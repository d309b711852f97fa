"""What AWS does and moto 5.2 does not, added to moto inside the local stack's child process.

`keyless provision` adds an audience to an existing OIDC provider with
``AddClientIDToOpenIDConnectProvider`` (IAM API reference), as one must on AWS; without it, the
local stack could not exercise that path. ``keyless deploy --delete`` deletes with S3
``DeleteObjects``, which AWS authorizes as ``s3:DeleteObject`` on each key; moto asks for it on the
bucket, which a role limited to one prefix never has. moto authorizes every CloudFront action on
the resource ``*``, so a role allowed to invalidate one distribution (``provision
--cloudfront-distribution``: AWS' resource ``arn:aws:cloudfront::ACCOUNT:distribution/ID``) would
be refused; the distribution's ARN is given to moto instead. Imported only by the moto child
process.
"""

from __future__ import annotations

import re
from typing import Any, Final

from keyless.limits import (
    IAM_OIDC_MAX_CLIENT_IDS,
)

#: The CloudFront API paths of one distribution's operations: /2020-05-31/distribution/ID[/...].
_DISTRIBUTION_PATH: Final = re.compile(r"^/\d{4}-\d{2}-\d{2}/distribution/([A-Za-z0-9]+)(?:/|$)")


def install() -> None:
    """Teach moto the missing operations and AWS' authorization of DeleteObjects (idempotent)."""
    _install_iam()
    _install_delete_objects()
    _install_cloudfront_resources()


def _install_iam() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.iam.exceptions import LimitExceededException
    from moto.iam.responses import IamResponse

    if hasattr(IamResponse, "add_client_id_to_open_id_connect_provider"):
        return

    def add_client_id(self: Any) -> ActionResult:
        provider = self.backend.get_open_id_connect_provider(
            self._get_param("OpenIDConnectProviderArn")
        )
        client_id = self._get_param("ClientID")
        # AWS: adding an ID that is already registered succeeds and changes nothing.
        if client_id not in provider.client_id_list:
            if len(provider.client_id_list) >= IAM_OIDC_MAX_CLIENT_IDS:
                raise LimitExceededException(
                    "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider:"
                    f" {IAM_OIDC_MAX_CLIENT_IDS}"
                )
            provider.client_id_list.append(client_id)
        result: ActionResult = EmptyResult()
        return result

    def remove_client_id(self: Any) -> ActionResult:
        provider = self.backend.get_open_id_connect_provider(
            self._get_param("OpenIDConnectProviderArn")
        )
        client_id = self._get_param("ClientID")
        # AWS: removing an ID that is not registered succeeds and changes nothing.
        if client_id in provider.client_id_list:
            provider.client_id_list.remove(client_id)
        result: ActionResult = EmptyResult()
        return result

    # moto dispatches an Action to the responder method of the same name in snake_case.
    additions = {
        "add_client_id_to_open_id_connect_provider": add_client_id,
        "remove_client_id_from_open_id_connect_provider": remove_client_id,
    }
    for name, method in additions.items():
        setattr(IamResponse, name, method)


def _install_delete_objects() -> None:
    # moto's own XML reader (it ships no type information).
    import xmltodict  # type: ignore[import-untyped]
    from moto.core.responses import ActionResult
    from moto.iam.access_control import PermissionResult
    from moto.s3.exceptions import S3AccessDeniedError
    from moto.s3.responses import S3Response

    original = S3Response._bucket_response_post
    if getattr(original, "keyless_per_key", False):
        return

    def bucket_post(self: Any, request: Any, bucket_name: str) -> Any:
        if not request.headers.get("Content-Length"):
            return original(self, request, bucket_name)
        self.path = self._get_path(request)
        if not self.is_delete_keys():
            return original(self, request, bucket_name)
        objects = xmltodict.parse(self.body, strip_whitespace=False)["Delete"].get("Object", [])
        objects = objects if isinstance(objects, list) else [objects]
        if not objects:
            return original(self, request, bucket_name)  # moto answers MalformedXML
        # S3 API reference, DeleteObjects: "you must have the s3:DeleteObject permission" for
        # each object; a denied key is an error entry, the others are deleted.
        self.data["Action"] = "DeleteObject"
        bucket = self.backend.get_bucket(bucket_name)
        allowed, errors = [], []
        for item in objects:
            key = item["Key"]
            try:
                self._authenticate_and_authorize_s3_action(bucket_name=bucket_name, key_name=key)
            except S3AccessDeniedError:
                errors.append((key, "AccessDenied", "Access Denied"))
                continue
            arn = f"arn:aws:s3:::{bucket_name}/{key}"
            if bucket.get_permission("s3:DeleteObject", arn) == PermissionResult.DENIED:
                errors.append((key, "AccessDenied", "Access Denied"))
            else:
                allowed.append(item)
        bypass = self.headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
        deleted, locked = self.backend.delete_objects(bucket_name, allowed, bypass)
        errors.extend(
            (key, "AccessDenied", "Access Denied because object protected by object lock.")
            for key in locked
        )
        self.data["Action"] = "DeleteObjects"
        return self.serialized(
            ActionResult(
                {
                    "Deleted": [
                        {
                            "Key": key,
                            "VersionId": version or None,
                            "DeleteMarkerVersionId": marker or None,
                            "DeleteMarker": True if marker else None,
                        }
                        for key, version, marker in deleted
                    ],
                    "Errors": [
                        {"Key": key, "Code": code, "Message": message}
                        for key, code, message in errors
                    ],
                }
            )
        )

    bucket_post.keyless_per_key = True  # type: ignore[attr-defined]
    S3Response._bucket_response_post = bucket_post  # type: ignore[method-assign]


def _install_cloudfront_resources() -> None:
    from moto.cloudfront.responses import CloudFrontResponse

    if hasattr(CloudFrontResponse, "_determine_resource"):
        return

    def determine_resource(self: Any) -> str:
        # CloudFront's service authorization reference: distribution actions take the resource
        # arn:${Partition}:cloudfront::${Account}:distribution/${DistributionId}.
        match = _DISTRIBUTION_PATH.match(self.path)
        if match is None:
            return "*"
        return f"arn:{self.partition}:cloudfront::{self.current_account}:distribution/{match[1]}"

    CloudFrontResponse._determine_resource = determine_resource  # type: ignore[attr-defined]
