"""`keyless local pipeline` against one served stack: the recipe's pipe-style pipeline deploys, the
same step without `oidc: true` fails with the remedy even with keys at hand, another repository
is refused, a pipe keyless does not emulate stops the step, and each step has Bitbucket's
variables, its own token (masked in the log) and stable identities."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless.ci import bitbucket
from keyless.local.pipeline import resolve_identity
from keyless.local.served import StackInfo, served_stack
from keyless.local.stack import RunningStack
from tests.cli.helpers import Result, run_cli
from tests.integration.local.provisioning import (
    BUCKET,
    checkout,
    create_bucket,
    keys,
    program_env,
    provision,
)

pytestmark = pytest.mark.integration

ROLE = "site-deploy"
PREFIX = "site"


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    stack: RunningStack
    info: StackInfo
    identities: Path
    role_arn: str
    folder: Path

    def variables(self, path: Path, **repository: str) -> Path:
        document = {
            "repository": {"AWS_OIDC_ROLE_ARN": self.role_arn, **repository},
            "deployments": {"production": {"S3_BUCKET": f"{BUCKET}/{PREFIX}"}},
        }
        path.write_text(json.dumps(document))
        return path

    def pipeline(self, file: Path, *argv: str, repository: str = "site") -> Result:
        return run_cli(
            [
                "local",
                "pipeline",
                str(file),
                "--state",
                str(self.info.state_dir),
                "--identities",
                str(self.identities),
                "--repository",
                repository,
                "--branch",
                "main",
                *argv,
            ],
            env=program_env(),
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("pipeline")
    with served_stack(state_dir=folder / "state") as (stack, info):
        identities = folder / "identities.json"
        identity = resolve_identity(identities, repository="site", deployments=("production",))
        role_arn = provision(
            stack,
            bitbucket.PROVIDER,
            identity.scope("production"),
            role=ROLE,
            prefix=PREFIX,
        )
        create_bucket(stack)
        yield Served(
            stack=stack, info=info, identities=identities, role_arn=role_arn, folder=folder
        )


def _write(folder: Path, text: str) -> Path:
    path = folder / "bitbucket-pipelines.yml"
    path.write_text(text)
    return path


def test_the_pipe_style_pipeline_deploys(served: Served, tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    variables = served.variables(tmp_path / "variables.yml")
    result = served.pipeline(repo / "bitbucket-pipelines.yml", "--variables", str(variables))
    assert result.code == 0, result.stdout + result.stderr
    log = result.stdout
    assert "=== Step 1/2: Check the site" in log
    assert "=== Step 2/2: Deploy to S3 (deployment: production)" in log
    assert "+ pipe: atlassian/aws-s3-deploy:1.1.0" in log
    assert f"assumed-role/{ROLE}/bitbucket-site-" in log
    assert "Step 'Deploy to S3' PASSED" in log
    assert log.rstrip().splitlines()[-1].startswith("Pipeline PASSED: 2 of 2 steps")
    assert keys(served.stack, PREFIX) == ["404.html", "css/site.css", "index.html"]
    assert "eyJ" not in log + result.stderr  # no token, whole or in part

    again = served.pipeline(
        repo / "bitbucket-pipelines.yml",
        "--deployment",
        "production",
        "--variables",
        str(variables),
    )
    assert again.code == 0, again.stdout
    assert "=== Step 1/1: Deploy to S3" in again.stdout
    assert "uploaded 0 (0 B)" in again.stdout


def test_without_oidc_the_step_fails_with_the_remedy_not_with_keys(
    served: Served, tmp_path: Path
) -> None:
    repo = checkout(tmp_path)
    pipeline = repo / "bitbucket-pipelines.yml"
    text = pipeline.read_text()
    assert "        oidc: true\n" in text
    # The step of old: no `oidc: true`, the keys as repository variables, passed to the pipe.
    text = text.replace("        oidc: true\n", "").replace(
        "              LOCAL_PATH: site\n",
        "              LOCAL_PATH: site\n"
        "              AWS_ACCESS_KEY_ID: $AWS_ACCESS_KEY_ID\n"
        "              AWS_SECRET_ACCESS_KEY: $AWS_SECRET_ACCESS_KEY\n",
    )
    pipeline.write_text(text)
    admin = served.stack.admin
    variables = served.variables(
        tmp_path / "variables.yml",
        AWS_ACCESS_KEY_ID=admin.access_key_id,
        AWS_SECRET_ACCESS_KEY=admin.secret_access_key,
    )
    before = keys(served.stack, PREFIX)
    result = served.pipeline(pipeline, "--deployment", "production", "--variables", str(variables))
    assert result.code == 2
    log = result.stdout
    assert "OIDC: no token (the step has no `oidc: true`)" in log
    assert "BITBUCKET_STEP_OIDC_TOKEN is not set in this step" in log
    assert "oidc: true" in log.split("BITBUCKET_STEP_OIDC_TOKEN is not set", 1)[1]
    assert "Step 'Deploy to S3' FAILED" in log
    assert admin.secret_access_key not in log + result.stderr
    assert keys(served.stack, PREFIX) == before


def test_another_repository_of_the_workspace_is_refused(served: Served, tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    variables = served.variables(tmp_path / "variables.yml")
    result = served.pipeline(
        repo / "bitbucket-pipelines.yml",
        "--variables",
        str(variables),
        repository="other-site",
    )
    assert result.code == 2
    assert "AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity" in result.stdout
    assert "Pipeline FAILED at step 'Deploy to S3'" in result.stdout
    assert "1 of 2 steps passed" in result.stdout


def test_a_pipe_keyless_does_not_emulate_stops_the_step(served: Served, tmp_path: Path) -> None:
    pipeline = _write(
        tmp_path,
        """\
