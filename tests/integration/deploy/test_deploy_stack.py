"""``keyless deploy --role-arn`` as a Bitbucket step runs it, on the local stack: a role made by
``keyless provision --s3-deploy BUCKET/PREFIX --allow-delete``, the step's own token exchanged at
the STS gateway, every S3 request recorded there and checked against the role's policy as real AWS
would evaluate it (moto ignores the ``s3:prefix`` condition; ``tests.s3_authorization`` does not).

One stack for the module; the deploys run once, in order, as separate processes with the job's
environment (``keyless local run``'s), and the tests read what each step did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyless.aws.provision_state import INLINE_POLICY_NAME
from keyless.ci import bitbucket
from keyless.ci.base import JobRun
from keyless.ci.bitbucket import BitbucketScope
from keyless.cli.seams import Seams
from keyless.deploy.manifest import MANIFEST_NAME
from keyless.deploy.plan import DEFAULT_PART_SIZE
from keyless.local.run import JobProcess, job_process_environment
from keyless.local.stack import LocalStack, RunningStack
from keyless.trust.model import Policy, loads_policy
from tests.cli.helpers import run_cli
from tests.s3_authorization import S3Call, classify, refusals

pytestmark = pytest.mark.integration

BUCKET = "site-bucket"
PREFIX = "www"
ROLE_NAME = "site-deploy"
WORKSPACE_UUID = "0d9b4a1e-7f3c-4c2a-9b1e-5a6f7c8d9e01"
SCOPE = BitbucketScope(
    workspace="acme",
    workspace_uuid=WORKSPACE_UUID,
    repository_uuid="6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
)
#: Another repository of the same workspace: same issuer, same audience, another `sub`.
SIBLING = BitbucketScope(
    workspace="acme",
    workspace_uuid=WORKSPACE_UUID,
    repository_uuid="7b2a1d3f-4c5e-4f60-9b0a-1d2e3f4a5b6c",
)
#: Seconds one deploy process may take (a cold start on a busy 2-core machine included).
TIMEOUT_SECONDS = 120

SITE = {
    "index.html": b"<!doctype html><title>home</title>",
    "about/index.html": b"<!doctype html><title>about</title>",
    "assets/app.3f2a.js": b"console.log('app');",
    "assets/style.css": b"body{margin:0}",
    "img/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    "ünï côdé/a b+c.txt": b"names round-trip",
    # Above the part size: a multipart upload (create, parts, complete) under the role.
    "media/big.bin": b"\x07" * (DEFAULT_PART_SIZE + 1),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    code: int
    stdout: str
    stderr: str
    #: The S3 requests the process sent, as the gateway received them (STS excluded).
    calls: tuple[S3Call, ...]
    #: Every request the process sent, STS included: (method, path).
    requests: tuple[tuple[str, str], ...]
    #: The whole bucket afterwards, by key.
    stored: dict[str, bytes]

    @property
    def result(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document


@dataclass(kw_only=True)
class Recorder:
    """Requests reaching the gateway, by signing service; one deploy runs at a time."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def take(self) -> list[tuple[str, str, dict[str, str]]]:
        with self.lock:
            taken, self.seen = self.seen, []
        return taken


@dataclass(kw_only=True)
class Story:
    stack: RunningStack
    role_arn: str
    policy: Policy
    steps: dict[str, Step] = field(default_factory=dict)


def _s3(stack: RunningStack) -> Any:
    return stack.admin_session().client("s3", endpoint_url=stack.endpoint_url)


def keys(stack: RunningStack, prefix: str = "") -> dict[str, bytes]:
    s3 = _s3(stack)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed
    }


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _provision(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> str:
    assert stack.ci is not None
    issuer = stack.ci.issuer_for(bitbucket.PROVIDER, SCOPE)
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)

    def admin(region: str) -> boto3.Session:
        return stack.admin_session()

    result = run_cli(
        [
            "provision",
            "--ci",
            "bitbucket",
            "--workspace",
            SCOPE.workspace,
            "--workspace-uuid",
            SCOPE.workspace_uuid,
            "--repository-uuid",
            SCOPE.repository_uuid,
            "--issuer",
            issuer,
            "--ca-bundle",
            str(stack.ca_bundle),
            "--role-name",
            ROLE_NAME,
            "--s3-deploy",
            f"{BUCKET}/{PREFIX}",
            "--allow-delete",
            # Every step of the repository may deploy (the sibling test needs a repository
            # scope): lint grades that high, so it is allowed explicitly.
            "--allow-risky",
        ],
        seams=Seams(admin_session=admin),
    )
    assert result.code == 0, result.stderr
    return result.stdout.strip()


