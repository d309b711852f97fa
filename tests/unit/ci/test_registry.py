"""The registry and obtain_token: the documented order of sources, forcing, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.ci import (
    CI_PROVIDERS,
    PROVIDERS,
    get_provider,
    obtain_token,
    provider_for_issuer,
)
from keyless.ci.base import STANDARD_SAFE_CLAIMS
from keyless.ci_names import PROVIDER_NAMES
from keyless.errors import CredentialError, UsageError
from keyless.testing import NO_HTTP, ScriptedRunner, printed
from tests.jwt_factory import make_token


def _file(tmp_path: Path, name: str, token: str) -> str:
    path = tmp_path / name
    path.write_text(token)
    return str(path)


def test_registry_names_and_order() -> None:
    assert list(PROVIDERS) == [
        "bitbucket",
        "github",
        "gitlab",
        "circleci",
        "buildkite",
        "terraform",
        "file",
    ]
    assert [p.name for p in CI_PROVIDERS] == list(PROVIDERS)[:-1]
    for name, provider in PROVIDERS.items():
        assert get_provider(name) is provider
        assert provider.safe_claims >= STANDARD_SAFE_CLAIMS
        assert provider.aws_condition_claims <= provider.safe_claims
        assert provider.markers


def test_the_light_name_list_is_the_registry() -> None:
    # --ci's choices come from keyless.ci_names so that parsers need not import every CI.
    assert tuple(PROVIDERS) == PROVIDER_NAMES


def test_unknown_provider_is_a_usage_error_listing_the_choices() -> None:
    with pytest.raises(UsageError) as info:
        get_provider("jenkins")
    assert "'jenkins'" in info.value.message
    assert "bitbucket, github, gitlab, circleci, buildkite, terraform, file" in info.value.message


@pytest.mark.parametrize(
    ("issuer", "name"),
    [
        (
            "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc",
            "bitbucket",
        ),
        ("https://token.actions.githubusercontent.com", "github"),
        ("https://gitlab.com", "gitlab"),
        ("https://oidc.circleci.com/org/9f1f0d1e-0000-4000-8000-00000000abcd", "circleci"),
        ("https://agent.buildkite.com", "buildkite"),
        ("https://app.terraform.io", "terraform"),
        ("https://app.eu.terraform.io", "terraform"),
        ("https://issuer.example", None),
    ],
)
def test_provider_for_issuer(issuer: str, name: str | None) -> None:
    provider = provider_for_issuer(issuer)
    assert (provider.name if provider else None) == name


def test_explicit_token_file_comes_first(tmp_path: Path) -> None:
    token = make_token(subject="file")
    env = {"BITBUCKET_BUILD_NUMBER": "1", "BITBUCKET_STEP_OIDC_TOKEN": make_token()}
    obtained = obtain_token(env, token_file=_file(tmp_path, "t", token), http=NO_HTTP)
    assert (obtained.token, obtained.provider) == (token, "file")
    assert obtained.source.startswith("--token-file ")


def test_keyless_token_file_variable_comes_before_the_ci(tmp_path: Path) -> None:
    token = make_token(subject="file")
    env = {"GITLAB_CI": "true", "KEYLESS_TOKEN_FILE": _file(tmp_path, "t", token)}
    assert obtain_token(env, http=NO_HTTP).token == token


def test_detected_ci_comes_before_the_aws_token_file(tmp_path: Path) -> None:
    ci_token = make_token(subject="ci")
    env = {
        "BITBUCKET_BUILD_NUMBER": "1",
        "BITBUCKET_STEP_OIDC_TOKEN": ci_token,
        "AWS_WEB_IDENTITY_TOKEN_FILE": _file(tmp_path, "t", make_token(subject="aws")),
    }
    obtained = obtain_token(env, http=NO_HTTP)
    assert (obtained.token, obtained.provider) == (ci_token, "bitbucket")


def test_broken_ci_never_falls_back_to_the_aws_token_file(tmp_path: Path) -> None:
    env = {
        "BITBUCKET_BUILD_NUMBER": "1",
        "AWS_WEB_IDENTITY_TOKEN_FILE": _file(tmp_path, "t", make_token()),
    }
    with pytest.raises(CredentialError, match=r"^Bitbucket Pipelines: BITBUCKET_STEP_OIDC_TOKEN"):
        obtain_token(env, http=NO_HTTP)


def test_aws_token_file_outside_any_ci(tmp_path: Path) -> None:
    token = make_token()
    env = {"AWS_WEB_IDENTITY_TOKEN_FILE": _file(tmp_path, "t", token)}
    obtained = obtain_token(env, http=NO_HTTP)
    assert (obtained.token, obtained.provider) == (token, "file")
    assert obtained.source.startswith("AWS_WEB_IDENTITY_TOKEN_FILE ")


def test_nothing_applies_is_no_ci_detected_with_a_remedy() -> None:
    with pytest.raises(CredentialError) as info:
        obtain_token({"CI": "true"}, http=NO_HTTP)
    error = info.value
    assert error.message.startswith("no CI detected")
    assert "BITBUCKET_BUILD_NUMBER" in error.message
    assert error.remedy is not None
    assert "--ci NAME" in error.remedy
    assert "--token-file PATH" in error.remedy


def test_markers_of_two_cis_are_an_error_not_a_guess() -> None:
    env = {"GITHUB_ACTIONS": "true", "GITLAB_CI": "true"}
    with pytest.raises(
        CredentialError, match=r"several CIs detected \(GitHub Actions, GitLab CI\)"
    ):
        obtain_token(env, http=NO_HTTP)


def test_forcing_a_ci_settles_two_markers() -> None:
    token = make_token()
    env = {"GITHUB_ACTIONS": "true", "GITLAB_CI": "true", "GITLAB_OIDC_TOKEN": token}
    assert obtain_token(env, ci="gitlab", http=NO_HTTP).token == token


def test_forcing_a_ci_that_is_absent_names_its_markers() -> None:
    with pytest.raises(CredentialError) as info:
        obtain_token({}, ci="buildkite", http=NO_HTTP)
    assert info.value.message == "Buildkite: --ci buildkite was given, but none of BUILDKITE is set"


def test_forcing_file_reads_the_variables(tmp_path: Path) -> None:
    token = make_token()
    env = {"GITHUB_ACTIONS": "true", "AWS_WEB_IDENTITY_TOKEN_FILE": _file(tmp_path, "t", token)}
    assert obtain_token(env, ci="file", http=NO_HTTP).token == token


def test_forcing_an_unknown_ci_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown CI 'travis'"):
        obtain_token({}, ci="travis", http=NO_HTTP)


def test_token_file_with_another_forced_ci_is_a_contradiction(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="contradict"):
        obtain_token({}, ci="github", token_file=_file(tmp_path, "t", make_token()), http=NO_HTTP)


def test_token_env_reaches_gitlab() -> None:
    token = make_token()
    env = {"GITLAB_CI": "true", "DEPLOY_ID_TOKEN": token}
    obtained = obtain_token(env, token_env="DEPLOY_ID_TOKEN", http=NO_HTTP)
    assert (obtained.token, obtained.source) == (token, "DEPLOY_ID_TOKEN")


def test_token_env_elsewhere_is_refused_not_ignored() -> None:
    env = {"BITBUCKET_BUILD_NUMBER": "1", "BITBUCKET_STEP_OIDC_TOKEN": make_token()}
    with pytest.raises(UsageError, match="--token-env X applies to GitLab CI only"):
        obtain_token(env, token_env="X", http=NO_HTTP)


def test_runner_reaches_the_provider() -> None:
    token = make_token()
    runner = ScriptedRunner(result=printed(token))
    obtained = obtain_token({"BUILDKITE": "true"}, audience="aud", http=NO_HTTP, runner=runner)
    assert obtained.token == token
    assert runner.calls[0][-1] == "aud"


def test_ci_flag_comes_before_keyless_token_file_everywhere(tmp_path: Path) -> None:
    """`--ci github` with KEYLESS_TOKEN_FILE set: the flag wins (README order) in the one
    detection, so obtain_token asks GitHub and never reads the file."""
    from keyless.ci import detect

    token_file = _file(tmp_path, "token", make_token({}, issuer="https://issuer.example"))
    env = {"GITHUB_ACTIONS": "true", "KEYLESS_TOKEN_FILE": token_file}
    detection = detect(env, ci="github")
    assert detection.provider is PROVIDERS["github"]
    assert (detection.origin, detection.token_file) == ("--ci github", None)
    with pytest.raises(CredentialError) as info:
        obtain_token(env, ci="github", http=NO_HTTP)
    assert "id-token: write" in (info.value.remedy or "") + info.value.message
    # Without the flag the file comes first, before the GitHub markers.
    auto = detect(env)
    assert (auto.provider, auto.origin, auto.token_file) == (
        PROVIDERS["file"],
        "KEYLESS_TOKEN_FILE",
        token_file,
    )
    assert obtain_token(env, http=NO_HTTP).source.startswith("KEYLESS_TOKEN_FILE")
