"""Reading bitbucket-pipelines.yml as Bitbucket does (anchors, merges, default / branches / custom,
parallel, stages, oidc forms), choosing what runs, the variables and identities files, and the
shell a step's commands and pipes become."""

from __future__ import annotations

import io
import json
import signal
import subprocess
from pathlib import Path

import pytest

from keyless.local.pipeline import (
    PipeCall,
    PipelineError,
    git_checkout,
    load_pipeline_file,
    load_variables,
    plan_pipeline,
    resolve_identity,
    scope_flags,
    step_script,
)
from keyless.local.pipeline.run import run_commands
from keyless.local.pipeline.script import expandable

PIPELINE = """\
image: atlassian/default-image:4
options:
  oidc:
    audiences: [https://global.example]
definitions:
  steps:
    - step: &build
        name: Build
        oidc: false
        script:
          - make
    - step: &deploy
        name: Deploy
        oidc: true
        image:
          name: python:3.12
        script:
          - pipe: atlassian/aws-s3-deploy:1.1.0
            variables:
              S3_BUCKET: $BUCKET/site
              DEBUG: "true"
              RETRIES: "3"
          - echo done
pipelines:
  default:
    - step: *build
  branches:
    main:
      - step: *build
      - step:
          <<: *deploy
          deployment: production
    'release/*':
      - parallel:
          - step: *build
          - step:
              name: Lint
              script: [ruff check]
    '**/hotfix':
      - stage:
          name: Ship
          deployment: staging
          steps:
            - step: *deploy
            - step:
                name: Smoke
                odic: true
                services: [docker]
                trigger: manual
                script: [curl -f localhost]
  custom:
    redeploy:
      - variables:
          - name: BUCKET
            default: fallback
          - name: NO_DEFAULT
      - step:
          <<: *deploy
          deployment: production
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "repo" / "bitbucket-pipelines.yml"
    path.parent.mkdir()
    path.write_text(PIPELINE)
    return path


def test_anchors_merges_and_the_pipelines(pipeline: Path) -> None:
    file = load_pipeline_file(pipeline)
    assert file.default is not None
    assert [s.name for s in file.default.steps] == ["Build"]
    main = file.select(branch="main")
    assert main.key == "branches: main"
    build, deploy = main.steps
    assert (build.oidc, build.image) == (False, "atlassian/default-image:4")
    assert (deploy.oidc, deploy.deployment, deploy.image) == (True, "production", "python:3.12")
    pipe, echo = deploy.script
    assert echo == "echo done"
    assert isinstance(pipe, PipeCall)
    assert (pipe.name, pipe.emulated) == ("atlassian/aws-s3-deploy", "aws-s3-deploy")
    assert pipe.variables == {"S3_BUCKET": "$BUCKET/site", "DEBUG": "true", "RETRIES": "3"}


def test_oidc_from_options_parallel_groups_and_stages(pipeline: Path) -> None:
    file = load_pipeline_file(pipeline)
    release = file.select(branch="release/1.0")
    assert [[s.name for s in group] for group in release.groups] == [["Build", "Lint"]]
    lint = release.groups[0][1]
    # `options: oidc:` applies to steps that do not say.
    assert (lint.oidc, lint.audiences) == (True, ("https://global.example",))
    assert lint.notes == ()
    ship = file.select(branch="team/hotfix")
    assert [(s.name, s.deployment) for s in ship.steps] == [
        ("Deploy", "staging"),
        ("Smoke", "staging"),
    ]
    smoke = ship.steps[1]
    assert smoke.notes == ("unknown step keys ignored: odic",)
    assert smoke.services == ("docker",)
    assert smoke.manual


@pytest.mark.parametrize(
    ("branch", "key"),
    [
        ("main", "branches: main"),
        ("release/1.0", "branches: release/*"),
        ("release/1.0/x", "default"),  # `*` stays within one path segment
        ("a/b/hotfix", "branches: **/hotfix"),
        ("feature", "default"),
    ],
)
def test_the_branch_chooses_the_pipeline(pipeline: Path, branch: str, key: str) -> None:
    assert load_pipeline_file(pipeline).select(branch=branch).key == key


def test_custom_pipelines_and_their_variable_defaults(pipeline: Path, tmp_path: Path) -> None:
    plan = plan_pipeline(
        pipeline,
        identities=tmp_path / "ids.json",
        checkout=git_checkout,
        custom="redeploy",
        values=["NO_DEFAULT=given"],
    )
    assert plan.pipeline.key == "custom: redeploy"
    assert plan.variables.for_step(None) == {"BUCKET": "fallback", "NO_DEFAULT": "given"}
    with pytest.raises(PipelineError, match=r"no custom pipeline 'nope' \(custom pipelines: red"):
        plan_pipeline(
            pipeline, identities=tmp_path / "ids.json", checkout=git_checkout, custom="nope"
        )


def test_step_and_deployment_choose_the_steps(pipeline: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.json"
    plan = plan_pipeline(
        pipeline, identities=ids, checkout=git_checkout, branch="main", deployment="production"
    )
    assert [s.name for g in plan.groups for s in g] == ["Deploy"]
    assert plan.deployments == ("production",)
    assert plan.repository == "repo"  # the folder's name
    assert plan.clone_dir == pipeline.parent.resolve()
    plan = plan_pipeline(
        pipeline, identities=ids, checkout=git_checkout, branch="main", step="Build"
    )
    assert [s.name for g in plan.groups for s in g] == ["Build"]
    with pytest.raises(PipelineError) as caught:
        plan_pipeline(
            pipeline, identities=ids, checkout=git_checkout, branch="main", deployment="staging"
        )
    assert caught.value.message == (
        "pipeline branches: main has no step deploying to 'staging';"
        " its steps: Build; Deploy (deployment: production)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pipelines:\n  default: [\n", r"is not valid YAML \(line 3\)"),
        ("image: x\n", "has no `pipelines:` mapping"),
        ("pipelines: {}\n", "has no default, branches, tags, pull-requests or custom pipeline"),
        ("pipelines:\n  default:\n    - step: {name: x}\n", r"default\[0\].step.script must be"),
        ("pipelines:\n  default:\n    - stepp: {}\n", "is `stepp:`; expected step, parallel"),
        (
            "pipelines:\n  default:\n    - step: {oidc: yes please, script: [x]}\n",
            r"default\[0\].step.oidc must be true, false or \{audiences: \[...\]\}",
        ),
        (
            "pipelines:\n  default:\n    - step:\n        script:\n          - pipe: a/b:1\n"
            "            variables: {LIST: [1, 2]}\n",
            r"script\[0\].LIST must be a single value, not a list",
        ),
        (
            "pipelines:\n  default:\n    - step:\n        script:\n          - pipe: a/b:1\n"
            "            variables: {'BAD-NAME': x}\n",
            "'BAD-NAME' is not a variable name",
        ),
    ],
)
def test_a_broken_file_is_refused_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bitbucket-pipelines.yml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        load_pipeline_file(path)


def test_no_pipeline_for_the_branch(tmp_path: Path) -> None:
    path = tmp_path / "bitbucket-pipelines.yml"
    path.write_text("pipelines:\n  branches:\n    main:\n      - step: {script: [x]}\n")
    with pytest.raises(PipelineError, match="no pipeline for branch 'dev' and no `default:`"):
        load_pipeline_file(path).select(branch="dev")


def test_variables_deployment_over_repository_over_workspace(tmp_path: Path) -> None:
    path = tmp_path / "variables.yml"
    path.write_text(
        "workspace: {A: w, B: w, C: w}\n"
        "repository: {B: r, C: r, N: 5, T: true}\n"
        "deployments: {production: {C: d}}\n"
    )
    variables = load_variables(path)
    assert variables.for_step("production") == {"A": "w", "B": "r", "C": "d", "N": "5", "T": "true"}
    assert variables.for_step("staging")["C"] == "r"
    assert variables.for_step(None)["C"] == "r"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("repo: {A: b}\n", "expected the keys workspace, repository, deployments"),
        ("repository: {BITBUCKET_BRANCH: x}\n", "BITBUCKET_ variables are Bitbucket's own"),
        ("repository: [A]\n", "repository must be a mapping"),
        ("repository: {A: b\n", r"is not valid YAML \(line 2\)"),
    ],
)
def test_a_bad_variables_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "variables.yml"
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        load_variables(path)


def test_identities_are_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ids.json"
    first = resolve_identity(path, repository="site", deployments=("production",), new_build=True)
    again = resolve_identity(
        path, repository="site", deployments=("production", "staging"), new_build=True
    )
    other = resolve_identity(path, repository="other-site")
    assert (again.workspace, again.workspace_uuid) == (first.workspace, first.workspace_uuid)
    assert again.repository_uuid == first.repository_uuid
    assert again.environments["production"] == first.environments["production"]
    assert again.environments["staging"] != first.environments["production"]
    assert (first.build_number, again.build_number) == (1, 2)
    assert other.workspace_uuid == first.workspace_uuid
    assert other.repository_uuid != first.repository_uuid
    scope = again.scope("staging")
    assert scope.subject_pattern() == (
        f"{{{again.repository_uuid}}}:{{{again.environments['staging']}}}:*"
    )
    assert scope_flags(again, deployment="production", issuer=None) == [
        "--ci",
        "bitbucket",
        "--workspace",
        "local-workspace",
        "--workspace-uuid",
        first.workspace_uuid,
        "--repository-uuid",
        first.repository_uuid,
        "--environment-uuid",
        first.environments["production"],
    ]
    document = json.loads(path.read_text())
    assert document["repositories"]["site"]["builds"] == 2


def test_a_broken_identities_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    path.write_text('{"version": 1, "workspace": {"slug": "w", "uuid": "not-a-uuid"}}')
    with pytest.raises(PipelineError, match="is not a keyless identities file") as caught:
        resolve_identity(path, repository="site")
    assert caught.value.remedy is not None
    assert f"Remove {path}" in caught.value.remedy
    with pytest.raises(PipelineError, match="is not a slug"):
        resolve_identity(tmp_path / "new.json", repository="Not A Slug")


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed program, our own script
        ["bash", "--noprofile", "--norc", "-c", script],  # noqa: S607 - bash from PATH
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_pipe_variables_expand_names_only(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    value = f'$BUCKET/${{PREFIX}}-$(touch {marker})-`touch {marker}`-\\"-$-$1-${{X:-y}}'
    done = _bash(f"printf '%s' {expandable(value)}", BUCKET="b", PREFIX="p")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f'b/p-$(touch {marker})-`touch {marker}`-\\"-$-$1-${{X:-y}}'
    assert not marker.exists()


def test_a_step_script_runs_in_one_shell_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    progress = tmp_path / "progress"
    script = step_script(["export A=1", 'echo "a=$A"', "false", "echo never"], progress=progress)
    done = _bash(script)
    assert done.returncode == 1
    assert done.stdout == '+ export A=1\n+ echo "a=$A"\na=1\n+ false\n'
    assert progress.read_text() == "2"


def test_a_pipe_keyless_does_not_emulate_fails_its_command(tmp_path: Path) -> None:
    pipe = PipeCall(ref="atlassian/slack-notify:2.0.0", variables={"WEBHOOK_URL": "x"})
    assert pipe.emulated is None
    done = _bash(step_script([pipe, "echo after"], progress=tmp_path / "progress"))
    assert done.returncode == 2
    assert "pipe atlassian/slack-notify is not emulated" in done.stderr
    assert "after" not in done.stdout


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("atlassian/aws-s3-deploy:1.1.0", "atlassian/aws-s3-deploy"),
        ("atlassian/aws-s3-deploy", "atlassian/aws-s3-deploy"),
        ("docker://acme/pipe:2", "acme/pipe"),
        ("registry.example:5000/acme/pipe:2", "registry.example:5000/acme/pipe"),
    ],
)
def test_pipe_names(ref: str, name: str) -> None:
    assert PipeCall(ref=ref, variables={}).name == name


def test_max_time_ends_the_whole_step(tmp_path: Path) -> None:
    log = io.StringIO()
    started = tmp_path / "started"
    code, at, output, timed_out = run_commands(
        ["echo start", f"(sleep 30; echo late) & touch {started}; wait"],
        env={"PATH": "/usr/bin:/bin"},
        workdir=tmp_path,
        cwd=tmp_path,
        log=log,
        masks={},
        max_seconds=0.5,
    )
    assert timed_out
    assert code == 128 + signal.SIGTERM
    assert at == 1
    assert started.exists()
    assert output == log.getvalue()
    assert "\nlate\n" not in output
