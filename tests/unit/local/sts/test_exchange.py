"""The gateway's decision half: STS's parameter rules, error codes and messages, decision logs."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from keyless.errors import IssuerError, NetworkError, PolicyError, TokenVerificationError
from keyless.local.sts import (
    CachedDirectory,
    Identity,
    OidcProvider,
    Role,
    StsError,
    TrustAnswer,
    TrustQuestion,
    WebIdentityExchange,
    guarded_action,
    trust_evaluator,
)
from keyless.tokens import peek
from tests.jwt_factory import make_token

ACCOUNT = "123456789012"
ISSUER = "https://token.actions.githubusercontent.com"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"
SUBJECT = "repo:acme/site:ref:refs/heads/main"
NOW = 1_800_000_000


@dataclass
class FakeDirectory:
    providers: dict[str, OidcProvider] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)

    def provider(self, arn: str) -> OidcProvider | None:
        return self.providers.get(arn)

    def role(self, name: str) -> Role | None:
        return self.roles.get(name)


@dataclass
class FakeVerifier:
    """Trusts the token's own claims unless told to fail; records what it was asked."""

    error: Exception | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, token: str, *, issuer: str, audience: str) -> Identity:
        self.calls.append((issuer, audience))
        if self.error is not None:
            raise self.error
        peeked = peek(token)
        claims = peeked.claims
        return Identity(
            issuer=issuer,
            subject=str(claims["sub"]),
            audience=peeked.audience,
            expires_at=int(str(claims["exp"])),
            claims=dict(claims),
        )


@dataclass
class FakeEvaluator:
    answer: TrustAnswer = field(default_factory=lambda: TrustAnswer(allowed=True, reason="ok"))
    error: Exception | None = None
    questions: list[TrustQuestion] = field(default_factory=list)

    def __call__(self, question: TrustQuestion) -> TrustAnswer:
        self.questions.append(question)
        if self.error is not None:
            raise self.error
        return self.answer


@dataclass
class World:
    directory: FakeDirectory
    verifier: FakeVerifier
    evaluator: FakeEvaluator
    exchange: WebIdentityExchange


@pytest.fixture
def world() -> World:
    directory = FakeDirectory(
        providers={
            PROVIDER_ARN: OidcProvider(
                arn=PROVIDER_ARN, url=ISSUER[8:], client_ids=("other-client", "sts.amazonaws.com")
            )
        },
        roles={
            "ci-deploy": Role(arn=ROLE_ARN, trust_policy="{}", max_session_duration=3600),
        },
    )
    verifier, evaluator = FakeVerifier(), FakeEvaluator()
    exchange = WebIdentityExchange(
        account_id=ACCOUNT,
        directory=directory,
        verify=verifier,
        evaluate=evaluator,
        clock=lambda: NOW,
    )
    return World(directory, verifier, evaluator, exchange)


def token(**overrides: object) -> str:
    claims: dict[str, object] = {"sub": SUBJECT}
    claims.update(overrides)
    return make_token(claims, issuer=ISSUER, subject=SUBJECT, now=NOW - 10)


def params(**overrides: str | None) -> dict[str, str]:
    base: dict[str, str | None] = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE_ARN,
        "RoleSessionName": "gha-run-1",
        "WebIdentityToken": token(),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refusal(world: World, request: Mapping[str, str]) -> StsError:
    with pytest.raises(StsError) as caught:
        world.exchange.decide(request)
    return caught.value


def test_allowed_exchange_names_provider_audience_and_default_duration(world: World) -> None:
    allowed = world.exchange.decide(params())
    assert allowed.role_arn == ROLE_ARN
    assert allowed.provider_arn == PROVIDER_ARN
    assert allowed.audience == "sts.amazonaws.com"
    assert allowed.duration_seconds == 3600
    assert allowed.identity.subject == SUBJECT
    assert world.verifier.calls == [(ISSUER, "sts.amazonaws.com")]
    (question,) = world.evaluator.questions
    assert question.provider_arn == PROVIDER_ARN
    assert question.role_arn == ROLE_ARN


