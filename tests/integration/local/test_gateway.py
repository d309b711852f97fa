"""boto3 against the local stack: the web identity exchange as STS does it, scoped credentials,
STS's refusals, the relay of signed requests, and the closed control API."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from keyless.local.sts import STS_NAMESPACE
from tests.integration.local.conftest import (
    AUDIENCE,
    BUCKET,
    OTHER_BUCKET,
    OTHER_SUBJECT,
    ROLE_NAME,
    SUBJECT,
    Scenario,
)
from tests.jwt_factory import make_token

if TYPE_CHECKING:
    from mypy_boto3_sts.type_defs import AssumeRoleWithWebIdentityResponseTypeDef

pytestmark = pytest.mark.integration


def exchange(
    scenario: Scenario, token: str, *, session_name: str = "gha-run-1", duration: int = 3600
) -> AssumeRoleWithWebIdentityResponseTypeDef:
    return scenario.stack.sts().assume_role_with_web_identity(
        RoleArn=scenario.role_arn,
        RoleSessionName=session_name,
        WebIdentityToken=token,
        DurationSeconds=duration,
    )


def refused(
    scenario: Scenario, token: str, *, session_name: str = "gha-run-1", duration: int = 3600
) -> tuple[int, str, str]:
    """HTTP status, error code and message of a refused exchange."""
    with pytest.raises(ClientError) as caught:
        exchange(scenario, token, session_name=session_name, duration=duration)
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def raw(
    scenario: Scenario,
    method: str,
    target: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    parts = urlsplit(scenario.stack.endpoint_url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the exchange ---------------------------------------------------------------------------------


def test_a_valid_token_gets_credentials_of_the_role(scenario: Scenario) -> None:
    response = exchange(scenario, scenario.token())
    assert response["SubjectFromWebIdentityToken"] == SUBJECT
    assert response["Provider"] == scenario.provider_arn
    assert response["Audience"] == AUDIENCE
    account = scenario.stack.account_id
    assumed = f"arn:aws:sts::{account}:assumed-role/{ROLE_NAME}/gha-run-1"
    assert response["AssumedRoleUser"]["Arn"] == assumed
    assert response["Credentials"]["AccessKeyId"].startswith("ASIA")

    credentials = response["Credentials"]
    sts = scenario.stack.session(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    ).client("sts", endpoint_url=scenario.stack.endpoint_url)
    assert sts.get_caller_identity()["Arn"] == assumed


def test_credentials_can_do_what_the_role_allows_and_nothing_else(scenario: Scenario) -> None:
    credentials = exchange(scenario, scenario.token())["Credentials"]
    session = scenario.stack.session(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )
    s3 = session.client("s3", endpoint_url=scenario.stack.endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="index.html", Body=b"<h1>hi</h1>")
    assert s3.get_object(Bucket=BUCKET, Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    iam = session.client("iam", endpoint_url=scenario.stack.endpoint_url)
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=OTHER_BUCKET, Key="x", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as caught:
        s3.delete_bucket(Bucket=OTHER_BUCKET)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as caught:
        iam.list_users()
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_a_multipart_upload_streams_through_the_gateway(scenario: Scenario) -> None:
    credentials = exchange(scenario, scenario.token())["Credentials"]
    s3 = scenario.stack.session(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    ).client("s3", endpoint_url=scenario.stack.endpoint_url)
    data = hashlib.sha256(b"seed").digest() * (9 * 1024 * 1024 // 32)  # 9 MiB: multipart
    s3.upload_fileobj(io.BytesIO(data), BUCKET, "big.bin")
    assert s3.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() == data


def test_the_requested_duration_is_honoured(scenario: Scenario) -> None:
    before = time.time()
    expiration = exchange(scenario, scenario.token(), duration=900)["Credentials"]["Expiration"]
    assert 850 <= expiration.timestamp() - before <= 960


def test_a_change_to_iam_holds_from_the_next_exchange(scenario: Scenario) -> None:
    # The gateway keeps the role and provider it read; a change through it must still show.
    iam = scenario.stack.iam()
    trust = iam.get_role(RoleName=ROLE_NAME)["Role"]["AssumeRolePolicyDocument"]
    exchange(scenario, scenario.token())
    narrowed = json.loads(json.dumps(trust).replace(SUBJECT, OTHER_SUBJECT))
    iam.update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=json.dumps(narrowed))
    try:
        assert refused(scenario, scenario.token())[1] == "AccessDenied"
        exchange(scenario, scenario.token(subject=OTHER_SUBJECT))
    finally:
        iam.update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=json.dumps(trust))
    exchange(scenario, scenario.token())
    iam.remove_client_id_from_open_id_connect_provider(
        OpenIDConnectProviderArn=scenario.provider_arn, ClientID=AUDIENCE
    )
    try:
        assert refused(scenario, scenario.token())[1] == "InvalidIdentityToken"
    finally:
        iam.add_client_id_to_open_id_connect_provider(
            OpenIDConnectProviderArn=scenario.provider_arn, ClientID=AUDIENCE
        )
    exchange(scenario, scenario.token())


# --- refusals -----------------------------------------------------------------------------------


def test_a_token_from_another_repository_is_access_denied(scenario: Scenario) -> None:
    status, code, message = refused(scenario, scenario.token(subject=OTHER_SUBJECT))
    assert (status, code, message) == (
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )


def test_a_forged_signature_is_an_invalid_identity_token(scenario: Scenario) -> None:
    kid = scenario.stack.issuer.active_kid(scenario.issuer)
    forged = make_token({"sub": SUBJECT}, issuer=scenario.issuer, subject=SUBJECT, kid=kid)
    assert refused(scenario, forged) == (400, "InvalidIdentityToken", "Signature validation failed")


def test_alg_none_is_an_invalid_identity_token(scenario: Scenario) -> None:
    unsigned = scenario.stack.mint(
        {"sub": SUBJECT, "aud": AUDIENCE}, issuer=scenario.issuer, headers={"alg": "none"}
    )
    header, payload, _ = unsigned.split(".")
    status, code, _ = refused(scenario, f"{header}.{payload}.")
    assert (status, code) == (400, "InvalidIdentityToken")


def test_an_hmac_token_is_refused(scenario: Scenario) -> None:
    claims = {"iss": scenario.issuer, "sub": SUBJECT, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    confused = jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    assert refused(scenario, confused)[:2] == (400, "InvalidIdentityToken")


def test_an_expired_token_is_an_expired_token_exception(scenario: Scenario) -> None:
    now = int(time.time())
    expired = scenario.token(iat=now - 4000, nbf=now - 4000, exp=now - 3700)
    status, code, message = refused(scenario, expired)
    assert (status, code) == (400, "ExpiredTokenException")
    assert message.startswith("Token expired: current date/time ")
    assert message.endswith(f"must be before the expiration date/time {now - 3700}")


def test_a_wrong_audience_is_an_invalid_identity_token(scenario: Scenario) -> None:
    wrong = scenario.token(aud="https://example.com/not-sts")
    assert refused(scenario, wrong) == (400, "InvalidIdentityToken", "Incorrect token audience")


def test_an_unregistered_issuer_is_an_invalid_identity_token(scenario: Scenario) -> None:
    stranger = scenario.stack.mint(
        {"sub": SUBJECT, "aud": AUDIENCE}, issuer=scenario.unregistered_issuer
    )
    assert refused(scenario, stranger) == (
        400,
        "InvalidIdentityToken",
        f"No OpenIDConnect provider found in your account for {scenario.unregistered_issuer}",
    )


def test_garbage_is_an_invalid_identity_token(scenario: Scenario) -> None:
    assert refused(scenario, "garbage-that-is-no-jwt") == (
        400,
        "InvalidIdentityToken",
        "Couldn't parse the token",
    )


def test_stss_parameter_rules(scenario: Scenario) -> None:
    status, code, message = refused(scenario, scenario.token(), session_name="has space")
    assert (status, code) == (400, "ValidationError")
    assert "at 'roleSessionName' failed to satisfy constraint" in message
    status, code, message = refused(scenario, scenario.token(), duration=7200)
    assert (status, code) == (400, "ValidationError")
    assert "exceeds the MaxSessionDuration set for this role" in message


def test_an_unreachable_issuer_is_an_idp_communication_error(scenario: Scenario) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    issuer = f"https://127.0.0.1:{port}/gone"
    scenario.stack.register_provider(issuer)
    token = make_token({"sub": SUBJECT}, issuer=issuer, subject=SUBJECT)
    status, code, _ = refused(scenario, token)
    assert (status, code) == (400, "IDPCommunicationError")


def test_errors_are_stss_xml(scenario: Scenario) -> None:
    body = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": scenario.role_arn,
            "RoleSessionName": "raw",
            "WebIdentityToken": scenario.token(subject=OTHER_SUBJECT),
        }
    ).encode()
    status, data = raw(
        scenario, "POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 403
    root = ET.fromstring(data)  # noqa: S314 - our own server's answer
    ns = {"sts": STS_NAMESPACE}
    assert root.tag == f"{{{STS_NAMESPACE}}}ErrorResponse"
    assert root.findtext("sts:Error/sts:Type", namespaces=ns) == "Sender"
    assert root.findtext("sts:Error/sts:Code", namespaces=ns) == "AccessDenied"
    assert root.findtext("sts:Error/sts:Message", namespaces=ns) == (
        "Not authorized to perform sts:AssumeRoleWithWebIdentity"
    )
    assert root.findtext("sts:RequestId", namespaces=ns)


def test_the_exchange_also_works_as_a_get_query(scenario: Scenario) -> None:
    query = urlencode(
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": scenario.role_arn,
            "RoleSessionName": "query",
            "WebIdentityToken": scenario.token(),
        }
    )
    status, data = raw(scenario, "GET", f"/?{query}")
    assert status == 200
    assert b"<SubjectFromWebIdentityToken>" in data


@pytest.mark.parametrize(
    "action", ["AssumeRoleWithSAML", "assume_role_with_web_identity", "ASSUMEROLEWITHWEBIDENTITY"]
)
def test_other_federation_spellings_never_reach_moto(scenario: Scenario, action: str) -> None:
    # Signed by the administrator: moto would mint credentials for any role without a check.
    status, data = signed(
        scenario, {"Action": action, "Version": "2011-06-15", "RoleArn": scenario.role_arn}
    )
    assert status == 400
    assert b"<Code>InvalidAction</Code>" in data


# --- rotation ------------------------------------------------------------------------------------


def test_a_rotated_key_is_picked_up_without_a_restart(scenario: Scenario) -> None:
    issuer = scenario.stack.issuer
    old_token = scenario.token()
    exchange(scenario, old_token)  # the gateway now holds the current JWKS
    old_kid = issuer.active_kid(scenario.issuer)
    new_kid = issuer.rotate(scenario.issuer)
    assert new_kid != old_kid
    new_token = scenario.token()
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert exchange(scenario, new_token)["SubjectFromWebIdentityToken"] == SUBJECT
    # Tokens signed before the rotation stay good until they expire.
    assert exchange(scenario, old_token)["SubjectFromWebIdentityToken"] == SUBJECT


# --- the relay and the control API ---------------------------------------------------------------


def signed(
    scenario: Scenario, form: Mapping[str, str], *, tamper: bool = False
) -> tuple[int, bytes]:
    """A form POST to the gateway signed SigV4 by the administrator for the gateway's host."""
    body = urlencode(form).encode()
    admin = scenario.stack.admin
    request = AWSRequest(
        method="POST",
        url=scenario.stack.endpoint_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    service = "sts" if form.get("Action", "").lower().startswith("assume") else "iam"
    SigV4Auth(
        Credentials(admin.access_key_id, admin.secret_access_key), service, "us-east-1"
    ).add_auth(request)
    if tamper:
        body = body.replace(b"MaxItems=5", b"MaxItems=6")
    headers = {name: str(value) for name, value in request.headers.items()}
    return raw(scenario, "POST", "/", body, headers)


def test_relayed_requests_keep_their_client_signature(scenario: Scenario) -> None:
    form = {"Action": "ListUsers", "Version": "2010-05-08", "MaxItems": "5"}
    status, data = signed(scenario, form)
    assert status == 200
    assert b"keyless-local-admin" in data
    status, data = signed(scenario, form, tamper=True)
    assert status == 403
    assert b"SignatureDoesNotMatch" in data


def test_a_clients_own_gate_header_is_replaced_by_the_gateways(scenario: Scenario) -> None:
    form = {"Action": "ListUsers", "Version": "2010-05-08", "MaxItems": "5"}
    body = urlencode(form).encode()
    admin = scenario.stack.admin
    request = AWSRequest(
        method="POST",
        url=scenario.stack.endpoint_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(
        Credentials(admin.access_key_id, admin.secret_access_key), "iam", "us-east-1"
    ).add_auth(request)
    for spelling in ("X-Keyless-Moto-Gate", "x_keyless_moto_gate"):
        headers = {name: str(value) for name, value in request.headers.items()}
        headers[spelling] = "guessed"
        status, data = raw(scenario, "POST", "/", body, headers)
        assert status == 200, data
        assert b"keyless-local-admin" in data


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/moto-api/"),
        ("POST", "/moto-api/reset-auth"),
        ("POST", "/moto-api/reset"),
        ("POST", "//moto-api/reset-auth"),
        ("POST", "/%6Doto-api/reset-auth"),
        ("GET", "/moto-api/data.json"),
    ],
)
def test_motos_control_api_is_not_reachable(scenario: Scenario, method: str, target: str) -> None:
    status, _ = raw(scenario, method, target, b"0", {"Content-Type": "text/plain"})
    assert status == 403
    # Authentication is still on: an unknown key is refused.
    unknown = scenario.stack.session(access_key_id="AKIAUNKNOWN000000000", secret_access_key="x")
    with pytest.raises(ClientError):
        unknown.client("s3", endpoint_url=scenario.stack.endpoint_url).list_buckets()