def _deploy(
    story: Story,
    recorder: Recorder,
    workdir: Path,
    site: Path,
    *args: str,
    scope: BitbucketScope = SCOPE,
    destination: str = f"s3://{BUCKET}/{PREFIX}",
) -> Step:
    """``keyless deploy SITE DEST --role-arn ROLE --json ARGS`` in a Bitbucket step of ``scope``,
    with the environment ``keyless local run`` gives a job (no AWS key in it)."""
    stack = story.stack
    assert stack.ci is not None
    job = stack.ci.job_environment(bitbucket.PROVIDER, scope, JobRun(build_number=42))
    workdir.mkdir()
    env = job_process_environment(
        os.environ,
        job,
        JobProcess(
            workdir=workdir,
            endpoint_url=stack.endpoint_url,
            region=stack.region,
            ca_bundle=stack.ca_bundle,
        ),
    )
    argv = [sys.executable, "-m", "keyless", "deploy", str(site), destination]
    recorder.take()
    done = subprocess.run(  # noqa: S603 - keyless itself; the token travels in env only
        [*argv, "--role-arn", story.role_arn, "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    seen = recorder.take()
    calls = tuple(
        classify(method, target, headers)
        for method, target, headers in seen
        if "/s3/aws4_request" in headers.get("Authorization", "")
    )
    return Step(
        code=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        calls=calls,
        requests=tuple((method, target.split("?")[0]) for method, target, _ in seen),
        stored=keys(stack),
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("deploy-stack")
    recorder = Recorder()

    def recording(method: str, target: str, headers: Mapping[str, str]) -> None:
        # Recorded as they arrive, before the gateway relays them to moto.
        with recorder.lock:
            recorder.seen.append((method, target, dict(headers)))

    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        LocalStack(ci_issuers=True, observe=recording) as stack,
    ):
        _s3(stack).create_bucket(Bucket=BUCKET)
        role_arn = _provision(stack, monkeypatch)
        document = stack.iam().get_role_policy(RoleName=ROLE_NAME, PolicyName=INLINE_POLICY_NAME)
        story = Story(
            stack=stack,
            role_arn=role_arn,
            policy=loads_policy(json.dumps(document["PolicyDocument"])),
        )
        recorder.take()  # the set-up's own requests are not a deploy's

        site = root / "site"
        _write(site, SITE)
        steps = story.steps

        def run(name: str, *args: str, **kw: Any) -> None:
            steps[name] = _deploy(story, recorder, root / name, site, *args, **kw)

        run("first")
        run("no-change")
        for rel in SITE:  # a rebuild: every file written anew, same bytes, newer mtimes
            (site / rel).unlink()
        _write(site, SITE)
        run("rebuild")
        edited = SITE["index.html"].replace(b"home", b"HOME")
        (site / "index.html").write_bytes(edited)
        run("same-size-edit")
        for rel in ("about/index.html", "assets/style.css", "img/logo.svg", "ünï côdé/a b+c.txt"):
            (site / rel).unlink()
        run("delete-guarded", "--delete")
        run("delete", "--delete", "--max-delete", "60")
        run("outside", destination=f"s3://{BUCKET}/elsewhere")
        run("sibling", scope=SIBLING)
        yield story


# --- what each step did -------------------------------------------------------------------------


def test_first_deploy_uploads_everything(story: Story) -> None:
    step = story.steps["first"]
    assert step.code == 0, step.stderr
    assert step.result["uploaded"] == len(SITE)
    assert step.result["bytes"] == sum(len(data) for data in SITE.values())
    assert {k: v for k, v in step.stored.items() if not k.endswith(MANIFEST_NAME)} == {
        f"{PREFIX}/{rel}": data for rel, data in SITE.items()
    }
    assert f"{PREFIX}/{MANIFEST_NAME}" in step.stored
    # The step assumed the role with its own token; the session is named after the build.
    assert f"assumed-role/{ROLE_NAME}/bitbucket-" in step.stderr
    assert "CreateMultipartUpload" in {call.operation for call in step.calls}


@pytest.mark.parametrize("name", ["no-change", "rebuild"])
def test_nothing_changed_sends_nothing(story: Story, name: str) -> None:
    step = story.steps[name]
    assert step.code == 0, step.stderr
    assert (step.result["uploaded"], step.result["copied"], step.result["bytes"]) == (0, 0, 0)
    assert step.result["unchanged"] == len(SITE)
    if name == "no-change":
        # The first run after a multipart upload proves that object's bytes by its ETag and
        # stores the manifest once more, with the CRC64NVME it read: no object is written.
        written = [call.key for call in step.calls if call.operation == "PutObject"]
        assert written == [f"{PREFIX}/{MANIFEST_NAME}"]
        assert {call.operation for call in step.calls} == {
            "GetObject",
            "ListObjectsV2",
            "PutObject",
        }
    else:
        # Not even the manifest: nothing but the listing and the manifest read went out.
        assert {call.operation for call in step.calls} == {"GetObject", "ListObjectsV2"}


def test_same_size_edit_sends_that_one_object(story: Story) -> None:
    step = story.steps["same-size-edit"]
    assert step.code == 0, step.stderr
    assert step.result["uploaded"] == 1
    assert step.result["plan"]["uploads"] == [
        {
            "key": f"{PREFIX}/index.html",
            "reason": "changed",
            "size": len(SITE["index.html"]),
            "headers": {"Content-Type": "text/html; charset=utf-8"},
        }
    ]


def test_delete_guard_then_delete(story: Story) -> None:
    guarded = story.steps["delete-guarded"]
    assert guarded.code == 2
    assert "error: refusing to delete 4 of 7 objects (57%), more than --max-delete 50%" in (
        guarded.stderr
    )
    assert "DeleteObjects" not in {call.operation for call in guarded.calls}
    deleted = story.steps["delete"]
    assert deleted.code == 0, deleted.stderr
    assert deleted.result["deleted"] == 4
    assert guarded.stored == story.steps["same-size-edit"].stored
    assert sorted(k.removeprefix(f"{PREFIX}/") for k in deleted.stored) == sorted(
        [MANIFEST_NAME, "index.html", "assets/app.3f2a.js", "media/big.bin"]
    )


def test_outside_the_prefix_is_access_denied_in_one_line(story: Story) -> None:
    step = story.steps["outside"]
    assert step.code == 2
    assumed, error, blank, *remedy = step.stderr.splitlines()
    assert assumed.startswith(f"keyless: assumed arn:aws:sts::{story.stack.account_id}:")
    assert error.startswith("error: upload of 'elsewhere/")
    assert "failed: AccessDenied (HTTP 403)" in error
    assert error.endswith("nothing deleted")
    assert blank == ""
    assert "s3:PutObject" in remedy[0]
    assert step.stored == story.steps["delete"].stored
    # On AWS the listing is refused first (moto does not evaluate s3:prefix): same verdict.
    listing = [call for call in step.calls if call.operation == "ListObjectsV2"]
    assert refusals(story.policy, listing) == [
        f"ListObjectsV2 {BUCKET} prefix='elsewhere/': s3:ListBucket on arn:aws:s3:::{BUCKET}"
        " with {'s3:prefix': 'elsewhere/'}"
    ]


def test_a_sibling_repositorys_token_is_refused_before_any_upload(story: Story) -> None:
    step = story.steps["sibling"]
    assert step.code == 2
    first = step.stderr.splitlines()[0]
    assert first.startswith(
        f"error: STS AssumeRoleWithWebIdentity for {story.role_arn} failed: AccessDenied"
    )
    # The exchange is the only request: no S3 call at all.
    assert step.calls == ()
    assert step.requests == (("POST", "/"),)
    assert step.stored == story.steps["outside"].stored


def test_every_s3_call_is_allowed_by_the_provisioned_preset(story: Story) -> None:
    allowed = ("first", "no-change", "rebuild", "same-size-edit", "delete-guarded", "delete")
    calls: list[S3Call] = []
    for name in allowed:
        for call in story.steps[name].calls:
            if call.operation == "DeleteObjects":
                # Its body names the keys; the deploy reports the same ones.
                planned = story.steps[name].result["plan"]["deletes"]
                call = S3Call(
                    operation=call.operation,
                    bucket=call.bucket,
                    keys=tuple(item["key"] for item in planned),
                )
            calls.append(call)
    operations = {call.operation for call in calls}
    assert "HeadBucket" not in operations
    assert {"ListObjectsV2", "GetObject", "PutObject", "DeleteObjects"} <= operations
    assert {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"} <= operations
    assert refusals(story.policy, calls) == []
    assert all(
        call.query.get("prefix") == f"{PREFIX}/"
        for call in calls
        if call.key is None and call.operation != "DeleteObjects"
    )


def test_delete_objects_is_authorized_per_key_as_on_aws(story: Story) -> None:
    """The local stack's moto asks for s3:DeleteObject on each key, as S3 does (moto alone asks
    for it on the bucket, which would refuse every delete of a prefix-limited role)."""
    stack = story.stack
    assert stack.ci is not None
    admin = _s3(stack)
    for key in ("www/doomed.txt", "elsewhere/kept.txt"):
        admin.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    token = stack.ci.mint(bitbucket.PROVIDER, SCOPE)
    credentials = stack.sts().assume_role_with_web_identity(
        RoleArn=story.role_arn, RoleSessionName="per-key", WebIdentityToken=token
    )["Credentials"]
    s3 = stack.session(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    ).client("s3", endpoint_url=stack.endpoint_url)
    answer = s3.delete_objects(
        Bucket=BUCKET,
        Delete={"Objects": [{"Key": "www/doomed.txt"}, {"Key": "elsewhere/kept.txt"}]},
    )
    assert [item["Key"] for item in answer.get("Deleted", [])] == ["www/doomed.txt"]
    assert [(e["Key"], e["Code"]) for e in answer.get("Errors", [])] == [
        ("elsewhere/kept.txt", "AccessDenied")
    ]
    assert "www/doomed.txt" not in keys(stack, "www/")
    assert "elsewhere/kept.txt" in keys(stack, "elsewhere/")