pipelines:
  default:
    - step:
        name: Notify
        script:
          - echo before
          - pipe: atlassian/slack-notify:2.0.0
            variables:
              WEBHOOK_URL: $SLACK_WEBHOOK
          - echo after
    - step:
        name: Never
        script:
          - echo never
""",
    )
    result = served.pipeline(pipeline)
    assert result.code == 2
    log = result.stdout
    assert "before\n" in log
    assert "pipe atlassian/slack-notify is not emulated" in log
    assert "after\n" not in log
    assert "never" not in log.replace("Never", "")
    assert "Pipeline FAILED at step 'Notify': pipe atlassian/slack-notify is not emulated" in log


def test_a_step_has_bitbucket_variables_its_token_and_stable_identities(
    served: Served, tmp_path: Path
) -> None:
    pipeline = _write(
        tmp_path,
        """\
definitions:
  steps:
    - step: &show
        name: Show
        oidc:
          audiences:
            - https://audience.example
        script:
          - export CARRIED=over
          - echo "carried $CARRIED"
          - echo "token $BITBUCKET_STEP_OIDC_TOKEN"
          - keyless token --json > "$RESULTS/claims.json"
          - env | grep -E '^(BITBUCKET_|GREETING=|PLACE=)' | sort
pipelines:
  custom:
    show:
      - variables:
          - name: PLACE
            default: here
      - step:
          <<: *show
          deployment: staging