def test_the_admin_session_provisions_through_the_gateway(scenario: Scenario) -> None:
    iam = scenario.stack.iam()
    role = iam.get_role(RoleName=ROLE_NAME)["Role"]
    assert role["Arn"] == scenario.role_arn
    document: object = role["AssumeRolePolicyDocument"]  # boto3 decodes it into a dict
    policy = document if isinstance(document, dict) else json.loads(str(document))
    assert policy["Statement"][0]["Principal"]["Federated"] == scenario.provider_arn


def test_stack_handles(scenario: Scenario) -> None:
    stack = scenario.stack
    assert stack.environment() == {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_REGION": stack.region,
    }
    with_admin = stack.environment(admin=True)
    assert with_admin["AWS_ACCESS_KEY_ID"] == stack.admin.access_key_id
    assert stack.admin.secret_access_key not in repr(stack)
    assert stack.endpoint_url.startswith("http://127.0.0.1:")
    assert all(issuer.startswith("https://127.0.0.1:") for issuer in stack.issuers)
    assert stack.ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
    claims = jwt.decode(stack.mint({"sub": "x", "aud": "y"}), options={"verify_signature": False})
    assert claims["iss"] == stack.issuers[0]


def test_odd_requests_get_an_answer_not_a_hang(scenario: Scenario) -> None:
    parts = urlsplit(scenario.stack.endpoint_url)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        # A chunked body elsewhere than "/" is relayed with its framing (moto then refuses the
        # made-up signature).
        connection.putrequest("PUT", f"/{BUCKET}/chunked.txt")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIANOBODY0000000000/20260101/us-east-1/s3/aws4_request,"
            " SignedHeaders=host, Signature=00",
        )
        connection.endheaders()
        connection.send(b"5\r\nhello\r\n0\r\n\r\n")
        response = connection.getresponse()
        assert 400 <= response.status < 500
        response.read()
        # The same connection keeps working for the next request.
        connection.request("GET", "/moto-api/")
        response = connection.getresponse()
        assert response.status == 403
        response.read()
    finally:
        connection.close()
    status, _ = raw(scenario, "POST", "/", b"", {"Transfer-Encoding": "chunked"})
    assert status == 411
    status, _ = raw(scenario, "GET", "http://169.254.169.254/latest/meta-data/")
    assert status == 400


