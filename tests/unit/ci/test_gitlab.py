"""GitLab CI: the id_tokens variable, its default names, and the refusal of CI_JOB_JWT_V2."""

from __future__ import annotations

import pytest

from keyless.ci.gitlab import DEFAULT_TOKEN_VARIABLES
from keyless.ci.gitlab import PROVIDER as gitlab
from keyless.errors import CredentialError
from keyless.testing import NO_HTTP
from tests.jwt_factory import make_token

JOB = {"GITLAB_CI": "true", "CI_SERVER_URL": "https://gitlab.example.com"}


def _token(audience: str = "https://gitlab.example.com") -> str:
    return make_token(
        {"project_path": "grp/app", "ref": "main", "ref_type": "branch"},
        issuer="https://gitlab.example.com",
        audience=audience,
        subject="project_path:grp/app:ref_type:branch:ref:main",
    )


def test_not_in_gitlab_is_none() -> None:
    assert gitlab.obtain({"GITLAB_OIDC_TOKEN": _token()}, audience=None, http=NO_HTTP) is None
    assert gitlab.obtain({"GITLAB_CI": "false"}, audience=None, http=NO_HTTP) is None


def test_default_order_is_documented() -> None:
    assert DEFAULT_TOKEN_VARIABLES == (
        "KEYLESS_OIDC_TOKEN",
        "GITLAB_OIDC_TOKEN",
        "AWS_OIDC_TOKEN",
        "OIDC_TOKEN",
        "ID_TOKEN",
    )


@pytest.mark.parametrize("name", DEFAULT_TOKEN_VARIABLES)
def test_each_default_name_is_found(name: str) -> None:
    token = _token()
    obtained = gitlab.obtain({**JOB, name: token}, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source, obtained.provider) == (token, name, "gitlab")


def test_the_same_token_under_two_names_is_no_ambiguity() -> None:
    token = _token()
    env = {**JOB, "GITLAB_OIDC_TOKEN": token, "ID_TOKEN": token}
    obtained = gitlab.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert obtained.source == "GITLAB_OIDC_TOKEN"


def test_different_tokens_under_default_names_need_a_choice() -> None:
    env = {**JOB, "GITLAB_OIDC_TOKEN": _token(), "AWS_OIDC_TOKEN": _token("sts.amazonaws.com")}
    with pytest.raises(CredentialError) as info:
        gitlab.obtain(env, audience=None, http=NO_HTTP)
    assert info.value.message.startswith("GitLab CI: several ID token variables are set")
    assert "--token-env" in info.value.message


def test_audience_picks_the_matching_variable() -> None:
    aws = _token("sts.amazonaws.com")
    env = {**JOB, "GITLAB_OIDC_TOKEN": _token(), "AWS_OIDC_TOKEN": aws}
    obtained = gitlab.obtain(env, audience="sts.amazonaws.com", http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (aws, "AWS_OIDC_TOKEN")


def test_audience_no_variable_has_is_refused_with_the_yaml_fix() -> None:
    with pytest.raises(CredentialError) as info:
        gitlab.obtain(
            {**JOB, "GITLAB_OIDC_TOKEN": _token()}, audience="sts.amazonaws.com", http=NO_HTTP
        )
    error = info.value
    assert error.message.startswith("GitLab CI: none of GITLAB_OIDC_TOKEN has audience")
    assert error.remedy is not None
    assert "GITLAB_OIDC_TOKEN:\n        aud: sts.amazonaws.com" in error.remedy


def test_named_variable_wins_over_defaults() -> None:
    mine = _token("sts.amazonaws.com")
    env = {**JOB, "KEYLESS_TOKEN_ENV": "DEPLOY_TOKEN", "DEPLOY_TOKEN": mine, "ID_TOKEN": _token()}
    obtained = gitlab.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert (obtained.token, obtained.source) == (mine, "DEPLOY_TOKEN")


def test_named_variable_missing_is_an_error_naming_it() -> None:
    env = {**JOB, "KEYLESS_TOKEN_ENV": "DEPLOY_TOKEN", "ID_TOKEN": _token()}
    with pytest.raises(CredentialError) as info:
        gitlab.obtain(env, audience=None, http=NO_HTTP)
    error = info.value
    assert error.message.startswith("GitLab CI: DEPLOY_TOKEN (named by --token-env")
    assert error.remedy is not None
    assert "id_tokens:\n      DEPLOY_TOKEN:" in error.remedy


def test_named_variable_with_the_wrong_audience_is_refused() -> None:
    env = {**JOB, "KEYLESS_TOKEN_ENV": "DEPLOY_TOKEN", "DEPLOY_TOKEN": _token()}
    with pytest.raises(CredentialError, match="cannot issue another audience"):
        gitlab.obtain(env, audience="sts.amazonaws.com", http=NO_HTTP)


def test_job_without_id_tokens_is_an_error_with_the_yaml_fix() -> None:
    with pytest.raises(CredentialError) as info:
        gitlab.obtain(JOB, audience=None, http=NO_HTTP)
    error = info.value
    assert error.message.startswith("GitLab CI: no ID token variable is set")
    assert "GITLAB_OIDC_TOKEN" in error.message
    assert error.remedy is not None
    assert "id_tokens:\n      KEYLESS_OIDC_TOKEN:\n        aud: https://gitlab.example.com" in (
        error.remedy
    )


@pytest.mark.parametrize("deprecated", ["CI_JOB_JWT_V2", "CI_JOB_JWT"])
def test_deprecated_job_jwt_is_refused_not_used(deprecated: str) -> None:
    token = _token()
    with pytest.raises(CredentialError) as info:
        gitlab.obtain({**JOB, deprecated: token}, audience=None, http=NO_HTTP)
    error = info.value
    assert error.message.startswith(f"GitLab CI: {deprecated} is deprecated")
    assert error.remedy is not None
    assert "id_tokens:" in error.remedy
    assert token not in error.diagnostics()


def test_deprecated_job_jwt_is_refused_even_when_named() -> None:
    env = {**JOB, "KEYLESS_TOKEN_ENV": "CI_JOB_JWT_V2", "CI_JOB_JWT_V2": _token()}
    with pytest.raises(CredentialError, match="CI_JOB_JWT_V2 is deprecated"):
        gitlab.obtain(env, audience=None, http=NO_HTTP)


def test_deprecated_job_jwt_is_ignored_when_an_id_token_exists() -> None:
    token = _token()
    env = {**JOB, "CI_JOB_JWT_V2": _token("other"), "GITLAB_OIDC_TOKEN": token}
    obtained = gitlab.obtain(env, audience=None, http=NO_HTTP)
    assert obtained is not None
    assert obtained.token == token


@pytest.mark.parametrize(
    ("issuer", "owned"),
    [
        ("https://gitlab.com", True),
        ("https://gitlab.example.com", True),
        ("https://gitlab.com/", True),
        ("https://code.example.com", False),
        ("http://gitlab.com", False),
        ("https://gitlab.com/some/path", False),
        ("https://evilgitlab.com", False),
    ],
)
def test_owns_issuer(issuer: str, owned: bool) -> None:
    assert gitlab.owns_issuer(issuer) is owned


def test_printable_claims_leave_out_personal_data() -> None:
    assert {"project_path", "ref", "environment"} <= gitlab.safe_claims
    assert not {"user_email", "user_identities"} & gitlab.safe_claims
    assert gitlab.aws_condition_claims == frozenset()
