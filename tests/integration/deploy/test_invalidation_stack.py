"""``keyless deploy --invalidate`` as a GitHub job runs it on the local stack, with roles made by
``keyless provision``: the README's role (``--s3-deploy`` only) may not invalidate, and a role
provisioned for a distribution that does not exist meets CloudFront's NoSuchDistribution. Either
way the objects are deployed, the upload summary comes first, then one error naming the
distribution and the fix, and the exit code is 2."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from tests.integration.local.provisioning import KEYLESS, TIMEOUT_SECONDS, program_env

pytestmark = pytest.mark.integration

REPOSITORY = "octo-org/site"
BUCKET = "acme-site"
DISTRIBUTION = "E2EXAMPLE123"


def _keyless(
    *argv: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - keyless itself
        [str(KEYLESS), *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, StackInfo]]:
    with served_stack(state_dir=tmp_path_factory.mktemp("state")) as (running, info):
        s3 = running.admin_session().client("s3", endpoint_url=running.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        yield running, info


def _provision(running: RunningStack, info: StackInfo, role: str, *extra: str) -> str:
    issuer = dict(info.issuer_variables)["KEYLESS_LOCAL_GITHUB_ISSUER"]
    done = _keyless(
        *("provision", "--ci", "github", "--repository", REPOSITORY, "--environment", "production"),
        *("--role-name", role),
        *("--s3-deploy", f"{BUCKET}/{role}", "--issuer", issuer),
        *("--ca-bundle", str(info.ca_bundle), *extra),
        env=program_env(**running.environment(admin=True)),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _deploy_in_job(
    info: StackInfo, site: Path, role_arn: str, prefix: str
) -> subprocess.CompletedProcess[str]:
    deploy = [str(KEYLESS), "deploy", str(site), f"s3://{BUCKET}/{prefix}"]
    return _keyless(
        *("local", "run", "--state", str(info.state_dir), "--ci", "github"),
        *("--repository", REPOSITORY, "--environment", "production", "--"),
        *deploy,
        *("--role-arn", role_arn, "--invalidate", DISTRIBUTION),
        env=program_env(),
    )


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_text("home")
    return site


def _objects(running: RunningStack, prefix: str) -> list[str]:
    s3 = running.admin_session().client("s3", endpoint_url=running.endpoint_url)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/").get("Contents", [])
    return sorted(item["Key"] for item in listed)


def _error_after_summary(stderr: str) -> str:
    lines = stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("uploaded 1 ("))
    return lines[summary + 1]


def test_a_role_without_the_distribution_may_not_invalidate_it(
    stack: tuple[RunningStack, StackInfo], tmp_path: Path
) -> None:
    running, info = stack
    role_arn = _provision(running, info, "no-cdn")
    done = _deploy_in_job(info, _site(tmp_path), role_arn, "no-cdn")
    assert done.returncode == 2, done.stderr
    assert _error_after_summary(done.stderr) == (
        "error: deployed, but not invalidated:"
        f" not allowed to invalidate CloudFront distribution '{DISTRIBUTION}'"
    )
    assert f"--cloudfront-distribution {DISTRIBUTION}" in done.stderr
    assert "The objects are deployed" in done.stderr
    assert _objects(running, "no-cdn") == ["no-cdn/.keyless-manifest.json.gz", "no-cdn/index.html"]


def test_a_distribution_that_does_not_exist_is_named(
    stack: tuple[RunningStack, StackInfo], tmp_path: Path
) -> None:
    running, info = stack
    role_arn = _provision(running, info, "cdn", "--cloudfront-distribution", DISTRIBUTION)
    done = _deploy_in_job(info, _site(tmp_path), role_arn, "cdn")
    assert done.returncode == 2, done.stderr
    assert _error_after_summary(done.stderr) == (
        "error: deployed, but not invalidated:"
        f" CloudFront distribution '{DISTRIBUTION}' does not exist in this account"
    )
    assert "no such bucket" not in done.stderr
    assert _objects(running, "cdn") == ["cdn/.keyless-manifest.json.gz", "cdn/index.html"]