""",
    )
    variables = tmp_path / "variables.yml"
    variables.write_text(
        "workspace: {GREETING: workspace}\n"
        f"repository: {{GREETING: repository, RESULTS: {json.dumps(str(tmp_path))}}}\n"
        "deployments: {staging: {GREETING: staging}}\n"
    )
    first = served.pipeline(pipeline, "--custom", "show", "--variables", str(variables))
    assert first.code == 0, first.stdout + first.stderr
    log = first.stdout
    assert "carried over" in log
    assert "token $BITBUCKET_STEP_OIDC_TOKEN" in log  # masked
    found = dict(re.findall(r"^(BITBUCKET_[A-Z_]+|GREETING|PLACE)=(.*)$", log, re.MULTILINE))
    identity = resolve_identity(served.identities, repository="site", deployments=("staging",))
    assert found["GREETING"] == "staging"
    assert found["PLACE"] == "here"
    assert found["BITBUCKET_BRANCH"] == "main"
    assert found["BITBUCKET_REPO_SLUG"] == "site"
    assert found["BITBUCKET_REPO_FULL_NAME"] == f"{identity.workspace}/site"
    assert found["BITBUCKET_GIT_HTTP_ORIGIN"] == f"http://bitbucket.org/{identity.workspace}/site"
    assert found["BITBUCKET_GIT_SSH_ORIGIN"] == f"git@bitbucket.org:/{identity.workspace}/site.git"
    assert found["BITBUCKET_REPO_OWNER_UUID"] == "{" + identity.workspace_uuid + "}"
    assert re.fullmatch(r"\{[0-9a-f-]{36}\}", found["BITBUCKET_STEP_TRIGGERER_UUID"])
    assert found["BITBUCKET_WORKSPACE"] == identity.workspace
    assert found["BITBUCKET_REPO_UUID"] == "{" + identity.repository_uuid + "}"
    assert found["BITBUCKET_DEPLOYMENT_ENVIRONMENT"] == "staging"
    env_uuid = "{" + identity.environments["staging"] + "}"
    assert found["BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID"] == env_uuid
    # Each step runs in a fresh clone of its own, not in the folder of the file.
    clone_dir = Path(found["BITBUCKET_CLONE_DIR"])
    assert clone_dir.name == "build"
    assert not clone_dir.exists()
    assert "BITBUCKET_STEP_OIDC_TOKEN" in found
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert claims["claims"]["sub"].startswith(f"{{{identity.repository_uuid}}}:{env_uuid}:{{")
    assert claims["claims"]["aud"] == [
        f"ari:cloud:bitbucket::workspace/{identity.workspace_uuid}",
        "https://audience.example",
    ]
    assert claims["claims"]["pipelineUuid"] == found["BITBUCKET_PIPELINE_UUID"]
    build = int(found["BITBUCKET_BUILD_NUMBER"])

    second = served.pipeline(pipeline, "--custom", "show", "--variables", str(variables))
    again = dict(re.findall(r"^(BITBUCKET_[A-Z_]+)=(.*)$", second.stdout, re.MULTILINE))
    assert again["BITBUCKET_REPO_UUID"] == found["BITBUCKET_REPO_UUID"]
    assert again["BITBUCKET_DEPLOYMENT_ENVIRONMENT_UUID"] == env_uuid
    assert again["BITBUCKET_STEP_UUID"] != found["BITBUCKET_STEP_UUID"]
    assert int(again["BITBUCKET_BUILD_NUMBER"]) == build + 1

    scope = served.pipeline(
        pipeline, "--custom", "show", "--deployment", "staging", "--print-scope"
    )
    assert scope.code == 0, scope.stderr
    assert scope.stdout.split() == [
        "--ci",
        "bitbucket",
        "--workspace",
        identity.workspace,
        "--workspace-uuid",
        identity.workspace_uuid,
        "--repository-uuid",
        identity.repository_uuid,
        "--environment-uuid",
        identity.environments["staging"],
        "--issuer",
        f"{served.info.servers['bitbucket']}/2.0/workspaces/{identity.workspace}"
        "/pipelines-config/identity/oidc",
    ]


def test_a_failing_command_ends_the_step_after_script_runs_later_steps_do_not(
    served: Served, tmp_path: Path
) -> None:
    pipeline = _write(
        tmp_path,
        """\
pipelines:
  default:
    - step:
        name: Build
        script:
          - echo one
          - exit 7
          - echo unreachable
        after-script:
          - echo "after with $BITBUCKET_EXIT_CODE"
    - step:
        name: Deploy
        script:
          - echo deploying
