"""The repository ``keyless local pipeline`` runs as when --repository is not given: the last part
of the git remote's URL, else the file's folder; and the session name a step's token gets, which
never repeats the CI's name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from keyless.ci import bitbucket
from keyless.local.pipeline import git_checkout, plan_pipeline
from keyless.local.pipeline.plan import default_repository

PIPELINE = "pipelines:\n  default:\n    - step:\n        script:\n          - echo hi\n"


def _git(folder: Path, *argv: str) -> None:
    subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(folder), *argv],  # noqa: S607 - git from PATH
        check=True,
        capture_output=True,
    )


def _repo(folder: Path, *remotes: tuple[str, str]) -> Path:
    folder.mkdir()
    _git(folder, "init", "-q")
    for name, url in remotes:
        _git(folder, "remote", "add", name, url)
    (folder / "bitbucket-pipelines.yml").write_text(PIPELINE)
    return folder


@pytest.mark.parametrize(
    ("remotes", "slug"),
    [
        ((("origin", "git@bitbucket.org:acme/Site.git"),), "site"),
        ((("origin", "https://bitbucket.org/acme/site-www/"),), "site-www"),
        ((("upstream", "/srv/git/shop.git"),), "shop"),
        ((("origin", "https://x/acme/web.git"), ("fork", "https://x/me/other.git")), "web"),
        ((), "bitbucket"),  # no remote: the folder's name
    ],
)
def test_the_default_repository_is_the_remotes_slug_else_the_folder(
    tmp_path: Path, remotes: tuple[tuple[str, str], ...], slug: str
) -> None:
    folder = _repo(tmp_path / "bitbucket", *remotes)
    assert default_repository(folder) == slug
    plan = plan_pipeline(
        folder / "bitbucket-pipelines.yml", identities=tmp_path / "ids.json", checkout=git_checkout
    )
    assert plan.repository == slug


def test_outside_git_it_is_the_folders_name(tmp_path: Path) -> None:
    assert default_repository(tmp_path / "My Site") == "my-site"


def test_the_session_name_does_not_repeat_the_ci(tmp_path: Path) -> None:
    step = "{3f2a9c1d-0000-4000-8000-000000000001}"
    env = {"BITBUCKET_BUILD_NUMBER": "1", "BITBUCKET_STEP_UUID": step}
    named = bitbucket.PROVIDER.session_name({**env, "BITBUCKET_REPO_SLUG": "bitbucket"})
    assert named == "bitbucket-1-3f2a9c1d"
    site = bitbucket.PROVIDER.session_name({**env, "BITBUCKET_REPO_SLUG": "site"})
    assert site == "bitbucket-site-1-3f2a9c1d"
