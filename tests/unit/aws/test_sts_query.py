"""STS's Query API without botocore: SigV4 signatures equal botocore's own for the same request,
parameters encoded as the Query protocol names them, answers read into boto3's shape, and
hostile or broken answers refused in one line."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from datetime import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keyless.aws.sts_query import QueryStsClient, StsAnswerError, regional_endpoint, sign_v4
from keyless.compat import UTC
from keyless.errors import NetworkError
from keyless.http import HttpResponse

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLE"])
@pytest.mark.parametrize("url", ["https://sts.eu-west-1.amazonaws.com/", "http://127.0.0.1:4566/"])
def test_the_signature_is_botocores(url: str, token: str | None) -> None:
    request = AWSRequest(method="POST", url=url, data=BODY, headers=dict(CONTENT_TYPE))
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, token), "sts", "eu-west-1").add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    ours = sign_v4(
        method="POST",
        url=url,
        headers=CONTENT_TYPE,
        body=BODY,
        region="eu-west-1",
        service="sts",
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SECRET,
        session_token=token,
        now=datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == token


def test_regional_endpoints_only_in_the_commercial_partition() -> None:
    assert regional_endpoint("eu-central-1") == "https://sts.eu-central-1.amazonaws.com"
    for region in ("cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1"):
        assert regional_endpoint(region) is None


class _Recorder:
    """An ``HttpPoster`` answering one canned response and keeping what was sent."""

    def __init__(self, status: int, body: bytes) -> None:
        self.answer = HttpResponse(status=status, body=body)
        self.sent: list[tuple[str, dict[str, str], Mapping[str, str]]] = []

    def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        form = dict(urllib.parse.parse_qsl(body.decode("ascii")))
        self.sent.append((url, form, dict(headers or {})))
        return self.answer


_WEB_IDENTITY_ANSWER = b"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>repo:acme/site:ref:refs/heads/main</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/deploy/gha-1</Arn>
      <AssumedRoleId>AROAEXAMPLE:gha-1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>secret-part</SecretAccessKey>
      <SessionToken>session-part</SessionToken>
      <Expiration>2026-12-03T18:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"""


def test_the_web_identity_call_is_unsigned_and_read_as_boto3_reads_it() -> None:
    http = _Recorder(200, _WEB_IDENTITY_ANSWER)
    client = QueryStsClient(
        endpoint="https://sts.eu-west-1.amazonaws.com", region="eu-west-1", http=http
    )
    answer = client.assume_role_with_web_identity(
        RoleArn="arn:aws:iam::123456789012:role/deploy",
        RoleSessionName="gha-1",
        WebIdentityToken="eyJ.token.part",
        DurationSeconds=900,
        PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
    )
    url, form, headers = http.sent[0]
    assert url == "https://sts.eu-west-1.amazonaws.com/"
    assert form == {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": "arn:aws:iam::123456789012:role/deploy",
        "RoleSessionName": "gha-1",
        "WebIdentityToken": "eyJ.token.part",
        "DurationSeconds": "900",
        "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
    }
    assert "Authorization" not in headers
    assert answer == {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLE",
            "SecretAccessKey": "secret-part",
            "SessionToken": "session-part",
            "Expiration": datetime(2026, 12, 3, 18, 0, tzinfo=UTC),
        },
        "AssumedRoleUser": {
            "Arn": "arn:aws:sts::123456789012:assumed-role/deploy/gha-1",
            "AssumedRoleId": "AROAEXAMPLE:gha-1",
        },
        "SubjectFromWebIdentityToken": "repo:acme/site:ref:refs/heads/main",
    }


def test_assume_role_sends_tags_and_transitive_keys_as_members_and_signs() -> None:
    answer = _WEB_IDENTITY_ANSWER.replace(b"AssumeRoleWithWebIdentity", b"AssumeRole")
    http = _Recorder(200, answer)
    client = QueryStsClient(
        endpoint="https://sts.eu-west-1.amazonaws.com/",
        region="eu-west-1",
        http=http,
        keys=("ASIAEXAMPLE", "secret-part", "session-part"),
        clock=lambda: 1_780_000_000.0,
    )
    client.assume_role(
        RoleArn="arn:aws:iam::123456789012:role/next",
        RoleSessionName="gha-1",
        Tags=[{"Key": "team", "Value": "web"}],
        TransitiveTagKeys=["team"],
        ExternalId="ext",
    )
    _, form, headers = http.sent[0]
    assert form["Tags.member.1.Key"] == "team"
    assert form["Tags.member.1.Value"] == "web"
    assert form["TransitiveTagKeys.member.1"] == "team"
    assert form["ExternalId"] == "ext"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/")
    assert headers["X-Amz-Security-Token"] == "session-part"


def test_an_error_answer_carries_stss_code_message_and_status() -> None:
    body = (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        b"<Type>Sender</Type><Code>AccessDenied</Code>"
        b"<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
        b"</Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
    client = QueryStsClient(
        endpoint="https://sts.example", region="eu-west-1", http=_Recorder(403, body)
    )
    with pytest.raises(StsAnswerError) as raised:
        client.assume_role_with_web_identity(RoleArn="r", RoleSessionName="s", WebIdentityToken="t")
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)
    assert raised.value.message == "Not authorized to perform sts:AssumeRoleWithWebIdentity"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, b"", StsAnswerError),
        (502, b"<html><body>Bad gateway</body></html>", StsAnswerError),
        (200, b"<AssumeRoleWithWebIdentityResponse><AssumeRole", NetworkError),
        (200, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', NetworkError),
        (200, b"<AssumeRoleWithWebIdentityResponse/>", NetworkError),
        (200, _WEB_IDENTITY_ANSWER.replace(b"2026-12-03T18:00:00Z", b"soon"), NetworkError),
    ],
    ids=["empty-503", "proxy-page", "cut-short", "dtd", "no-result", "bad-expiration"],
)
def test_a_broken_answer_is_one_error_never_a_parser_traceback(
    status: int, body: bytes, expected: type[Exception]
) -> None:
    client = QueryStsClient(
        endpoint="https://sts.example", region="eu-west-1", http=_Recorder(status, body)
    )
    with pytest.raises(expected) as raised:
        client.assume_role_with_web_identity(RoleArn="r", RoleSessionName="s", WebIdentityToken="t")
    assert "\n" not in str(raised.value)
    if isinstance(raised.value, StsAnswerError):
        assert raised.value.status == status


def test_a_signed_call_without_keys_is_refused_before_sending() -> None:
    http = _Recorder(200, b"")
    client = QueryStsClient(endpoint="https://sts.example", region="eu-west-1", http=http)
    with pytest.raises(NetworkError):
        client.get_caller_identity()
    assert http.sent == []
