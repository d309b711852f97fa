"""IAM operations AWS has and moto 5.2 lacks, added to moto inside the local stack's child process.

`keyless provision` adds an audience to an existing OIDC provider with
``AddClientIDToOpenIDConnectProvider`` (IAM API reference), as one must on AWS; without it, the
local stack could not exercise that path. Imported only by the moto child process.
"""

from __future__ import annotations

from typing import Any

#: IAM allows at most this many client IDs on one provider (CreateOpenIDConnectProvider).
MAX_CLIENT_IDS = 100


def install() -> None:
    """Teach moto's IAM responder the missing operations (idempotent)."""
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
            if len(provider.client_id_list) >= MAX_CLIENT_IDS:
                raise LimitExceededException(
                    f"Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"
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
