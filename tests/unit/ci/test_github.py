"""GitHub Actions against a real local token endpoint: headers, audience, retries, refusals."""

from __future__ import annotations

import socket
import urllib.parse

import pytest

from keyless.ci.github import GitHub, GitHubScope
from keyless.errors import CredentialError, KeylessError, NetworkError, TokenError
from keyless.http import HttpResponse, UrllibClient
from keyless.limits import (
    RETRY_BASE_DELAY_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    TOKEN_REQUEST_MAX_ATTEMPTS,
)
from tests.github_endpoint import Reply, serve, token_reply
from tests.jwt_factory import make_token

REQUEST_TOKEN = "ghs_request-bearer-0123456789abcdef"
ISSUER = "https://token.actions.githubusercontent.com"


class _Clock:
    """A clock that moves only when the provider sleeps: no wall-clock time in these tests."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _github(clock: _Clock, random_value: float = 0.5) -> GitHub:
    return GitHub(sleep=clock.sleep, random=lambda: random_value, clock=clock)


def _env(url: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": url,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }


def _assert_no_secret(error: KeylessError, *secrets: str) -> None:
    for secret in (REQUEST_TOKEN, *secrets):
        assert secret not in error.diagnostics()
        assert secret not in str(error)


def test_not_in_github_is_none() -> None:
    assert GitHub().obtain({}, audience=None, http=UrllibClient()) is None


def test_token_request_sends_bearer_accept_and_default_audience() -> None:
    token = make_token(issuer=ISSUER, audience="sts.amazonaws.com")
    clock = _Clock()
    with serve([token_reply(token)]) as endpoint:
        obtained = _github(clock).obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    assert obtained is not None
    assert obtained.token == token
    assert obtained.provider == "github"
    assert obtained.source == "ACTIONS_ID_TOKEN_REQUEST_URL"
    [request] = endpoint.requests
    assert request.path == "/idtoken"
    assert request.headers["authorization"] == f"bearer {REQUEST_TOKEN}"
    assert request.headers["accept"] == "application/json; api-version=2.0"
    assert request.query == {"api-version": ["2.0"], "audience": ["sts.amazonaws.com"]}
    assert clock.sleeps == []


def test_custom_audience_is_url_encoded() -> None:
    audience = "https://deploy.example/a b&c=d"
    with serve([token_reply(make_token(audience=audience))]) as endpoint:
        _github(_Clock()).obtain(_env(endpoint.url), audience=audience, http=UrllibClient())
    assert endpoint.requests[0].query["audience"] == [audience]


def test_request_url_without_a_query_gets_one() -> None:
    with serve([token_reply(make_token())]) as endpoint:
        bare = endpoint.url.split("?", 1)[0]
        _github(_Clock()).obtain(_env(bare), audience=None, http=UrllibClient())
    assert endpoint.requests[0].query == {"audience": ["sts.amazonaws.com"]}


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (
            "https://x.example/t?api-version=2.0",
            "https://x.example/t?api-version=2.0&audience=a%2Fb",
        ),
        ("https://x.example/t", "https://x.example/t?audience=a%2Fb"),
        ("https://x.example/t?", "https://x.example/t?audience=a%2Fb"),
        ("https://x.example/t?v=1&", "https://x.example/t?v=1&audience=a%2Fb"),
    ],
)
def test_request_url_shapes(base: str, expected: str) -> None:
    assert GitHub().request_url(base, "a/b") == expected


def test_transient_5xx_is_retried_with_jittered_backoff() -> None:
    token = make_token()
    clock = _Clock()
    with serve([Reply(status=503), Reply(status=502), token_reply(token)]) as endpoint:
        obtained = _github(clock, random_value=0.5).obtain(
            _env(endpoint.url), audience=None, http=UrllibClient()
        )
    assert obtained is not None
    assert obtained.token == token
    assert len(endpoint.requests) == 3
    # Full jitter: random() x min(cap, base x 2^retry).
    assert clock.sleeps == [0.5 * RETRY_BASE_DELAY_SECONDS, 0.5 * RETRY_BASE_DELAY_SECONDS * 2]


def test_429_is_retried_and_its_retry_after_respected_within_the_cap() -> None:
    clock = _Clock()
    replies = [Reply(status=429, headers={"Retry-After": "3"}), token_reply(make_token())]
    with serve(replies) as endpoint:
        _github(clock, random_value=0.0).obtain(
            _env(endpoint.url), audience=None, http=UrllibClient()
        )
    assert len(endpoint.requests) == 2
    assert clock.sleeps == [min(3.0, RETRY_MAX_DELAY_SECONDS)]


def test_persistent_5xx_gives_up_after_the_bounded_attempts() -> None:
    clock = _Clock()
    with (
        serve([Reply(status=500, body=b"internal")]) as endpoint,
        pytest.raises(NetworkError) as info,
    ):
        _github(clock, random_value=1.0).obtain(
            _env(endpoint.url), audience=None, http=UrllibClient()
        )
    assert len(endpoint.requests) == TOKEN_REQUEST_MAX_ATTEMPTS
    assert len(clock.sleeps) == TOKEN_REQUEST_MAX_ATTEMPTS - 1
    assert all(delay <= RETRY_MAX_DELAY_SECONDS for delay in clock.sleeps)
    assert info.value.message.startswith("GitHub Actions:")
    assert "HTTP 500" in info.value.message
    _assert_no_secret(info.value)


def test_retries_stop_at_the_time_budget() -> None:
    clock = _Clock()

    def slow_sleep(seconds: float) -> None:
        clock.sleeps.append(seconds)
        clock.now += 31.0  # as if the wait and the request had used up the whole budget

    github = GitHub(sleep=slow_sleep, random=lambda: 1.0, clock=clock)
    with serve([Reply(status=503)]) as endpoint, pytest.raises(NetworkError):
        github.obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    # The sleep ran past the budget, so no attempt starts after it: the budget bounds the
    # attempts themselves, not only the waits between them.
    assert len(endpoint.requests) == 1
    assert len(clock.sleeps) == 1


def test_401_is_not_retried_and_explains() -> None:
    clock = _Clock()
    with (
        serve([Reply(status=401, body=b'{"message":"bad"}')]) as endpoint,
        pytest.raises(CredentialError) as info,
    ):
        _github(clock).obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    assert len(endpoint.requests) == 1
    assert clock.sleeps == []
    error = info.value
    assert error.message.startswith("GitHub Actions: the ID token endpoint")
    assert "HTTP 401" in error.message
    assert error.remedy is not None
    assert "six hours" in error.remedy
    assert "api-version" not in error.message  # the query is not part of the message
    _assert_no_secret(error)


def test_403_is_not_retried_and_points_at_the_permission() -> None:
    with serve([Reply(status=403)]) as endpoint, pytest.raises(CredentialError) as info:
        _github(_Clock()).obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    assert len(endpoint.requests) == 1
    assert info.value.remedy is not None
    assert "id-token: write" in info.value.remedy


def test_connection_refused_is_retried_then_a_network_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = _Clock()
    url = f"http://127.0.0.1:{port}/idtoken?api-version=2.0"
    with pytest.raises(NetworkError) as info:
        _github(clock).obtain(_env(url), audience=None, http=UrllibClient())
    assert len(clock.sleeps) == TOKEN_REQUEST_MAX_ATTEMPTS - 1
    assert "cannot reach" in info.value.message
    _assert_no_secret(info.value)


@pytest.mark.parametrize(
    "missing", ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"]
)
def test_job_without_id_token_permission_is_an_error_with_the_yaml_fix(missing: str) -> None:
    env = _env("https://runtime.example/idtoken?api-version=2.0")
    del env[missing]
    with pytest.raises(CredentialError) as info:
        GitHub().obtain(env, audience=None, http=UrllibClient())
    error = info.value
    assert error.message.startswith(f"GitHub Actions: {missing} not set")
    assert error.remedy is not None
    assert "permissions:\n    id-token: write" in error.remedy
    _assert_no_secret(error)


def test_plain_http_to_a_remote_host_is_refused_before_sending_the_bearer() -> None:
    with pytest.raises(CredentialError, match="not an https URL") as info:
        GitHub().obtain(
            _env("http://runtime.example/idtoken?api-version=2.0"),
            audience=None,
            http=UrllibClient(),
        )
    _assert_no_secret(info.value)


@pytest.mark.parametrize("body", [b"not json", b'{"token": "x"}', b'{"value": 3}', b"[]"], ids=repr)
def test_answer_without_a_string_value_is_an_error(body: bytes) -> None:
    with (
        serve([Reply(status=200, body=body)]) as endpoint,
        pytest.raises(CredentialError, match="string `value`"),
    ):
        _github(_Clock()).obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    assert len(endpoint.requests) == 1


def test_value_that_is_not_a_jwt_is_a_token_error_without_the_value() -> None:
    with (
        serve([Reply(status=200, body=b'{"value": "leaky secret value"}')]) as endpoint,
        pytest.raises(TokenError) as info,
    ):
        _github(_Clock()).obtain(_env(endpoint.url), audience=None, http=UrllibClient())
    _assert_no_secret(info.value, "leaky secret value")


def test_messages_never_carry_user_info_of_the_url() -> None:
    url = "https://user:hunter2@runtime.example/idtoken?api-version=2.0"

    class _NotFound:
        def get(self, url: str, **_: object) -> HttpResponse:
            return HttpResponse(status=404, body=b"")

    with pytest.raises(CredentialError) as info:
        GitHub().obtain(_env(url), audience=None, http=_NotFound())
    assert "hunter2" not in info.value.diagnostics()
    assert "runtime.example/idtoken" in info.value.message


@pytest.mark.parametrize(
    ("issuer", "owned"),
    [
        (ISSUER, True),
        (f"{ISSUER}/octo-enterprise", True),
        ("https://token.actions.octo.ghe.com", True),
        ("https://ghes.example.com/_services/token", True),
        (f"{ISSUER}.evil.example", False),
        ("http://token.actions.githubusercontent.com", False),
        ("https://gitlab.com", False),
    ],
)
def test_owns_issuer(issuer: str, owned: bool) -> None:
    assert GitHub().owns_issuer(issuer) is owned


def test_aws_condition_claims_are_the_2026_keys_and_all_printable() -> None:
    github = GitHub()
    assert github.aws_condition_claims == {
        "actor",
        "actor_id",
        "job_workflow_ref",
        "repository",
        "repository_id",
        "workflow",
        "ref",
        "environment",
        "enterprise_id",
    }
    assert github.aws_condition_claims <= github.safe_claims


def test_request_url_is_parsed_not_concatenated() -> None:
    # A fragment must stay a fragment, not swallow the audience parameter.
    url = GitHub().request_url("https://x.example/t?a=1#frag", "aud")
    assert urllib.parse.urlsplit(url).query == "a=1&audience=aud"


def test_a_name_only_trust_says_how_to_get_the_ids_of_the_immutable_form() -> None:
    (named,) = GitHubScope(repository="acme/site", environment="prod").trust_spec().notes
    assert "gh api repos/acme/site --jq '.owner.id, .id'" in named
    assert "whoever takes the name after a rename" in named
    immutable = GitHubScope(
        repository="acme/site", environment="prod", owner_id="1", repository_id="2"
    ).trust_spec()
    assert "gh api" not in immutable.notes[0]
