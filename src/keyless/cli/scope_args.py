"""The ``--ci NAME`` scope flags of each CI, for every command that pins a role to one scope.

``add_scope_arguments(parser)`` adds them; ``scope_from_args(args)`` builds the CI's ``Scope``
and refuses flags that belong to another CI, so a typo never silently widens a scope.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from keyless.ci.base import Scope
from keyless.ci.bitbucket import BitbucketScope
from keyless.ci.buildkite import BuildkiteScope
from keyless.ci.circleci import CircleCIScope
from keyless.ci.github import GitHubScope
from keyless.ci.gitlab import DEFAULT_URL, GitLabScope, RefType
from keyless.errors import UsageError

__all__ = ["CI_NAMES", "SCOPE_HELP", "add_scope_arguments", "scope_from_args"]

#: The CIs a scope can be given for, as ``--ci`` names.
CI_NAMES = ("bitbucket", "github", "gitlab", "circleci", "buildkite")

#: For an epilog: which flags each CI takes.
SCOPE_HELP = """\
Scope flags (--ci NAME chooses which apply; [..] optional):
  bitbucket  --workspace SLUG --workspace-uuid UUID --repository-uuid UUID
             [--environment-uuid UUID]
  github     --repository OWNER/REPO [--ref REF | --environment NAME]
             [--owner-id N --repository-id N]
  gitlab     --project GROUP/PROJECT [--ref NAME] [--ref-type branch|tag] [--gitlab-url URL]
  circleci   --org-id UUID --project-id UUID
  buildkite  --organization SLUG --pipeline SLUG [--branch NAME]"""

#: Flag -> (destination, the CIs it belongs to).
_FLAGS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "--workspace": ("workspace", ("bitbucket",)),
    "--workspace-uuid": ("workspace_uuid", ("bitbucket",)),
    "--repository-uuid": ("repository_uuid", ("bitbucket",)),
    "--environment-uuid": ("environment_uuid", ("bitbucket",)),
    "--repository": ("repository", ("github",)),
    "--ref": ("ref", ("github", "gitlab")),
    "--environment": ("environment", ("github",)),
    "--owner-id": ("owner_id", ("github",)),
    "--repository-id": ("repository_id", ("github",)),
    "--project": ("project", ("gitlab",)),
    "--ref-type": ("ref_type", ("gitlab",)),
    "--gitlab-url": ("gitlab_url", ("gitlab",)),
    "--org-id": ("org_id", ("circleci",)),
    "--project-id": ("project_id", ("circleci",)),
    "--organization": ("organization", ("buildkite",)),
    "--pipeline": ("pipeline", ("buildkite",)),
    "--branch": ("branch", ("buildkite",)),
}


def add_scope_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ci NAME`` and every CI's scope flags, in one group per CI."""
    parser.add_argument(
        "--ci",
        required=True,
        choices=CI_NAMES,
        metavar="NAME",
        help=f"the CI: {', '.join(CI_NAMES)}",
    )
    bitbucket = parser.add_argument_group("Bitbucket scope (--ci bitbucket)")
    bitbucket.add_argument("--workspace", metavar="SLUG", help="workspace slug (in the issuer URL)")
    bitbucket.add_argument("--workspace-uuid", metavar="UUID", help="workspace UUID (the audience)")
    bitbucket.add_argument("--repository-uuid", metavar="UUID", help="repository UUID")
    bitbucket.add_argument(
        "--environment-uuid", metavar="UUID", help="deployment environment UUID (deploy roles)"
    )
    github = parser.add_argument_group("GitHub scope (--ci github)")
    github.add_argument("--repository", metavar="OWNER/REPO", help="the repository")
    github.add_argument(
        "--ref",
        metavar="REF",
        help="GitHub: branch or refs/tags/TAG; GitLab: branch or tag name",
    )
    github.add_argument("--environment", metavar="NAME", help="deployment environment")
    github.add_argument(
        "--owner-id", metavar="N", help="owner id: use the immutable subject (with --repository-id)"
    )
    github.add_argument("--repository-id", metavar="N", help="repository id (with --owner-id)")
    gitlab = parser.add_argument_group("GitLab scope (--ci gitlab)")
    gitlab.add_argument("--project", metavar="GROUP/PROJECT", help="project path")
    gitlab.add_argument(
        "--ref-type", choices=[t.value for t in RefType], help="kind of --ref (default: branch)"
    )
    gitlab.add_argument(
        "--gitlab-url", metavar="URL", help=f"instance URL, the issuer (default: {DEFAULT_URL})"
    )
    circleci = parser.add_argument_group("CircleCI scope (--ci circleci)")
    circleci.add_argument("--org-id", metavar="UUID", help="organization ID")
    circleci.add_argument("--project-id", metavar="UUID", help="project ID")
    buildkite = parser.add_argument_group("Buildkite scope (--ci buildkite)")
    buildkite.add_argument("--organization", metavar="SLUG", help="organization slug")
    buildkite.add_argument("--pipeline", metavar="SLUG", help="pipeline slug")
    buildkite.add_argument("--branch", metavar="NAME", help="branch")


def _refuse_foreign(args: argparse.Namespace, ci: str) -> None:
    for flag, (dest, owners) in _FLAGS.items():
        if ci not in owners and getattr(args, dest, None) is not None:
            names = " and ".join(owners)
            raise UsageError(f"{flag} is a {names} flag; it does not apply to --ci {ci}")


def _require(args: argparse.Namespace, ci: str, *flags: str) -> dict[str, str]:
    missing = [flag for flag in flags if getattr(args, _FLAGS[flag][0], None) is None]
    if missing:
        raise UsageError(
            f"--ci {ci} needs {' '.join(missing)}",
            remedy=SCOPE_HELP,
        )
    return {_FLAGS[flag][0]: getattr(args, _FLAGS[flag][0]) for flag in flags}


def scope_from_args(args: argparse.Namespace) -> Scope:
    """The ``Scope`` of ``args.ci`` from its flags; ``UsageError`` naming what is missing or
    does not belong."""
    ci: str = args.ci
    _refuse_foreign(args, ci)
    if ci == "bitbucket":
        given = _require(args, ci, "--workspace", "--workspace-uuid", "--repository-uuid")
        return BitbucketScope(**given, environment_uuid=args.environment_uuid)
    if ci == "github":
        given = _require(args, ci, "--repository")
        return GitHubScope(
            **given,
            ref=args.ref,
            environment=args.environment,
            owner_id=args.owner_id,
            repository_id=args.repository_id,
        )
    if ci == "gitlab":
        given = _require(args, ci, "--project")
        return GitLabScope(
            **given,
            ref=args.ref,
            ref_type=RefType(args.ref_type) if args.ref_type else None,
            url=args.gitlab_url or DEFAULT_URL,
        )
    if ci == "circleci":
        return CircleCIScope(**_require(args, ci, "--org-id", "--project-id"))
    given = _require(args, ci, "--organization", "--pipeline")
    return BuildkiteScope(**given, branch=args.branch)