""",
    )
    result = served.pipeline(pipeline)
    assert result.code == 7
    log = result.stdout
    assert "+ exit 7" in log
    assert "unreachable" not in log.replace("+ echo unreachable", "")
    # Atlassian documents BITBUCKET_EXIT_CODE as 0 (success) or 1 (failed), not the raw code.
    assert "after with 1" in log
    assert "Step 'Build' FAILED" in log
    assert "`exit 7` exited with 7" in log
    assert "deploying" not in log


def test_errors_in_the_file_or_the_selection_are_refused_before_anything_runs(
    served: Served, tmp_path: Path
) -> None:
    broken = _write(tmp_path, "pipelines:\n  default:\n    - step:\n        script: [echo, [x]\n")
    result = served.pipeline(broken)
    assert result.code == 2
    assert "is not valid YAML (line" in result.stderr
    fine = _write(tmp_path, "pipelines:\n  default:\n    - step:\n        script: [echo hi]\n")
    result = served.pipeline(fine, "--step", "Nope")
    assert result.code == 2
    assert "has no step named 'Nope'; its steps: Build" in result.stderr
    assert result.stdout == ""


def test_without_a_running_stack_a_temporary_one_runs_the_pipeline(tmp_path: Path) -> None:
    pipeline = _write(
        tmp_path,
        "pipelines:\n  default:\n    - step:\n        oidc: true\n"
        "        script:\n          - keyless token --show-claims\n",
    )
    result = run_cli(
        ["local", "pipeline", str(pipeline), "--state", str(tmp_path / "state")],
        env=program_env(),
    )
    assert result.code == 0, result.stdout + result.stderr
    assert "starting a temporary one" in result.stderr
    assert "workspaces/local-workspace/pipelines-config/identity/oidc" in result.stdout
    # The identities stay in the state folder; the stack's files do not.
    assert (tmp_path / "state" / "bitbucket-identities.json").is_file()
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "eyJ" not in result.stdout + result.stderr
    assert "temporary, empty stack" not in result.stderr  # said only when a job fails


def test_a_failed_pipeline_on_a_temporary_stack_says_the_stack_has_no_role(
    tmp_path: Path,
) -> None:
    pipeline = _write(
        tmp_path,
        "pipelines:\n  default:\n    - step:\n        oidc: true\n        script:\n"
        "          - keyless assume --role-arn arn:aws:iam::123456789012:role/site-deploy"
        " --format json > /dev/null\n",
    )
    result = run_cli(
        ["local", "pipeline", str(pipeline), "--state", str(tmp_path / "state")],
        env=program_env(),
    )
    assert result.code == 2, result.stdout + result.stderr  # the failed step's exit code
    assert "No OpenIDConnect provider found" in result.stdout
    first = result.stderr.splitlines()[0]
    assert "starting a temporary one. It is empty (no OIDC provider, role or bucket)" in first
    last = result.stderr.splitlines()[-1]
    assert "this ran on a temporary, empty stack" in last
    assert "`keyless local serve`" in last
    assert "`keyless provision" in last


def test_secured_variables_are_masked_in_every_byte_and_manual_steps_stop(
    served: Served, tmp_path: Path
) -> None:
    from tests import secret_scan

    secret = "s3cr3t-" + "9f2c4e1a7b"
    deploy_secret = "d3pl0y-" + "5e8a0c3d"
    for value in (secret, deploy_secret):
        secret_scan.register(value)
    pipeline = _write(
        tmp_path,
        """\
pipelines:
  default:
    - step:
        name: Leak
        oidc: true
        deployment: production
        script:
          - echo "plain=$PLAIN secret=$DB_PASSWORD deploy=$DEPLOY_KEY"
          - echo "$DB_PASSWORD" >&2
          - echo "token=$BITBUCKET_STEP_OIDC_TOKEN"
          - echo "b64=$(printf %s "$DB_PASSWORD" | base64)"
        after-script:
          - echo "after $DB_PASSWORD $BITBUCKET_EXIT_CODE"
    - step:
        name: Approve
        trigger: manual
        script:
          - echo approved
""",
    )
    variables = tmp_path / "variables.yml"
    variables.write_text(
        json.dumps(
            {
                "repository": {
                    "PLAIN": "visible",
                    "DB_PASSWORD": {"value": secret, "secured": True},
                },
                "deployments": {
                    "production": {"DEPLOY_KEY": {"value": deploy_secret, "secured": True}}
                },
            }
        )
    )
    variables.chmod(0o600)
    result = served.pipeline(pipeline, "--variables", str(variables))
    assert result.code == 0, result.stderr
    emitted = result.stdout + result.stderr
    # Every byte emitted: no secured value, no token (the scanner checks the same, by register).
    assert secret not in emitted
    assert deploy_secret not in emitted
    assert "plain=visible secret=$DB_PASSWORD deploy=$DEPLOY_KEY" in emitted
    assert "token=$BITBUCKET_STEP_OIDC_TOKEN" in emitted
    assert "after $DB_PASSWORD 0" in emitted
    # As in Bitbucket, only the value itself is masked: an encoding of it is not.
    import base64

    assert f"b64={base64.b64encode(secret.encode()).decode()}" in emitted
    assert "is `trigger: manual`: the pipeline stops here" in emitted
    assert "approved" not in emitted.replace("echo approved", "")
    manual = served.pipeline(pipeline, "--variables", str(variables), "--manual")
    assert manual.code == 0
    assert "\napproved\n" in manual.stdout
