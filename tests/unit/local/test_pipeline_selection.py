"""Which pipeline a trigger starts, as Atlassian's "Pipeline start conditions" say: branches (an
exact name before globs), tags (no `default:` fallback), pull requests by source branch, custom
pipelines with their `variables:` asked for; and the file checked against the public schema first,
errors naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.local.pipeline import PipelineError, plan_pipeline
from keyless.local.pipeline.plan import PipelinePlan
from keyless.local.pipeline.schema import line_of, validate_pipeline_file

FILE = """\
pipelines:
  default:
    - step: {name: Default, script: [echo default]}
  branches:
    main:
      - step: {name: Main, script: [echo main]}
    'feature/*':
      - step: {name: Feature, script: [echo feature]}
    '{release,hotfix}/**':
      - step: {name: Release, script: [echo release]}
  tags:
    'v*':
      - step: {name: Tag, script: [echo tag]}
  pull-requests:
    'feature/**':
      - step: {name: PR, script: [echo pr]}
  custom:
    deploy:
      - variables:
          - name: ENVIRONMENT
            default: staging
            allowed-values: [staging, production]
          - name: REASON
      - step: {name: Custom, script: [echo custom]}
"""


def _checkout(folder: Path) -> tuple[str | None, str | None]:
    return "main", "a" * 40


def _plan(tmp_path: Path, text: str = FILE, **kwargs: object) -> PipelinePlan:
    path = tmp_path / "bitbucket-pipelines.yml"
    path.write_text(text)
    return plan_pipeline(
        path,
        identities=tmp_path / "ids.json",
        checkout=_checkout,
        **kwargs,  # type: ignore[arg-type]
    )


def _first(plan: PipelinePlan) -> str:
    return plan.groups[0][0].name


@pytest.mark.parametrize(
    ("branch", "step"),
    [
        ("main", "Main"),
        ("feature/x", "Feature"),
        ("feature/x/y", "Default"),  # `*` stays within a path segment
        ("release/1/2", "Release"),  # `**` crosses `/`, `{a,b}` is either
        ("hotfix/3", "Release"),
        ("other", "Default"),
    ],
)
def test_branches_select_by_exact_name_then_globs_else_default(
    tmp_path: Path, branch: str, step: str
) -> None:
    plan = _plan(tmp_path, branch=branch)
    assert _first(plan) == step
    assert plan.branch == branch


def test_a_tag_selects_under_tags_only(tmp_path: Path) -> None:
    plan = _plan(tmp_path, tag="v1.2")
    assert _first(plan) == "Tag"
    assert plan.branch is None
    # `default:` runs on every push "excluding tag pushes": an unmatched tag starts nothing.
    with pytest.raises(PipelineError, match=r"no pipeline for tag '1\.0'.*tags patterns: v\*"):
        _plan(tmp_path, tag="1.0")


def test_a_pull_request_selects_by_its_source_branch(tmp_path: Path) -> None:
    plan = _plan(tmp_path, pull_request="feature/a/b:main")
    assert _first(plan) == "PR"
    assert plan.trigger.destination == "main"
    assert plan.branch == "feature/a/b"
    assert 1 <= plan.pr_id <= 9999
    assert plan.pr_id == _plan(tmp_path, pull_request="feature/a/b:main").pr_id
    with pytest.raises(PipelineError, match=r"no pipeline for pull request 'bugfix'"):
        _plan(tmp_path, pull_request="bugfix:main")
    with pytest.raises(PipelineError, match=r"must be SOURCE:DEST"):
        _plan(tmp_path, pull_request="feature/a")
    with pytest.raises(PipelineError, match=r"give one of --branch, --tag"):
        _plan(tmp_path, pull_request="feature/a:main", tag="v1")


def test_custom_variables_are_asked_for(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"asks for variable REASON and none was given"):
        _plan(tmp_path, custom="deploy")
    plan = _plan(tmp_path, custom="deploy", values=["REASON=rollback"])
    assert plan.variables.for_step(None) == {"ENVIRONMENT": "staging", "REASON": "rollback"}
    assert plan.branch == "main"
    answers = tmp_path / "vars.yml"
    answers.write_text(
        "repository: {ENVIRONMENT: repo}\ncustom: {REASON: file, ENVIRONMENT: production}\n"
    )
    plan = _plan(tmp_path, custom="deploy", variables=answers)
    # The pipeline's answers win over the repository's variables.
    assert plan.variables.for_step(None) == {"ENVIRONMENT": "production", "REASON": "file"}
    plan = _plan(tmp_path, custom="deploy", variables=answers, values=["REASON=flag"])
    assert plan.variables.for_step(None)["REASON"] == "flag"
    with pytest.raises(PipelineError, match=r"ENVIRONMENT='dev' is not among its allowed-values"):
        _plan(tmp_path, custom="deploy", values=["REASON=x", "ENVIRONMENT=dev"])
    with pytest.raises(PipelineError, match=r"--var TYPO: pipeline custom: deploy has no such"):
        _plan(tmp_path, custom="deploy", values=["REASON=x", "TYPO=1"])
    with pytest.raises(PipelineError, match=r"--var TYPO: pipeline branches: main has no such"):
        _plan(tmp_path, branch="main", values=["TYPO=1"])
    with pytest.raises(PipelineError, match=r"must be NAME=VALUE"):
        _plan(tmp_path, custom="deploy", values=["REASON"])


def test_the_schema_refuses_the_file_naming_the_line(tmp_path: Path) -> None:
    broken = FILE.replace("[echo main]}", "[echo main], max-time: lots}")
    with pytest.raises(PipelineError) as caught:
        _plan(tmp_path, broken)
    message = caught.value.message
    assert "breaks the bitbucket-pipelines schema" in message
    assert "line 6: pipelines.branches.main.0.step.max-time: 'lots' is not of type" in message


def test_schema_paths_map_to_lines() -> None:
    import yaml

    root = yaml.compose(FILE, Loader=yaml.SafeLoader)
    assert line_of(root, ["pipelines", "tags", "v*"]) == 12
    assert line_of(root, ["pipelines", "custom", "deploy", 0, "variables", 1]) == 23
    # A path past the document stops at the deepest node it reaches.
    assert line_of(root, ["pipelines", "custom", "nope"]) == 17
    assert line_of(None, ["x"]) == 1


def test_without_check_jsonschema_the_check_is_skipped_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "bitbucket-pipelines.yml"
    path.write_text(FILE.replace("[echo main]}", "[echo main], max-time: lots}"))
    said: list[str] = []
    validate_pipeline_file(path, notice=said.append, schema=lambda: None)
    assert len(said) == 1
    assert "not checked against the bitbucket-pipelines schema" in said[0]


def test_a_step_with_services_is_refused_only_when_it_would_run(tmp_path: Path) -> None:
    text = FILE.replace("[echo feature]}", "[echo feature], services: [docker]}")
    assert _first(_plan(tmp_path, text, branch="main")) == "Main"
    with pytest.raises(PipelineError, match=r"step 'Feature' .* needs services \(docker\)"):
        _plan(tmp_path, text, branch="feature/x")
