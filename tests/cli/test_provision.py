"""keyless provision refuses bad or contradictory input before touching AWS, with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import NoCredentialsError

from keyless.cli.seams import Seams
from keyless.local.issuer import LocalIssuer
from tests.cli.helpers import run_cli
from tests.fixtures.issuer import BITBUCKET_PATH

UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
SCOPE = ["--ci", "bitbucket", "--workspace", "acme", "--workspace-uuid", UUID]
SCOPE += ["--repository-uuid", UUID]
BASE = ["provision", *SCOPE, "--role-name", "deploy", "--thumbprint", "a" * 40]


def _refuse(region: str) -> boto3.Session:
    raise AssertionError("a refused command must not reach AWS")


#: A refused command must not reach AWS: any session it asked for fails the test.
NO_AWS = Seams(admin_session=_refuse)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--s3-deploy", "Bad_Bucket"], "'Bad_Bucket' is not an S3 bucket name"),
        (["--s3-deploy", "b-1/x", "--tag", "novalue"], "--tag 'novalue' is not KEY=VALUE"),
        (["--s3-deploy", "b-1/x", "--tag", "a=1", "--tag", "a=2"], "the same key is given twice"),
        (["--s3-deploy", "b-1", "--max-session-duration", "60"], "'60' is not 3600..43200"),
        (["--s3-deploy", "b-1", "--permissions-boundary", "x"], "'x' is not a managed policy"),
        (["--s3-deploy", "b-1", "--cloudfront-distribution", "e1"], "'e1' is not a distribution"),
        (["--s3-deploy", "b-1", "--issuer", "http://x.example"], "is not an https URL"),
        (["--s3-deploy", "b-1", "--repository", "acme/site"], "--repository is a github flag"),
        (["--s3-deploy", "b-1", "--ca-bundle", "ca.pem"], "--ca-bundle only serves"),
    ],
)
def test_bad_input_is_refused_before_aws(extra: list[str], message: str) -> None:
    result = run_cli([*BASE, *extra], seams=NO_AWS)
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_preset_flags_belong_to_the_preset(tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": []}), encoding="utf-8")
    for flag in (["--allow-delete"], ["--cloudfront-distribution", "E1"]):
        result = run_cli([*BASE, "--policy", str(policy), *flag], seams=NO_AWS)
        assert result.code == 2
        assert f"{flag[0]} belongs to --s3-deploy" in result.stderr


def test_a_policy_or_a_preset_is_required_and_not_both(tmp_path: Path) -> None:
    assert (
        "one of the arguments --policy --s3-deploy is required"
        in run_cli(BASE, seams=NO_AWS).stderr
    )
    both = run_cli(
        [*BASE, "--policy", str(tmp_path / "p.json"), "--s3-deploy", "b-1"], seams=NO_AWS
    )
    assert both.code == 2
    assert "not allowed with argument" in both.stderr


def test_an_invalid_policy_file_names_the_problem(tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}),
        encoding="utf-8",
    )
    result = run_cli([*BASE, "--policy", str(policy)], seams=NO_AWS)
    assert result.code == 2
    assert f"--policy {policy}: Statement[0] has no Resource" in result.stderr


def test_no_credentials_is_an_error_with_a_remedy() -> None:
    class NoCredentials:
        def client(self, *args: object, **kwargs: object) -> NoCredentials:
            return self

        def get_caller_identity(self) -> None:
            raise NoCredentialsError

    seams = Seams(admin_session=lambda region: NoCredentials())  # type: ignore[arg-type,return-value]
    result = run_cli([*BASE, "--s3-deploy", "b-1/x"], seams=seams)
    assert result.code == 2
    assert "no AWS credentials found for the account to provision" in result.stderr
    assert "AWS_PROFILE" in result.stderr


def test_help_names_the_refusals_and_the_preset(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(["provision", "--help"], seams=NO_AWS)
    assert result.code == 0
    printed = capsys.readouterr().out  # argparse prints --help itself
    for text in ("--force", "--allow-risky", "s3:prefix", "--emit", "--dry-run"):
        assert text in printed


# --- the issuer URL: exactly the one its tokens carry ---------------------------------------------


def test_an_issuer_with_a_trailing_slash_is_refused_naming_the_exact_value(
    local_issuer: LocalIssuer,
) -> None:
    # Provisioning for real reads the issuer's discovery document (for the thumbprint) before
    # any AWS call; --emit works offline and reads nothing, so this is the apply path.
    issuer = local_issuer.issuer_url(BITBUCKET_PATH)
    argv = [*BASE[:-2], "--s3-deploy", "b-1", "--dry-run"]
    argv += ["--ca-bundle", str(local_issuer.ca_bundle), "--issuer", f"{issuer}/"]
    result = run_cli(argv, seams=NO_AWS)
    assert result.code == 2, result.stderr
    assert result.stdout == ""
    line = result.stderr.splitlines()[0]
    assert f"issuer {issuer}/ differs by a trailing '/' from {issuer}" in line
    assert line.endswith(f"pass exactly {issuer}")


def test_offline_a_trailing_slash_is_dropped_with_a_notice() -> None:
    argv = [*BASE, "--s3-deploy", "b-1", "--emit", "terraform"]
    result = run_cli([*argv, "--issuer", "https://ghes.example/_services/token/"], seams=NO_AWS)
    assert result.code == 0, result.stderr
    assert "using https://ghes.example/_services/token (" in result.stderr
    assert "https://ghes.example/_services/token/" not in result.stdout
    assert "ghes.example/_services/token" in result.stdout
