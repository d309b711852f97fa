"""moto as a child process: bootstrapped administrator, IAM authentication on, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from keyless.local.moto_server import (
    DEFAULT_ACCOUNT_ID,
    AdminCredentials,
    LocalStackError,
    MotoEndpoint,
    MotoServer,
    admit,
    isolated_session,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, MotoEndpoint]]:
    server = MotoServer()
    with server as endpoint:
        yield server, endpoint


def test_listens_on_loopback_with_an_administrator(moto: tuple[MotoServer, MotoEndpoint]) -> None:
    _, endpoint = moto
    assert endpoint.url.startswith("http://127.0.0.1:")
    assert endpoint.account_id == DEFAULT_ACCOUNT_ID
    assert endpoint.admin_arn == f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/keyless-local-admin"
    session = isolated_session(
        region=endpoint.region,
        access_key_id=endpoint.admin.access_key_id,
        secret_access_key=endpoint.admin.secret_access_key,
    )
    s3 = admit(session.client("s3", endpoint_url=endpoint.url), endpoint.gate_secret)
    s3.create_bucket(Bucket="admin-made")
    assert "admin-made" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_unknown_keys_are_refused(moto: tuple[MotoServer, MotoEndpoint]) -> None:
    _, endpoint = moto
    session = isolated_session(
        region=endpoint.region, access_key_id="AKIANOTAKEY000000000", secret_access_key="x"
    )
    with pytest.raises(ClientError) as caught:
        admit(session.client("s3", endpoint_url=endpoint.url), endpoint.gate_secret).list_buckets()
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_the_secret_key_stays_out_of_repr(moto: tuple[MotoServer, MotoEndpoint]) -> None:
    _, endpoint = moto
    assert endpoint.admin.secret_access_key not in repr(endpoint)
    assert endpoint.gate_secret not in repr(endpoint)
    assert "secret" not in repr(AdminCredentials(access_key_id="AKIA", secret_access_key="s"))


def test_stop_ends_the_child_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    server = MotoServer()
    with server:
        pid = server.pid
        assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert set(threading.enumerate()) == before
    with pytest.raises(LocalStackError):
        _ = server.endpoint


def test_a_missing_python_is_reported() -> None:
    with (
        pytest.raises(LocalStackError, match="cannot start moto"),
        MotoServer(python="/nonexistent/python"),
    ):
        pass


def test_client_ids_can_be_added_to_and_removed_from_a_provider(
    moto: tuple[MotoServer, MotoEndpoint],
) -> None:
    _, endpoint = moto
    iam = admit(
        isolated_session(
            region=endpoint.region,
            access_key_id=endpoint.admin.access_key_id,
            secret_access_key=endpoint.admin.secret_access_key,
        ).client("iam", endpoint_url=endpoint.url),
        endpoint.gate_secret,
    )
    arn = iam.create_open_id_connect_provider(
        Url="https://issuer.example/client-ids", ClientIDList=["first"], ThumbprintList=["a" * 40]
    )["OpenIDConnectProviderArn"]
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="second")
    # Adding an ID that is already there changes nothing, as on AWS.
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="second")
    listed = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"]
    assert listed == ["first", "second"]
    iam.remove_client_id_from_open_id_connect_provider(
        OpenIDConnectProviderArn=arn, ClientID="first"
    )
    listed = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"]
    assert listed == ["second"]
    with pytest.raises(ClientError) as missing:
        iam.add_client_id_to_open_id_connect_provider(
            OpenIDConnectProviderArn=arn.replace("client-ids", "nope"), ClientID="x"
        )
    assert missing.value.response["Error"]["Code"] == "NoSuchEntity"


#: Run in another process: plain urllib against moto's own port, as any local program could.
_BYPASS = r"""
import json, sys, urllib.error, urllib.request
url, wrong = sys.argv[1], sys.argv[2]
attempts = [
    ("GET", "/moto-api/data.json", {}),
    ("POST", "/moto-api/reset-auth", {}),
    ("POST", "/moto-api/reset-auth", {"X-Keyless-Moto-Gate": wrong}),
    ("POST", "/moto-api/reset-auth", {"X_Keyless_Moto_Gate": wrong}),
    ("POST", "/moto-api/reset", {}),
    ("GET", "/", {}),
]
results = []
for method, path, headers in attempts:
    headers = {"Content-Type": "text/plain", **headers}
    request = urllib.request.Request(url + path, data=b"0" if method == "POST" else None,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            results.append([path, response.status, response.read().decode("latin-1")])
    except urllib.error.HTTPError as exc:
        results.append([path, exc.code, exc.read().decode("latin-1")])
print(json.dumps(results))
"""


def test_motos_own_port_refuses_other_processes(moto: tuple[MotoServer, MotoEndpoint]) -> None:
    _, endpoint = moto
    run = subprocess.run(  # noqa: S603 - fixed argv, no secret in it
        [sys.executable, "-c", _BYPASS, endpoint.url, "not-the-secret"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(run.stdout)
    assert [status for _, status, _ in results] == [403] * 6, results
    for _, _, body in results:
        assert endpoint.admin.secret_access_key not in body
        assert endpoint.admin.access_key_id not in body
    # reset-auth did nothing: IAM authentication is still on behind the gate.
    unknown = isolated_session(
        region=endpoint.region, access_key_id="AKIANOTAKEY000000000", secret_access_key="x"
    )
    with pytest.raises(ClientError) as caught:
        admit(
            unknown.client("sts", endpoint_url=endpoint.url), endpoint.gate_secret
        ).get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"
