"""The variables of the ``atlassian/aws-s3-deploy`` and ``aws-cloudfront-invalidate`` pipes, read
into keyless requests, so a pipeline swaps the pipe for keyless without renaming anything.

With ``AWS_OIDC_ROLE_ARN`` the credentials come from the step's OIDC token only, through the same
exchange as ``keyless assume`` (``keyless.cli.cmd_pipe``): a missing token is an error with the
``oidc: true`` fix, never a fall-back to stored keys (the pipes fall back).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import boto3
import botocore.session

from keyless.deploy.apply import DeployRequest, Invalidation, Target
from keyless.deploy.headers import HeaderPolicy, Rule, http_date
from keyless.deploy.invalidate import MAX_FILE_PATHS
from keyless.deploy.local_tree import Filters
from keyless.errors import UsageError

#: ``aws s3 sync`` options that ``EXTRA_ARGS`` may carry and that take a value.
_VALUE_OPTIONS: Final = frozenset(
    {
        "--exclude",
        "--include",
        "--acl",
        "--cache-control",
        "--content-encoding",
        "--content-type",
        "--expires",
        "--storage-class",
        "--metadata",
    }
)
#: Flags keyless accepts: ``--delete``/``--dryrun`` act; the rest are already how keyless works.
_FLAGS: Final = frozenset(
    {"--delete", "--dryrun", "--follow-symlinks", "--no-progress", "--only-show-errors", "--quiet"}
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _required(env: Mapping[str, str], name: str, pipe: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(
            f"{pipe}: the variable {name} is not set",
            remedy=f"Set {name} in the pipe's variables (it is required).",
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeSettings:
    region: str | None
    role_arn: str | None
    debug: bool


def settings(env: Mapping[str, str]) -> PipeSettings:
    return PipeSettings(
        region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
        role_arn=env.get("AWS_OIDC_ROLE_ARN", "").strip() or None,
        debug=_truthy(env.get("DEBUG")),
    )


def s3_deploy_request(env: Mapping[str, str]) -> DeployRequest:
    """The ``aws-s3-deploy`` variables as a keyless ``DeployRequest``."""
    pipe = "aws-s3-deploy"
    bucket = _required(env, "S3_BUCKET", pipe).removeprefix("s3://")
    local = _required(env, "LOCAL_PATH", pipe)
    options: dict[str, list[str]] = {}
    flags: set[str] = set()
    words = shlex.split(env.get("EXTRA_ARGS", ""))
    index = 0
    while index < len(words):
        word = words[index]
        name, equals, inline = word.partition("=")
        if name in _VALUE_OPTIONS:
            if equals:
                value = inline
            elif index + 1 < len(words):
                index += 1
                value = words[index]
            else:
                raise UsageError(f"{pipe}: EXTRA_ARGS option {name} has no value")
            options.setdefault(name, []).append(value)
        elif word in _FLAGS:
            flags.add(word)
        else:
            supported = ", ".join(sorted(_VALUE_OPTIONS | _FLAGS))
            raise UsageError(
                f"{pipe}: EXTRA_ARGS option {name!r} is not supported by keyless deploy",
                remedy=f"Supported: {supported}. keyless always compares by content.",
            )
        index += 1

    def last(option: str, variable: str) -> str | None:
        given = options.get(option)
        return given[-1] if given else (env.get(variable) or None)

    rules = [Rule.parse(f"*:content-type={value}") for value in options.get("--content-type", [])]
    expires = last("--expires", "EXPIRES")
    return DeployRequest(
        local_dir=Path(local),
        target=Target.parse(f"s3://{bucket}"),
        headers=HeaderPolicy(
            acl=last("--acl", "ACL"),
            cache_control=last("--cache-control", "CACHE_CONTROL"),
            content_encoding=last("--content-encoding", "CONTENT_ENCODING"),
            expires=http_date(expires) if expires else None,
            storage_class=last("--storage-class", "STORAGE_CLASS"),
            metadata=_metadata(options.get("--metadata", []), pipe),
            rules=rules,
        ),
        filters=Filters(
            exclude=tuple(options.get("--exclude", [])),
            include=tuple(options.get("--include", [])),
        ),
        delete=_truthy(env.get("DELETE_FLAG")) or "--delete" in flags,
        dry_run="--dryrun" in flags,
    )


def _metadata(values: list[str], pipe: str) -> dict[str, str]:
    """``aws s3 sync --metadata`` takes ``k=v,k2=v2`` or a JSON object."""
    found: dict[str, str] = {}
    for value in values:
        if value.lstrip().startswith("{"):
            try:
                document = json.loads(value)
            except ValueError as exc:
                raise UsageError(f"{pipe}: --metadata {value!r} is not valid JSON") from exc
            found.update({str(k).lower(): str(v) for k, v in document.items()})
            continue
        for pair in value.split(","):
            name, equals, item = pair.partition("=")
            if not equals:
                raise UsageError(f"{pipe}: --metadata {value!r} is not k=v[,k=v]")
            found[name.strip().lower()] = item
    return found


def invalidation(env: Mapping[str, str]) -> Invalidation:
    """The ``aws-cloudfront-invalidate`` variables: ``DISTRIBUTION_ID``, ``PATHS`` (default /*)."""
    distribution = _required(env, "DISTRIBUTION_ID", "aws-cloudfront-invalidate")
    paths = tuple(env.get("PATHS", "").split()) or ("/*",)
    if len(paths) > MAX_FILE_PATHS:
        raise UsageError(
            f"aws-cloudfront-invalidate: {len(paths)} paths are more than CloudFront's"
            f" {MAX_FILE_PATHS} in progress",
            remedy="Use wildcards, e.g. PATHS='/assets/*'.",
        )
    for path in paths:
        if not path.startswith("/"):
            raise UsageError(
                f"aws-cloudfront-invalidate: path {path!r} does not start with '/'",
                remedy="Example: PATHS='/index.html /assets/*'",
            )
    return Invalidation(distribution_id=distribution, paths=paths)


def ambient_session(pipe: PipeSettings) -> boto3.Session:
    """Without ``AWS_OIDC_ROLE_ARN``: the standard AWS configuration, as the pipes use it."""
    core = botocore.session.Session()
    if pipe.region:
        core.set_config_variable("region", pipe.region)
    return boto3.Session(botocore_session=core)
