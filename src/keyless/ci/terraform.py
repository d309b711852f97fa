"""HCP Terraform / Terraform Enterprise: a run gets its workload identity token in
``TFC_WORKLOAD_IDENTITY_TOKEN`` (and ``TFC_WORKLOAD_IDENTITY_TOKEN_<TAG>``) when the workspace
sets ``TFC_WORKLOAD_IDENTITY_AUDIENCE`` (``..._<TAG>``).

Facts: docs/ci-tokens.md#terraform (HashiCorp "Workload identity" and "Dynamic provider
credentials: AWS").
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keyless.arn import parse_role_arn
from keyless.ci._claims import token_audiences
from keyless.ci.base import (
    STANDARD_SAFE_CLAIMS,
    JobClaims,
    JobRun,
    JobTokens,
    ObtainedToken,
    Runner,
    ScopeOption,
    SegmentRole,
    SubjectGrammar,
    SubjectSegment,
    TrustCondition,
    TrustSpec,
    compose_session_name,
    iam_literal,
    stable_number,
)
from keyless.ci.shared import CiBase
from keyless.errors import CredentialError, UsageError
from keyless.fsutil import write_secret_file

if TYPE_CHECKING:
    from pathlib import Path

    from keyless.http import HttpClient

#: The variable of the run's default token, and the prefix of its tagged variants.
TOKEN_VARIABLE = "TFC_WORKLOAD_IDENTITY_TOKEN"  # noqa: S105 (a variable name)
AUDIENCE_VARIABLE = "TFC_WORKLOAD_IDENTITY_AUDIENCE"
#: The audience HCP Terraform's native AWS integration requests unless
#: ``TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE`` says otherwise.
DEFAULT_AUDIENCE = "aws.workload.identity"
DEFAULT_URL = "https://app.terraform.io"
#: HCP Terraform's own hosts (US and EU); Terraform Enterprise runs on the customer's host.
_ISSUER = re.compile(r"https://app\.(eu\.)?terraform\.io")
RUN_PHASES = ("plan", "apply")
#: Tags of ``TFC_WORKLOAD_IDENTITY_AUDIENCE_<TAG>``: letters, digits and underscores.
_TAG = re.compile(r"[A-Za-z0-9_]+")

_MISSING_REMEDY = f"""\
HCP Terraform puts a workload identity token in {TOKEN_VARIABLE} only when the workspace sets
the environment variable {AUDIENCE_VARIABLE} (for AWS: {DEFAULT_AUDIENCE}); a second token for
another audience comes from {AUDIENCE_VARIABLE}_<TAG> as {TOKEN_VARIABLE}_<TAG>.
For the AWS provider itself, set TFC_AWS_PROVIDER_AUTH=true and TFC_AWS_RUN_ROLE_ARN instead.
"""

#: `organization:O:project:P:workspace:W:run_phase:plan|apply` (docs/ci-tokens.md#terraform).
#: Organizations share the issuer; project and workspace names are chosen inside one.
SUBJECT_GRAMMAR = SubjectGrammar(
    segments=(
        SubjectSegment(
            literal="organization:",
            field="organization",
            role=SegmentRole.TENANT,
            example="zz-probe-org",
        ),
        SubjectSegment(
            literal=":project:", field="project", role=SegmentRole.REPOSITORY, example="zz-probe"
        ),
        SubjectSegment(
            literal=":workspace:",
            field="workspace",
            role=SegmentRole.REPOSITORY,
            example="zz-probe",
        ),
        SubjectSegment(
            literal=":run_phase:", field="run phase", role=SegmentRole.CONTEXT, example="plan"
        ),
    )
)

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: Project names may hold spaces ("Default Project"), never `:`.
_PROJECT = re.compile(r"[^:*?$\s][^:*?$]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class TerraformScope:
    """A workspace of a project of an organization, and the run phase trusted (apply by
    default: plans run for pull requests)."""

    organization: str
    project: str
    workspace: str
    run_phase: str = "apply"
    url: str = DEFAULT_URL

    def __post_init__(self) -> None:
        for what, value, shape in (
            ("organization", self.organization, _NAME),
            ("workspace", self.workspace, _NAME),
            ("project", self.project, _PROJECT),
        ):
            if not shape.fullmatch(value):
                raise UsageError(f"HCP Terraform {what} {value!r} is not a {what} name")
        if self.run_phase not in RUN_PHASES:
            raise UsageError(f"HCP Terraform run phase {self.run_phase!r}: choose plan or apply")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/"):
            raise UsageError(f"Terraform URL {self.url!r} is not an https host URL")

    @property
    def issuer(self) -> str:
        return self.url.rstrip("/")

    def subject(self) -> str:
        return (
            f"organization:{self.organization}:project:{self.project}"
            f":workspace:{self.workspace}:run_phase:{self.run_phase}"
        )

    def trust_spec(self) -> TrustSpec:
        who = f"Only {self.run_phase} runs of the workspace {self.workspace!r}." + (
            " Plans, which pull requests trigger, get another role."
            if self.run_phase == "apply"
            else " Give this role read-only permissions: anyone who can open a pull"
            " request on the workspace's repository can trigger a plan."
        )
        return TrustSpec(
            provider=PROVIDER.name,
            issuer=self.issuer,
            conditions=(
                TrustCondition(operator="StringEquals", claim="aud", values=(DEFAULT_AUDIENCE,)),
                TrustCondition(
                    operator="StringEquals", claim="sub", values=(iam_literal(self.subject()),)
                ),
            ),
            notes=(who,),
        )


class Terraform(CiBase[TerraformScope]):
    name = "terraform"
    short_name = "Terraform"
    scope_type = TerraformScope
    display_name = "HCP Terraform"
    markers: tuple[str, ...] = (TOKEN_VARIABLE, AUDIENCE_VARIABLE)
    # HCP Terraform is not among the issuers for which STS exposes extra claims
    # (docs/aws-sts-iam.md#condition-keys): `sub` and `aud` only.
    aws_condition_claims: frozenset[str] = frozenset()
    safe_claims: frozenset[str] = STANDARD_SAFE_CLAIMS | {
        "jti",
        "terraform_full_workspace",
        "terraform_organization_id",
        "terraform_organization_name",
        "terraform_project_id",
        "terraform_project_name",
        "terraform_run_id",
        "terraform_run_phase",
        "terraform_workspace_id",
        "terraform_workspace_name",
    }
    # app.terraform.io (and a Terraform Enterprise host) mints tokens for every organization.
    shared_issuer = True
    issuer_shape = _ISSUER
    subject_grammar = SUBJECT_GRAMMAR

    scope_options: tuple[ScopeOption, ...] = (
        # --organization, --project and --workspace are declared (with help) by the CIs whose
        # groups come first.
        ScopeOption(flag="--organization", dest="organization", required=True),
        ScopeOption(flag="--project", dest="project", required=True),
        ScopeOption(flag="--workspace", dest="workspace", required=True),
        ScopeOption(
            flag="--run-phase",
            dest="run_phase",
            choices=RUN_PHASES,
            help="HCP Terraform run phase trusted (default: apply)",
        ),
        ScopeOption(
            flag="--terraform-url",
            dest="url",
            metavar="URL",
            help=f"HCP Terraform or Terraform Enterprise URL, the issuer (default: {DEFAULT_URL})",
        ),
    )
    scope_usage: tuple[str, ...] = (
        "--organization ORG --project PROJECT --workspace NAME [--run-phase plan|apply]",
        "[--terraform-url URL]",
    )

    def scope_from_values(self, values: Mapping[str, str | None]) -> TerraformScope:
        return TerraformScope(
            organization=values["organization"] or "",
            project=values["project"] or "",
            workspace=values["workspace"] or "",
            run_phase=values.get("run_phase") or "apply",
            url=values.get("url") or DEFAULT_URL,
        )

    def in_ci(self, env: Mapping[str, str]) -> bool:
        # A run has no "this is HCP Terraform" flag of its own; its token variables are it.
        return any(
            name == TOKEN_VARIABLE or name.startswith(TOKEN_VARIABLE + "_")
            for name, value in env.items()
            if value.strip()
        ) or bool(env.get(AUDIENCE_VARIABLE, "").strip())

    def owns_issuer(self, issuer: str) -> bool:
        return _ISSUER.fullmatch(issuer.rstrip("/")) is not None

    def obtain(
        self,
        env: Mapping[str, str],
        *,
        audience: str | None,
        http: HttpClient,
        runner: Runner | None = None,
    ) -> ObtainedToken | None:
        if not self.in_ci(env):
            return None
        tagged = (n for n in env if n.startswith(TOKEN_VARIABLE + "_"))
        names = [TOKEN_VARIABLE, *sorted(n for n in tagged if _TAG.fullmatch(n[28:]))]
        found = [self.checked(env[n], source=n) for n in names if env.get(n, "").strip()]
        if not found:
            raise CredentialError(
                f"{self.display_name}: {TOKEN_VARIABLE} is not set in this run",
                remedy=_MISSING_REMEDY,
            )
        if audience is None:
            return found[0]
        for obtained in found:
            if audience in token_audiences(obtained, display_name=self.display_name):
                return obtained
        raise CredentialError(
            f"{self.display_name}: no token of this run has the audience {audience!r}",
            remedy=f"Set {AUDIENCE_VARIABLE}_<TAG>={audience} in the workspace; the run then gets"
            f" {TOKEN_VARIABLE}_<TAG>.",
        )

    def session_name(self, env: Mapping[str, str]) -> str | None:
        return compose_session_name(
            "terraform", env.get("TFC_WORKSPACE_NAME"), env.get("TFC_RUN_ID", "")[-8:] or None
        )

    # --- keyless doctor -----------------------------------------------------------------------

    def guess_from_subject(self, subject: str) -> bool:
        return subject.startswith("organization:") and ":workspace:" in subject

    def renew_hint(self) -> str | None:
        return "HCP Terraform mints a new token for every plan and apply: start a new run."

    def audience_hint(self) -> str | None:
        return (
            f"The workspace chooses the audience: {AUDIENCE_VARIABLE} (and _<TAG> variants);"
            f" the native AWS integration asks for {DEFAULT_AUDIENCE} unless"
            " TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE is set."
        )

    # --- the local stack ----------------------------------------------------------------------

    def claims_for(
        self, scope: TerraformScope, run: JobRun, *, audiences: Sequence[str] = ()
    ) -> JobClaims:
        return token_claims(scope, run, audience=audiences[0] if audiences else DEFAULT_AUDIENCE)

    def environment_for(
        self,
        scope: TerraformScope,
        run: JobRun,
        *,
        tokens: JobTokens,
        audiences: Sequence[str] = (),
    ) -> dict[str, str]:
        return job_environment(scope, run, tokens=tokens, audiences=audiences)

    def files_for(
        self,
        scope: TerraformScope,
        run: JobRun,
        *,
        tokens: JobTokens,
        settings: Mapping[str, str],
        folder: Path,
        region: str,
    ) -> dict[str, str]:
        return aws_provider_auth_files(
            aws_provider_auth(settings, run_phase=scope.run_phase),
            scope,
            run,
            tokens=tokens,
            folder=folder,
            region=region,
        )


PROVIDER = Terraform()

#: `exp - iat` of an emulated token: HCP Terraform's tokens last for the run phase; the local
#: stack gives them an hour.
TOKEN_LIFETIME_SECONDS = 3600


def _id(kind: str, scope: TerraformScope, name: str) -> str:
    # HCP Terraform ids: a kind prefix and 16 base58 characters; derived here from the name.
    return f"{kind}-{stable_number(f'terraform {kind} {scope.organization} {name}', digits=16)}"


def token_claims(scope: TerraformScope, run: JobRun, *, audience: str) -> JobClaims:
    """The claims of a run phase's token (docs/ci-tokens.md#terraform)."""
    workspace = (
        f"organization:{scope.organization}:project:{scope.project}:workspace:{scope.workspace}"
    )
    claims: dict[str, object] = {
        "sub": scope.subject(),
        "aud": audience,
        "jti": run.uuid("jti"),
        "terraform_organization_id": _id("org", scope, scope.organization),
        "terraform_organization_name": scope.organization,
        "terraform_project_id": _id("prj", scope, scope.project),
        "terraform_project_name": scope.project,
        "terraform_workspace_id": _id("ws", scope, scope.workspace),
        "terraform_workspace_name": scope.workspace,
        "terraform_full_workspace": workspace,
        "terraform_run_id": f"run-{run.number('run', digits=16)}",
        "terraform_run_phase": scope.run_phase,
    }
    return JobClaims(claims=claims, lifetime=TOKEN_LIFETIME_SECONDS)