def test_the_trailing_newline_of_a_token_file_is_accepted(world: World) -> None:
    assert world.exchange.decide(params(WebIdentityToken=token() + "\n")).role_arn == ROLE_ARN


def test_missing_parameters_are_all_reported(world: World) -> None:
    error = refusal(world, {"Action": "AssumeRoleWithWebIdentity"})
    assert (error.code, error.status) == ("ValidationError", 400)
    assert error.message.startswith("3 validation errors detected: ")
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in (
        error.message
    )
    assert "'roleSessionName'" in error.message
    assert "'webIdentityToken'" in error.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a", "Member must have length greater than or equal to 2"),
        ("x" * 65, "Member must have length less than or equal to 64"),
        ("has space", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"),
        ("{braces}", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"),
    ],
)
def test_role_session_name_rules(world: World, name: str, expected: str) -> None:
    error = refusal(world, params(RoleSessionName=name))
    assert error.code == "ValidationError"
    assert f"at 'roleSessionName' failed to satisfy constraint: {expected}" in error.message


def test_session_name_allows_stss_punctuation(world: World) -> None:
    assert world.exchange.decide(params(RoleSessionName="a_b+c=d,e.f@g-h")).session_name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("899", "Member must have value greater than or equal to 900"),
        ("43201", "Member must have value less than or equal to 43200"),
        ("soon", "Member must be an integer"),
    ],
)
def test_duration_seconds_rules(world: World, value: str, expected: str) -> None:
    error = refusal(world, params(DurationSeconds=value))
    assert error.code == "ValidationError"
    assert expected in error.message


def test_duration_above_the_roles_maximum_is_refused_after_trust(world: World) -> None:
    error = refusal(world, params(DurationSeconds="7200"))
    assert (error.code, error.status) == ("ValidationError", 400)
    assert error.message == (
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    )
    assert world.exchange.decide(params(DurationSeconds="900")).duration_seconds == 900


@pytest.mark.parametrize("length", [3, 20_001])
def test_token_length_limits_never_echo_the_token(world: World, length: int) -> None:
    secret = "s" * length
    error = refusal(world, params(WebIdentityToken=secret))
    assert error.code == "ValidationError"
    assert "Value at 'webIdentityToken' failed to satisfy constraint" in error.message
    assert secret not in error.message
    assert secret not in error.detail


def test_a_malformed_role_arn_is_refused(world: World) -> None:
    error = refusal(world, params(RoleArn="arn:aws:iam::123456789012:user/someone"))
    assert (error.code, error.message) == ("ValidationError", "Request ARN is invalid")


def test_garbage_cannot_be_parsed(world: World) -> None:
    error = refusal(world, params(WebIdentityToken="this-is-not-a-jwt"))
    assert (error.code, error.status, error.message) == (
        "InvalidIdentityToken",
        400,
        "Couldn't parse the token",
    )


def _unsigned(claims: Mapping[str, object], alg: str) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'kid': 'test-key-1'})}.{part(dict(claims))}."


def test_alg_none_is_refused_before_any_lookup(world: World) -> None:
    claims = {"iss": ISSUER, "sub": SUBJECT, "aud": "sts.amazonaws.com", "exp": NOW + 60}
    error = refusal(world, params(WebIdentityToken=_unsigned(claims, "none")))
    assert error.code == "InvalidIdentityToken"
    assert world.verifier.calls == []


def test_an_unregistered_issuer_is_named(world: World) -> None:
    other = make_token(issuer="https://evil.example", now=NOW)
    error = refusal(world, params(WebIdentityToken=other))
    assert error.code == "InvalidIdentityToken"
    assert (
        error.message == "No OpenIDConnect provider found in your account for https://evil.example"
    )


def test_an_http_issuer_never_matches_a_provider(world: World) -> None:
    plain = make_token(issuer="http://token.actions.githubusercontent.com", now=NOW)
    assert refusal(world, params(WebIdentityToken=plain)).message.startswith(
        "No OpenIDConnect provider found in your account for http://"
    )


