"""keyless.aws.sts: retry classification on botocore's Stubber, bounds on attempts and time, error
conversion without secrets, the second hop, the account check, requests and session names."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from keyless.arn import RoleArn, parse_account_id, parse_role_arn
from keyless.aws.sts import (
    AccountMismatchError,
    ExchangeRequest,
    RetryPolicy,
    SigningKeys,
    Sts,
    check_session_name,
    check_token_usable,
    derive_session_name,
    endpoint_url,
    exchange,
    exchange_with_keys,
    static_keys,
    sts_client_factory,
)
from keyless.aws.sts_errors import StsAccessDeniedError, StsApiError, retry_reason
from keyless.ci import PROVIDERS
from keyless.ci.base import RawToken, compose_session_name
from keyless.errors import AwsError, NetworkError, TokenError, TokenVerificationError, UsageError
from keyless.testing import FakeClock
from tests.jwt_factory import make_token
from tests.sts_stub import (
    ACCOUNT,
    OTHER_ROLE_ARN,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    assume_role_response,
    identity_response,
    stubbed_sts,
    web_identity_response,
)

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

TOKEN = RawToken(make_token(subject="repo:acme/site:ref:refs/heads/main"))
ROLE = RoleArn(ROLE_ARN)
OPERATION = "assume_role_with_web_identity"


def _request(**changes: Any) -> ExchangeRequest:
    values: dict[str, Any] = {"role_arn": ROLE, "session_name": "github-acme-site-1-1"}
    values.update(changes)
    return ExchangeRequest(**values)


def _assume(sts: Sts) -> Any:
    return sts.assume_role_with_web_identity(TOKEN, role_arn=ROLE, session_name="gh-1")


# --- retry classification ------------------------------------------------------------------------


def test_throttling_is_retried_with_full_jitter_then_succeeds() -> None:
    with stubbed_sts(random=0.5) as stub:
        stub.stubber.add_client_error(OPERATION, "Throttling", "Rate exceeded", 400)
        stub.stubber.add_client_error(OPERATION, "ThrottlingException", "Rate exceeded", 400)
        stub.stubber.add_response(OPERATION, web_identity_response())
        credentials, arn, subject = _assume(stub.sts)
    assert credentials.secret_access_key == SECRET_ACCESS_KEY
    assert arn.endswith(":assumed-role/deploy/s")
    assert subject == "repo:acme/site:ref:refs/heads/main"
    # delay = random() * min(cap, base * 2^(n-1)): 0.5 * 0.25, then 0.5 * 0.5
    assert stub.time.sleeps == [0.125, 0.25]
    assert len(stub.notices) == 2
    assert "Throttling (attempt 1 of 6); retrying in 0.12 s" in stub.notices[0]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("IDPCommunicationError", 400),
        ("InternalFailure", 500),
        ("SomethingNew", 503),
        ("RequestLimitExceeded", 400),
    ],
)
def test_transient_errors_are_retried(code: str, status: int) -> None:
    with stubbed_sts() as stub:
        stub.stubber.add_client_error(OPERATION, code, "try again", status)
        stub.stubber.add_response(OPERATION, web_identity_response())
        _assume(stub.sts)
    assert len(stub.time.sleeps) == 1


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AccessDenied", 403, StsAccessDeniedError),
        ("InvalidIdentityToken", 400, StsApiError),
        ("ExpiredTokenException", 400, StsApiError),
        ("MalformedPolicyDocument", 400, StsApiError),
        ("ValidationError", 400, StsApiError),
        ("PackedPolicyTooLarge", 400, StsApiError),
        ("IDPRejectedClaim", 403, StsApiError),
        ("UnknownClientError", 400, StsApiError),
    ],
)
def test_terminal_errors_fail_after_one_attempt(
    code: str, status: int, error: type[StsAccessDeniedError | StsApiError]
) -> None:
    with stubbed_sts() as stub:
        stub.stubber.add_client_error(OPERATION, code, "Not authorized", status)
        with pytest.raises(error) as caught:
            _assume(stub.sts)
    assert stub.time.sleeps == []
    assert stub.notices == []
    message = str(caught.value)
    assert message == (
        f"STS AssumeRoleWithWebIdentity for {ROLE_ARN} failed: {code}: Not authorized"
    )
    assert getattr(caught.value, "code") == code  # noqa: B009
    assert caught.value.remedy


def test_access_denied_points_at_doctor_and_never_quotes_the_token() -> None:
    with stubbed_sts() as stub:
        # Even if an error message carried the token, keyless would not repeat it.
        stub.stubber.add_client_error(OPERATION, "AccessDenied", f"bad {TOKEN} here", 403)
        with pytest.raises(StsAccessDeniedError) as caught:
            _assume(stub.sts)
    text = caught.value.diagnostics()
    assert TOKEN not in text
    assert TOKEN.split(".")[2][:20] not in text
    assert "<redacted>" in text
    assert f"keyless doctor --role-arn {ROLE_ARN}" in text


def test_attempts_are_bounded() -> None:
    with stubbed_sts(retry=RetryPolicy(max_attempts=3)) as stub:
        for _ in range(3):
            stub.stubber.add_client_error(OPERATION, "Throttling", "Rate exceeded", 400)
        with pytest.raises(StsApiError, match="failed after 3 attempts: Throttling"):
            _assume(stub.sts)
    assert len(stub.time.sleeps) == 2


class _Flaky:
    """A client whose web identity call fails with ``errors`` first, then answers."""

    def __init__(self, errors: list[Exception], on_call: Callable[[], None] = lambda: None) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.on_call = on_call
        self.starts: list[float] = []
        self.time: FakeClock | None = None

    def assume_role_with_web_identity(self, **_params: Any) -> Any:
        self.calls += 1
        if self.time is not None:
            self.starts.append(self.time.now)
        self.on_call()
        if self.errors:
            raise self.errors.pop(0)
        return web_identity_response()


def _flaky_sts(
    client: _Flaky, time: FakeClock, retry: RetryPolicy | None = None, *, random: float = 0.0
) -> Sts:
    client.time = time

    def factory(_keys: SigningKeys | None) -> STSClient:
        return client  # type: ignore[return-value]

    return Sts(
        client_factory=factory,
        sleep=time.sleep,
        clock=time.monotonic,
        random=lambda: random,
        retry=retry,
    )


def test_total_time_bound_holds_even_with_slow_attempts() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=1.0, max_delay=4.0, total_seconds=20.0)
    time = FakeClock()
    deadline = time.now + policy.total_seconds
    throttled = ClientError(
        {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "AssumeRoleWithWebIdentity"
    )
    client = _Flaky([throttled] * 100, on_call=lambda: time.advance(3.0))  # 3 s per attempt
    with pytest.raises(StsApiError, match="Throttling"):
        _assume(_flaky_sts(client, time, policy, random=1.0))
    assert all(begun <= deadline for begun in client.starts)
    # Sleeps never end past the deadline; only the last attempt's own 3 s may pass it.
    assert time.now <= deadline + 3.0
    assert 2 <= client.calls < 100
    assert time.sleeps == [1.0, 2.0, 4.0]


def test_connection_errors_are_retried_then_reported_as_network_errors() -> None:
    failure = EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com/")
    client = _Flaky([failure, failure])
    _assume(_flaky_sts(client, FakeClock()))
    assert client.calls == 3

    client = _Flaky([failure] * 3)
    with pytest.raises(NetworkError, match="failed after 3 attempts: EndpointConnectionError"):
        _assume(_flaky_sts(client, FakeClock(), RetryPolicy(max_attempts=3)))


def test_other_botocore_errors_are_terminal_and_not_quoted() -> None:
    # ParamValidationError can quote a parameter value: only its type is named, not chained.
    failure = ParamValidationError(report=f"Invalid type for parameter WebIdentityToken: {TOKEN}")
    client = _Flaky([failure])
    with pytest.raises(AwsError) as caught:
        _assume(_flaky_sts(client, FakeClock()))
    assert client.calls == 1
    assert str(caught.value).endswith("failed: ParamValidationError")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_retry_reason_table() -> None:
    assert retry_reason(ValueError("x")) is None


# --- the exchange --------------------------------------------------------------------------------


def test_exchange_checks_the_caller_identity() -> None:
    with stubbed_sts() as stub:
        stub.stubber.add_response(
            OPERATION,
            web_identity_response(session="github-acme-site-1-1"),
            {
                "RoleArn": ROLE_ARN,
                "RoleSessionName": "github-acme-site-1-1",
                "WebIdentityToken": TOKEN,
                "DurationSeconds": 1800,
                "Policy": '{"Version":"2012-10-17"}',
                "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            },
        )
        stub.stubber.add_response("get_caller_identity", identity_response())
        assumed = exchange(
            TOKEN,
            _request(
                duration_seconds=1800,
                session_policy='{"Version":"2012-10-17"}',
                session_policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",),
                expect_account=ACCOUNT,
            ),
            sts=stub.sts,
        )
    assert assumed.identity.account == ACCOUNT
    assert assumed.credentials.account_id == ACCOUNT
    assert assumed.hops == (ROLE_ARN,)
    assert assumed.source == "web-identity"
    # The exchange is unsigned; GetCallerIdentity is signed with the new credentials.
    assert stub.keys_used[0] is None
    assert stub.keys_used[1] is not None
    assert stub.keys_used[1].session_token == SESSION_TOKEN
    assert SECRET_ACCESS_KEY not in repr(assumed)
    assert SESSION_TOKEN not in repr(assumed)
    assert SECRET_ACCESS_KEY not in str(assumed.to_json())


def test_a_second_hop_gets_the_session_policy_and_the_account_check() -> None:
    with stubbed_sts() as stub:
        stub.stubber.add_response(
            OPERATION,
            web_identity_response(),
            {
                "RoleArn": ROLE_ARN,
                "RoleSessionName": "github-acme-site-1-1",
                "WebIdentityToken": TOKEN,
            },
        )
        stub.stubber.add_response(
            "assume_role",
            assume_role_response(OTHER_ROLE_ARN),
            {
                "RoleArn": OTHER_ROLE_ARN,
                "RoleSessionName": "github-acme-site-1-1",
                "DurationSeconds": 3600,
                "Policy": "{}",
            },
        )
        stub.stubber.add_response("get_caller_identity", identity_response(OTHER_ROLE_ARN))
        assumed = exchange(
            TOKEN,
            _request(
                chain_role_arn=RoleArn(OTHER_ROLE_ARN),
                duration_seconds=3600,
                session_policy="{}",
                expect_account="210987654321",
            ),
            sts=stub.sts,
        )
    assert assumed.hops == (ROLE_ARN, OTHER_ROLE_ARN)
    assert assumed.role_arn == OTHER_ROLE_ARN
    assert assumed.credentials.access_key_id == "ASIASECONDHOP0000001"
    assert stub.keys_used[1] is not None  # the second hop is signed with the first's keys


def test_another_account_is_refused() -> None:
    with stubbed_sts() as stub:
        stub.stubber.add_response(OPERATION, web_identity_response())
        stub.stubber.add_response("get_caller_identity", identity_response())
        with pytest.raises(AccountMismatchError) as caught:
            exchange(TOKEN, _request(expect_account="999999999999"), sts=stub.sts)
    assert str(caught.value) == (
        f"the credentials of {ROLE_ARN} are in account {ACCOUNT}, not the expected 999999999999"
    )
    assert caught.value.exit_code == 2


def test_static_fallback_assumes_the_role_with_the_keys() -> None:
    keys = static_keys({"AWS_ACCESS_KEY_ID": "AKIASTATIC", "AWS_SECRET_ACCESS_KEY": "static"})
    assert keys is not None
    assert static_keys({"AWS_ACCESS_KEY_ID": "AKIASTATIC"}) is None
    with stubbed_sts() as stub:
        stub.stubber.add_response("assume_role", assume_role_response(ROLE_ARN))
        stub.stubber.add_response("get_caller_identity", identity_response())
        assumed = exchange_with_keys(keys, _request(), sts=stub.sts)
    assert assumed.source == "static-keys"
    assert assumed.subject is None
    assert stub.keys_used[0] == keys


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"duration_seconds": 899}, "--duration 899 is out of range"),
        ({"duration_seconds": 43_201}, "--duration 43201 is out of range"),
        (
            {"duration_seconds": 7200, "chain_role_arn": RoleArn(OTHER_ROLE_ARN)},
            "AWS limits a chained session to 3600 seconds",
        ),
        ({"session_policy": "x" * 2049}, "the session policy has 2049 characters"),
        ({"session_policy_arns": ("arn:aws:iam::aws:policy/A",) * 11}, "at most 10"),
        ({"session_policy_arns": ("ReadOnlyAccess",)}, "is not a managed policy ARN"),
        ({"session_name": "has space"}, "--session-name 'has space' is not valid"),
        ({"session_name": "x"}, "is not valid"),
    ],
)
def test_requests_sts_would_refuse_are_refused_first(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _request(**changes)


def test_role_arns_and_accounts() -> None:
    assert parse_role_arn(" arn:aws:iam::123456789012:role/path/to/deploy ") == (
        "arn:aws:iam::123456789012:role/path/to/deploy"
    )
    assert parse_role_arn("arn:aws-cn:iam::123456789012:role/x")
    for bad in ("deploy", "arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:user/x"):
        with pytest.raises(UsageError, match="is not an IAM role ARN"):
            parse_role_arn(bad)
    assert parse_account_id("123456789012") == "123456789012"
    with pytest.raises(UsageError, match="not a 12-digit"):
        parse_account_id("1234")
    assert check_session_name("a.b@c=d,e+f_g-h") == "a.b@c=d,e+f_g-h"


@pytest.mark.parametrize(
    ("provider", "env", "expected"),
    [
        (
            "bitbucket",
            {
                "BITBUCKET_BUILD_NUMBER": "42",
                "BITBUCKET_REPO_SLUG": "site",
                "BITBUCKET_STEP_UUID": "{3f2a9c1d-0000-4000-8000-000000000001}",
            },
            "bitbucket-site-42-3f2a9c1d",
        ),
        (
            "bitbucket",
            {"BITBUCKET_BUILD_NUMBER": "7", "BITBUCKET_REPO_UUID": "{7a1e0000-aaaa}"},
            "bitbucket-7a1e0000-aaaa-7",
        ),
        (
            "github",
            {
                "GITHUB_REPOSITORY": "acme/site",
                "GITHUB_RUN_ID": "9876543210",
                "GITHUB_RUN_ATTEMPT": "2",
            },
            "github-acme-site-9876543210-2",
        ),
        (
            "gitlab",
            {"CI_PROJECT_PATH": "group/sub/proj", "CI_JOB_ID": "55"},
            "gitlab-group-sub-proj-55",
        ),
        (
            "circleci",
            {"CIRCLE_PROJECT_REPONAME": "site", "CIRCLE_BUILD_NUM": "9"},
            "circleci-site-9",
        ),
        (
            "buildkite",
            {
                "BUILDKITE_PIPELINE_SLUG": "site",
                "BUILDKITE_BUILD_NUMBER": "3",
                "BUILDKITE_JOB_ID": "0190a1b2-c3d4",
            },
            "buildkite-site-3-0190a1b2",
        ),
    ],
)
def test_session_names_come_from_the_run(provider: str, env: dict[str, str], expected: str) -> None:
    assert derive_session_name(env, PROVIDERS[provider]) == expected


def test_session_names_keep_the_run_ids_when_shortened() -> None:
    name = compose_session_name("github", "acme/" + "x" * 100, "9876543210", "1")
    assert name is not None
    assert len(name) == 64
    assert name.endswith("-9876543210-1")
    check_session_name(name)


def test_a_run_without_ids_gets_a_fallback_name() -> None:
    assert derive_session_name({}, PROVIDERS["github"], clock=lambda: 1_700_000_000.5) == (
        "keyless-1700000000"
    )
    assert derive_session_name({}, None, clock=lambda: 5.0) == "keyless-5"
    assert derive_session_name(
        {"GITHUB_RUN_ID": "ü{}"}, PROVIDERS["github"], clock=lambda: 5.0
    ) == ("keyless-5")


def test_token_expiry_is_checked_before_sts() -> None:
    now = time.time()
    expired = RawToken(make_token(now=int(now) - 3600, lifetime=300))
    with pytest.raises(TokenVerificationError, match="the token from X expired at") as caught:
        check_token_usable(expired, source="X", clock=lambda: now)
    assert caught.value.check == "expired"
    # Minted here, not at import: a slow run must not age the module's token past its lifetime.
    fresh = RawToken(make_token(subject="repo:acme/site:ref:refs/heads/main"))
    assert check_token_usable(fresh, source="X").subject == "repo:acme/site:ref:refs/heads/main"
    with pytest.raises(TokenError, match="the token from X is malformed"):
        check_token_usable(RawToken("a.b"), source="X")


# --- endpoints and the client --------------------------------------------------------------------


def test_endpoints_follow_the_injected_environment() -> None:
    assert endpoint_url({}, "sts") is None
    assert endpoint_url({"AWS_ENDPOINT_URL": "http://a"}, "sts") == "http://a"
    both = {"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_STS": "http://s"}
    assert endpoint_url(both, "sts") == "http://s"
    assert endpoint_url(both, "iam") == "http://a"
    assert endpoint_url({**both, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, "sts") is None


def test_the_client_is_regional_unsigned_and_leaves_retries_to_keyless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Even where the environment asks botocore for the global endpoint.
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    factory = sts_client_factory({}, region="eu-west-1")
    unsigned = factory(None)
    assert unsigned.meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    assert getattr(unsigned.meta.config, "signature_version") is UNSIGNED  # noqa: B009
    one_attempt = {"mode": "standard", "total_max_attempts": 1}
    assert getattr(unsigned.meta.config, "retries") == one_attempt  # noqa: B009
    signed = factory(SigningKeys(access_key_id="AKIA", secret_access_key="s"))
    assert getattr(signed.meta.config, "retries") == one_attempt  # noqa: B009
    local = sts_client_factory({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1"}, region="x-y-1")
    assert local(None).meta.endpoint_url == "http://127.0.0.1:1"


def test_expiration_is_kept_in_utc() -> None:
    with stubbed_sts() as stub:
        response = web_identity_response()
        response["Credentials"]["Expiration"] = dt.datetime(2030, 1, 2, 3, 4, 5)
        stub.stubber.add_response(OPERATION, response)
        credentials, _, _ = _assume(stub.sts)
    assert credentials.expiration_iso == "2030-01-02T03:04:05Z"
