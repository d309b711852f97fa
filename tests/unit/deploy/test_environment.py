"""A deploy reads its AWS configuration from the environment without boto3 only when the
environment decides all of it; anything else goes to botocore."""

from __future__ import annotations

from pathlib import Path

from keyless.deploy.environment import EnvironmentKeys, ending, environment_session


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAKEYLESSTEST00000",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "absent-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent-credentials"),
    }
    env.update(extra)
    return env


def test_environment_alone_gives_keys_region_endpoint_and_bundle(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        AWS_SESSION_TOKEN="tok",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:10",
        AWS_CA_BUNDLE="/ca.pem",
    )
    session = environment_session(env)
    assert session is not None
    keys = session.get_credentials()
    assert (keys.access_key, keys.secret_key, keys.token) == (
        "AKIAKEYLESSTEST00000",
        "not-a-secret",
        "tok",
    )
    assert session.region_name == "eu-west-1"
    assert session.configured_endpoint() == "http://127.0.0.1:10"  # the S3-specific one wins
    assert session.ca_bundle == "/ca.pem"
    assert "not-a-secret" not in repr(keys)
    assert environment_session(env, region_name="us-west-2").region_name == "us-west-2"  # type: ignore[union-attr]
    ignored = environment_session({**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "True"})
    assert ignored is not None
    assert ignored.configured_endpoint() is None


def test_anything_botocore_would_resolve_otherwise_goes_to_botocore(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    assert environment_session(_env(tmp_path, AWS_CONFIG_FILE=str(config))) is None
    assert environment_session(_env(tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(config))) is None
    assert environment_session(_env(tmp_path, AWS_PROFILE="deploy")) is None
    assert environment_session(_env(tmp_path, AWS_SECRET_ACCESS_KEY="")) is None
    assert environment_session(_env(tmp_path, AWS_CREDENTIAL_EXPIRATION="tomorrow")) is None


def test_credentials_with_an_end_stop_the_deploy_within_the_margin(tmp_path: Path) -> None:
    session = environment_session(_env(tmp_path, AWS_CREDENTIAL_EXPIRATION="2030-01-01T00:00:00Z"))
    assert session is not None
    keys = session.get_credentials()
    end = keys.expires_at
    assert end is not None
    assert ending(keys, clock=lambda: end - 3600) is None
    assert "end in 60 s" in (ending(keys, clock=lambda: end - 60) or "")
    assert ending(EnvironmentKeys(access_key="a", secret_key="b")) is None