def test_the_provider_is_looked_up_in_the_roles_account(world: World) -> None:
    error = refusal(world, params(RoleArn="arn:aws:iam::999999999999:role/ci-deploy"))
    assert error.code == "InvalidIdentityToken"
    assert error.message.startswith("No OpenIDConnect provider found in your account")


def test_wrong_audience(world: World) -> None:
    wrong = make_token(issuer=ISSUER, audience="not-sts", now=NOW)
    error = refusal(world, params(WebIdentityToken=wrong))
    assert (error.code, error.message) == ("InvalidIdentityToken", "Incorrect token audience")
    assert world.verifier.calls == []


def test_an_audience_list_matches_any_client_id(world: World) -> None:
    listed = make_token(issuer=ISSUER, audience=["x", "other-client"], now=NOW)
    assert world.exchange.decide(params(WebIdentityToken=listed)).audience == "other-client"


def test_expired_token_gets_stss_own_error(world: World) -> None:
    world.verifier.error = TokenVerificationError("token expired", check="expired")
    expired = make_token(issuer=ISSUER, now=NOW - 4000, lifetime=300)
    error = refusal(world, params(WebIdentityToken=expired))
    assert (error.code, error.status) == ("ExpiredTokenException", 400)
    assert error.message == (
        f"Token expired: current date/time {NOW} must be before the expiration date/time"
        f" {NOW - 3700}"
    )


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("signature", "Signature validation failed"),
        ("algorithm", "Unsupported signing algorithm"),
        ("audience", "Incorrect token audience"),
        ("format", "Couldn't parse the token"),
    ],
)
def test_verification_failures_map_to_invalid_identity_token(
    world: World, check: str, message: str
) -> None:
    world.verifier.error = TokenVerificationError("why", check=check)
    error = refusal(world, params())
    assert (error.code, error.status, error.message) == ("InvalidIdentityToken", 400, message)


def test_an_unreachable_issuer_is_an_idp_communication_error(world: World) -> None:
    try:
        raise NetworkError("cannot reach https://token.actions.githubusercontent.com")
    except NetworkError as cause:
        failure = IssuerError("cannot fetch the JWKS")
        failure.__cause__ = cause
    world.verifier.error = failure
    error = refusal(world, params())
    assert (error.code, error.status) == ("IDPCommunicationError", 400)


def test_an_unusable_jwks_is_an_invalid_identity_token(world: World) -> None:
    world.verifier.error = IssuerError("JWKS has no usable key")
    error = refusal(world, params())
    assert error.code == "InvalidIdentityToken"
    assert error.message.startswith(
        "Couldn't retrieve verification key from your identity provider"
    )


def test_a_missing_role_is_access_denied(world: World) -> None:
    error = refusal(world, params(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/nope"))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == "Not authorized to perform sts:AssumeRoleWithWebIdentity"


def test_a_role_path_must_match(world: World) -> None:
    error = refusal(world, params(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/team/ci-deploy"))
    assert error.code == "AccessDenied"


def test_trust_policy_deny_is_access_denied(world: World) -> None:
    world.evaluator.answer = TrustAnswer(allowed=False, reason="sub does not match")
    error = refusal(world, params())
    assert (error.code, error.status, error.detail) == ("AccessDenied", 403, "sub does not match")


def test_an_unevaluable_trust_policy_grants_nothing(world: World) -> None:
    world.evaluator.error = PolicyError("unknown operator")
    assert refusal(world, params()).code == "AccessDenied"


def test_decisions_are_logged_without_the_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyless.local.sts")
    good = token()
    world.exchange.decide(params(WebIdentityToken=good))
    world.evaluator.answer = TrustAnswer(allowed=False, reason="sub mismatch")
    with pytest.raises(StsError):
        world.exchange.decide(params(WebIdentityToken=good))
    allow, deny = (record.getMessage() for record in caplog.records)
    assert allow.startswith("allow AssumeRoleWithWebIdentity")
    assert deny.startswith("deny AssumeRoleWithWebIdentity")
    for line in (allow, deny):
        assert ROLE_ARN in line
        assert ISSUER in line
        assert SUBJECT in line
        assert good not in line
        assert good.split(".")[2] not in line
    assert "sub mismatch" in deny


@pytest.mark.parametrize(
    ("actions", "target", "expected"),
    [
        (["AssumeRoleWithWebIdentity"], None, "AssumeRoleWithWebIdentity"),
        (["assume_role_with_web_identity"], None, "AssumeRoleWithWebIdentity (spelled"),
        (["ListUsers", "assumeRoleWithWebIdentity"], None, "AssumeRoleWithWebIdentity (spelled"),
        ([], "AWSSecurityTokenServiceV20110615.AssumeRoleWithWebIdentity", "AssumeRole"),
        (["AssumeRoleWithSAML"], None, "AssumeRoleWithSAML"),
        (["ListUsers"], None, None),
        (["AssumeRole"], None, None),
    ],
)
def test_every_spelling_of_the_federation_actions_is_caught(
    actions: list[str], target: str | None, expected: str | None
) -> None:
    found = guarded_action(actions, target)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(expected)


def _identity(subject: str) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject=subject,
        audience=("sts.amazonaws.com",),
        expires_at=NOW + 300,
        claims={"iss": ISSUER, "sub": subject, "aud": "sts.amazonaws.com"},
    )


_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": PROVIDER_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
                    },
                    "StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/site:*"},
                },
            }
        ],
    }
)