def test_anonymous_requests_are_refused_as_aws_does(scenario: Scenario) -> None:
    status, data = raw(scenario, "PUT", f"/{BUCKET}/anonymous.txt", b"x")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in data
    status, data = raw(
        scenario,
        "POST",
        "/",
        b"Action=ListUsers&Version=2010-05-08",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in data


def test_presigned_urls_are_declared_unsupported(scenario: Scenario) -> None:
    s3 = scenario.stack.admin_session().client("s3", endpoint_url=scenario.stack.endpoint_url)
    s3.put_object(Bucket=BUCKET, Key="shared.txt", Body=b"shared")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "shared.txt"}, ExpiresIn=60
    )
    parts = urlsplit(url)
    status, data = raw(scenario, "GET", f"{parts.path}?{parts.query}")
    assert status == 501
    assert b"<Code>NotImplemented</Code>" in data


def test_the_gateway_logs_decisions_but_never_the_token(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="keyless.local.sts")
    tokens = [scenario.token(), scenario.token(subject=OTHER_SUBJECT)]
    for token in tokens:  # as a GET, the token sits in the request line
        query = urlencode(
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": "2011-06-15",
                "RoleArn": scenario.role_arn,
                "RoleSessionName": "logged",
                "WebIdentityToken": token,
            }
        )
        raw(scenario, "GET", f"/?{query}")
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("allow AssumeRoleWithWebIdentity") and SUBJECT in m for m in messages)
    assert any(
        m.startswith("deny AssumeRoleWithWebIdentity") and OTHER_SUBJECT in m for m in messages
    )
    for token in tokens:
        signature = token.rsplit(".", 1)[1]
        assert not any(signature in m for m in messages)