def job_environment(
    scope: TerraformScope, run: JobRun, *, tokens: JobTokens, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """A run's variables: the workspace sets ``TFC_WORKLOAD_IDENTITY_AUDIENCE`` (the first of
    ``audiences``, else the AWS default) and ``..._AUDIENCE_AUD2``, ... for the others; the run
    gets ``TFC_WORKLOAD_IDENTITY_TOKEN`` and ``..._TOKEN_AUD2``, ... for them."""
    wanted = list(audiences) or [DEFAULT_AUDIENCE]
    env = {
        "TFC_RUN_ID": f"run-{run.number('run', digits=16)}",
        "TFC_WORKSPACE_NAME": scope.workspace,
        "TFC_WORKSPACE_SLUG": f"{scope.organization}/{scope.workspace}",
        "TFC_PROJECT_NAME": scope.project,
    }
    for index, audience in enumerate(wanted):
        suffix = "" if index == 0 else f"_AUD{index + 1}"
        env[AUDIENCE_VARIABLE + suffix] = audience
        env[TOKEN_VARIABLE + suffix] = tokens.sign(token_claims(scope, run, audience=audience))
    return env


# --- the native AWS integration (docs/ci-tokens.md#terraform-aws) ------------------------------

#: Reserved: no configuration may be tagged so (HashiCorp, "Specifying multiple configurations").
_RESERVED_TAGS = frozenset({"TYPE"})
AWS_AUTH_VARIABLE = "TFC_AWS_PROVIDER_AUTH"
#: The Terraform variable through which a run learns its configurations' shared config files.
CREDENTIALS_VARIABLE = "tfc_aws_dynamic_credentials"


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsProviderAuth:
    """One AWS configuration of a workspace's native integration: ``tag`` ``None`` for the
    default one, the role the run phase assumes, and the audience of its token."""

    tag: str | None
    role_arn: str
    audience: str

    @property
    def label(self) -> str:
        return "default" if self.tag is None else self.tag


def _tagged(name: str, tag: str | None) -> str:
    return name if tag is None else f"{name}_{tag}"


def _first(settings: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = settings.get(name, "").strip()
        if value:
            return name, value
    return None


def aws_provider_auth(
    settings: Mapping[str, str], *, run_phase: str
) -> tuple[AwsProviderAuth, ...]:
    """The AWS configurations the workspace variables ``settings`` turn on for a ``run_phase``
    run: ``TFC_AWS_PROVIDER_AUTH=true`` (and ``..._<TAG>=true`` per extra configuration), the
    role from ``TFC_AWS_<PHASE>_ROLE_ARN``, else ``TFC_AWS_RUN_ROLE_ARN``, else their
    ``TFC_DEFAULT_`` forms, the audience from ``TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE`` likewise,
    else ``aws.workload.identity``. ``UsageError`` where HCP Terraform would fail the run."""
    tags: list[str | None] = []
    for name, value in sorted(settings.items()):
        if name != AWS_AUTH_VARIABLE and not name.startswith(AWS_AUTH_VARIABLE + "_"):
            continue
        tag = None if name == AWS_AUTH_VARIABLE else name[len(AWS_AUTH_VARIABLE) + 1 :]
        if tag is not None and (not _TAG.fullmatch(tag) or tag in _RESERVED_TAGS):
            raise UsageError(
                f"{name}: the tag {tag!r} is not usable (letters, digits and underscores,"
                f" not {', '.join(sorted(_RESERVED_TAGS))})"
            )
        if value.strip().lower() != "true":
            if value.strip().lower() not in ("", "false"):
                raise UsageError(
                    f"{name}={value!r}: HCP Terraform turns the integration on with true"
                )
            continue
        tags.append(tag)
    tags.sort(key=lambda tag: (tag is not None, tag or ""))
    phase = run_phase.upper()
    found: list[AwsProviderAuth] = []
    for tag in tags:
        role_names = (
            _tagged(f"TFC_AWS_{phase}_ROLE_ARN", tag),
            _tagged("TFC_AWS_RUN_ROLE_ARN", tag),
            f"TFC_DEFAULT_AWS_{phase}_ROLE_ARN",
            "TFC_DEFAULT_AWS_RUN_ROLE_ARN",
        )
        role = _first(settings, role_names)
        if role is None:
            raise UsageError(
                f"{_tagged(AWS_AUTH_VARIABLE, tag)} is true but no role is set for {run_phase}"
                f" runs: set {role_names[1]} (or {role_names[0]})"
            )
        audience = _first(
            settings,
            (
                _tagged("TFC_AWS_WORKLOAD_IDENTITY_AUDIENCE", tag),
                "TFC_DEFAULT_AWS_WORKLOAD_IDENTITY_AUDIENCE",
            ),
        )
        found.append(
            AwsProviderAuth(
                tag=tag,
                role_arn=parse_role_arn(role[1], flag=role[0]),
                audience=audience[1] if audience else DEFAULT_AUDIENCE,
            )
        )
    return tuple(found)


def aws_provider_auth_files(
    configs: Sequence[AwsProviderAuth],
    scope: TerraformScope,
    run: JobRun,
    *,
    tokens: JobTokens,
    folder: Path,
    region: str,
) -> dict[str, str]:
    """Write each configuration's token and AWS shared config file (``role_arn`` and
    ``web_identity_token_file``, both 0600) into ``folder``; return the variables that hand them
    to the run: ``TF_VAR_tfc_aws_dynamic_credentials`` (the documented hand-off, for
    ``shared_config_files``) and, for the default configuration, ``AWS_CONFIG_FILE`` (how
    keyless lets an unchanged ``provider "aws"`` block and the AWS CLI use it; HashiCorp does
    not document the mechanism of its own agents)."""
    if not configs:
        return {}
    files: dict[str | None, str] = {}
    for config in configs:
        token = tokens.sign(token_claims(scope, run, audience=config.audience))
        token_file = write_secret_file(folder / f"aws-{config.label}.jwt", token)
        shared = write_secret_file(
            folder / f"aws-{config.label}.config",
            f"[default]\nregion = {region}\nrole_arn = {config.role_arn}\n"
            f"web_identity_token_file = {token_file}\n",
        )
        files[config.tag] = str(shared)
    value = {
        "default": {"shared_config_file": files.get(None, "")},
        "aliases": {tag: {"shared_config_file": path} for tag, path in files.items() if tag},
    }
    # Terraform reads a TF_VAR_ value of an object type as an HCL expression; JSON is one.
    env = {f"TF_VAR_{CREDENTIALS_VARIABLE}": json.dumps(value, sort_keys=True)}
    if None in files:
        env["AWS_CONFIG_FILE"] = files[None]
    return env
