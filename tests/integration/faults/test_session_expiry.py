"""``keyless deploy --role-arn`` that outlives its role session, on the local stack.

The stack issues 4-second sessions (its test-only setting; STS's minimum is 900 s) and its
gateway refuses requests signed with an expired one (ExpiredToken), as AWS does. The fault proxy
in front of it slows every upload so that the deploy lasts several sessions. With a token that
stays valid, the deploy renews its session by exchanging the token again and converges; when the
token has expired by the time a renewal is due, it stops before its credentials expire, with one
line naming them and how to get longer sessions, and deletes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from keyless.local.stack import RunningStack
from tests import faultproxy as fp
from tests.cli.helpers import Result, run_cli
from tests.integration.faults.conftest import BUCKET, SESSION_SECONDS, Scene, token

pytestmark = pytest.mark.integration

#: Each upload is held this long at the proxy: 30 of them, one at a time, outlast a session.
UPLOAD_DELAY_SECONDS = 0.2
FILES = {f"page{i:02d}.html": f"<p>page {i}</p>".encode() for i in range(30)}


def _stored(stack: RunningStack, prefix: str) -> dict[str, bytes]:
    s3 = stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
        if not item["Key"].endswith(".keyless-manifest.json.gz")
    }


def _deploy(
    scene: Scene, proxy: fp.FaultProxy, site: Path, token_file: Path, prefix: str
) -> Result:
    stack = scene.stack
    env = {
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_REGION": stack.region,
        "AWS_CONFIG_FILE": "/nonexistent/keyless-test-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-test-credentials",
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in env.items():  # botocore reads the process environment
            monkeypatch.setenv(name, value)
        return run_cli(
            [
                "deploy",
                str(site),
                f"s3://{BUCKET}/{prefix}",
                "--role-arn",
                scene.role_arn,
                "--token-file",
                str(token_file),
                "--concurrency",
                "1",
                "--delete",
                "--max-delete",
                "100",
            ],
            env={**os.environ, **env},
        )


def _site(root: Path) -> Path:
    root.mkdir()
    for name, data in FILES.items():
        (root / name).write_bytes(data)
    return root


def _slow_uploads(prefix: str, **kw: object) -> fp.Rule:
    return fp.Rule(
        fault=fp.delay(UPLOAD_DELAY_SECONDS),
        method="PUT",
        path=rf"^/{BUCKET}/{prefix}/page",
        times=len(FILES),
        **kw,  # type: ignore[arg-type]
    )


def _exchanges(proxy: fp.FaultProxy) -> int:
    return sum(1 for seen in proxy.log if seen.method == "POST" and seen.path == "/")


def test_a_deploy_longer_than_its_session_renews_it_and_converges(
    scene: Scene, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token(scene))
    site = _site(tmp_path / "site")
    with fp.FaultProxy(scene.stack.endpoint_url) as proxy:
        proxy.add(_slow_uploads("renew"))
        result = _deploy(scene, proxy, site, token_file, "renew")
    assert result.code == 0, result.stderr
    assert _stored(scene.stack, "renew/") == {f"renew/{k}": v for k, v in FILES.items()}
    renewals = result.stderr.count("keyless: renewed: assumed ")
    assert renewals >= 1, result.stderr
    # One exchange (AssumeRoleWithWebIdentity and GetCallerIdentity) at the start and per renewal.
    assert _exchanges(proxy) == 2 * (1 + renewals)
    # No request reached the gateway with expired credentials.
    refused = [s for s in proxy.log if s.status in (400, 403)]
    assert refused == [], [(s.method, s.path, s.status) for s in refused]


def test_a_session_that_cannot_be_renewed_stops_before_it_expires(
    scene: Scene, tmp_path: Path
) -> None:
    old = {"stale/old.txt": b"still here"}
    s3 = scene.stack.admin_session().client("s3", endpoint_url=scene.stack.endpoint_url)
    for key, data in old.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    token_file = tmp_path / "token"
    token_file.write_text(token(scene))
    now = int(time.time())
    # The step's token expires while the deploy runs: a fixed token file cannot be renewed.
    expired = token(scene, iat=now - 900, nbf=now - 900, exp=now - 300)
    site = _site(tmp_path / "site")
    with fp.FaultProxy(scene.stack.endpoint_url) as proxy:
        proxy.add(_slow_uploads("stale", on_first=lambda: token_file.write_text(expired)))
        result = _deploy(scene, proxy, site, token_file, "stale")
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert f"the session of {scene.role_arn} expires at" in errors[0]
    assert "could not be renewed" in errors[0]
    assert "expired" in errors[0]
    assert "--duration" in result.stderr
    # Stopped part-way: some pages uploaded, the old object not deleted, no delete sent.
    stored = _stored(scene.stack, "stale/")
    assert stored["stale/old.txt"] == b"still here"
    assert 0 < len(stored) - 1 < len(FILES)
    assert not [s for s in proxy.log if s.method == "POST" and "delete" in s.query]
    # The renewal was tried once, not at every request.
    assert _exchanges(proxy) == 2


def test_the_gateway_refuses_expired_session_credentials_as_aws_does(scene: Scene) -> None:
    stack = scene.stack
    answer = stack.sts().assume_role_with_web_identity(
        RoleArn=scene.role_arn, RoleSessionName="expiry", WebIdentityToken=token(scene)
    )
    credentials = answer["Credentials"]
    left = credentials["Expiration"].timestamp() - time.time()
    # The test-only lifetime, not the 3600 s asked for (by default).
    assert 0 < left <= SESSION_SECONDS
    session = stack.session(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )
    s3 = session.client("s3", endpoint_url=stack.endpoint_url)
    sts = session.client("sts", endpoint_url=stack.endpoint_url)
    s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1)
    time.sleep(left + 0.1)  # bounded by the session's own lifetime
    with pytest.raises(ClientError) as refused_s3:
        s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1)
    assert refused_s3.value.response["Error"]["Code"] == "ExpiredToken"
    assert refused_s3.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as refused_sts:
        sts.get_caller_identity()
    assert refused_sts.value.response["Error"]["Code"] == "ExpiredToken"
    assert refused_sts.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "expired" in refused_sts.value.response["Error"]["Message"]
