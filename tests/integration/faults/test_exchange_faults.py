"""``keyless assume`` (the CLI's own code path) through the fault proxy in front of the local
stack's STS gateway: transient answers (throttling, 5xx, IDPCommunicationError, resets, closed
connections, short bodies) are retried and the exchange succeeds; the same faults persisting stop
it after exactly STS_MAX_ATTEMPTS attempts; AccessDenied and InvalidIdentityToken are never
retried. The proxy counts the attempts; keyless' backoff sleeps are skipped (its Sts seam), not
its classification or its attempt bound.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from keyless.aws.sts import Sts
from keyless.cli.seams import Seams
from keyless.limits import STS_MAX_ATTEMPTS
from keyless.testing import FakeClock
from tests import faultproxy as fp
from tests.cli.helpers import Result, run_cli
from tests.integration.faults.conftest import Scene, token

pytestmark = pytest.mark.integration

#: Only AssumeRoleWithWebIdentity and GetCallerIdentity are POSTed to "/"; the former first.
_EXCHANGE = {"method": "POST", "path": r"^/$"}


def _sts_without_backoff(env: Mapping[str, str], region: str, notify: Callable[[str], None]) -> Sts:
    # The CLI's STS with a clock that records backoff sleeps instead of sleeping.
    return Sts.for_environment(env, region=region, notify=notify, sleep=FakeClock().sleep)


NO_BACKOFF = Seams(sts=_sts_without_backoff)


def _assume(scene: Scene, proxy: fp.FaultProxy, tmp_path: Path) -> Result:
    token_file = tmp_path / "token"
    token_file.write_text(token(scene))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_REGION": scene.stack.region,
        "AWS_CONFIG_FILE": "/nonexistent/keyless-test-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-test-credentials",
    }
    argv = ["assume", "--role-arn", scene.role_arn, "--token-file", str(token_file), "--json"]
    return run_cli(argv, env=env, seams=NO_BACKOFF)


def _sts(status: int, code: str) -> fp.Fault:
    return fp.error(status, code, f"{code} (injected)", flavor="sts")


TRANSIENT = [
    ("throttling", fp.throttling()),
    ("internal-failure-500", _sts(500, "InternalFailure")),
    ("service-unavailable-503", _sts(503, "ServiceUnavailable")),
    ("idp-communication", _sts(400, "IDPCommunicationError")),
    ("reset", fp.RESET),
    ("closed", fp.CLOSE),
    ("truncated", fp.TRUNCATE),
]


@pytest.mark.parametrize("fault", [f for _, f in TRANSIENT], ids=[n for n, _ in TRANSIENT])
def test_transient_sts_faults_are_retried(scene: Scene, tmp_path: Path, fault: fp.Fault) -> None:
    with fp.FaultProxy(scene.stack.endpoint_url) as proxy:
        rule = fp.Rule(fault=fault, times=2, **_EXCHANGE)  # type: ignore[arg-type]
        proxy.add(rule)
        result = _assume(scene, proxy, tmp_path)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["role_arn"] == scene.role_arn
    # Two faulted attempts, the third exchanged, then GetCallerIdentity.
    assert rule.matched == 4
    assert rule.injected == 2
    assert result.stderr.count("retrying in") == 2


PERSISTENT = [
    ("throttling", fp.throttling(), STS_MAX_ATTEMPTS, "Throttling"),
    ("idp-communication", _sts(400, "IDPCommunicationError"), STS_MAX_ATTEMPTS, "IDPCommunic"),
    ("reset", fp.RESET, STS_MAX_ATTEMPTS, "ConnectionClosedError"),
    ("truncated", fp.TRUNCATE, STS_MAX_ATTEMPTS, "could not be read"),
    ("access-denied", _sts(403, "AccessDenied"), 1, "AccessDenied"),
    ("invalid-identity-token", _sts(400, "InvalidIdentityToken"), 1, "InvalidIdentityToken"),
]


@pytest.mark.parametrize(
    ("fault", "attempts", "named"),
    [case[1:] for case in PERSISTENT],
    ids=[case[0] for case in PERSISTENT],
)
def test_persistent_or_terminal_sts_faults_stop_after_the_bound(
    scene: Scene, tmp_path: Path, fault: fp.Fault, attempts: int, named: str
) -> None:
    with fp.FaultProxy(scene.stack.endpoint_url) as proxy:
        rule = fp.Rule(fault=fault, times=100, **_EXCHANGE)  # type: ignore[arg-type]
        proxy.add(rule)
        result = _assume(scene, proxy, tmp_path)
    assert result.code == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert named in errors[0]
    assert "AssumeRoleWithWebIdentity" in errors[0]
    assert rule.matched == attempts
    if attempts > 1:
        assert f"after {attempts} attempts" in errors[0]