def test_the_default_trust_evaluator_is_keyless_trust() -> None:
    def ask(subject: str, provider_arn: str = PROVIDER_ARN) -> TrustAnswer:
        return trust_evaluator(
            TrustQuestion(
                role_arn=ROLE_ARN,
                policy=_TRUST,
                provider_arn=provider_arn,
                identity=_identity(subject),
            )
        )

    assert ask(SUBJECT).allowed
    denied = ask("repo:acme/other:ref:refs/heads/main")
    assert not denied.allowed
    assert denied.reason
    assert not ask(SUBJECT, provider_arn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/elsewhere").allowed


def test_a_malformed_trust_policy_raises_a_keyless_error() -> None:
    with pytest.raises(PolicyError):
        trust_evaluator(
            TrustQuestion(
                role_arn=ROLE_ARN, policy="{", provider_arn=PROVIDER_ARN, identity=_identity("s")
            )
        )


# --- the gateway's cache of IAM ------------------------------------------------------------------


@dataclass
class CountingDirectory(FakeDirectory):
    asked: list[str] = field(default_factory=list)
    during_lookup: list[Callable[[], None]] = field(default_factory=list)

    def role(self, name: str) -> Role | None:
        self.asked.append(name)
        for action in self.during_lookup:
            action()
        return super().role(name)


def _role(policy: str = "{}") -> Role:
    return Role(arn=ROLE_ARN, trust_policy=policy, max_session_duration=3600)


def test_the_cache_answers_from_memory_until_iam_changes() -> None:
    directory = CountingDirectory(roles={"ci-deploy": _role()})
    cached = CachedDirectory(directory)
    assert cached.role("ci-deploy") == cached.role("ci-deploy") == _role()
    assert cached.role("absent") is None
    assert cached.role("absent") is None
    assert directory.asked == ["ci-deploy", "absent"]  # absent entities are kept too

    directory.roles["ci-deploy"] = _role('{"Statement": []}')
    directory.roles["absent"] = _role()
    cached.changed()
    assert cached.role("ci-deploy") == _role('{"Statement": []}')
    assert cached.role("absent") == _role()


def test_a_lookup_that_overlaps_a_change_is_not_kept() -> None:
    directory = CountingDirectory(roles={"ci-deploy": _role()})
    cached = CachedDirectory(directory)
    directory.during_lookup.append(cached.changed)
    cached.role("ci-deploy")
    directory.during_lookup.clear()
    cached.role("ci-deploy")
    assert directory.asked == ["ci-deploy", "ci-deploy"]


def test_the_cache_holds_at_most_its_limit() -> None:
    directory = CountingDirectory()
    cached = CachedDirectory(directory, max_entries=2)
    for name in ("a", "b", "c", "c"):
        cached.role(name)
    assert directory.asked == ["a", "b", "c", "c"]
