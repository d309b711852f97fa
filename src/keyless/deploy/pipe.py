"""The variables of the ``atlassian/aws-s3-deploy`` and ``aws-cloudfront-invalidate`` pipes, read
into keyless requests, so a pipeline swaps the pipe for keyless without renaming anything.

With ``AWS_OIDC_ROLE_ARN`` the credentials come from the step's OIDC token only, through the same
exchange as ``keyless assume`` (``keyless.cli.cmd_pipe``): a missing token is an error with the
``oidc: true`` fix, never a fall-back to stored keys (the pipes fall back).

Every variable of ``atlassian/aws-s3-deploy`` is in ``S3_DEPLOY_VARIABLES`` (pipe/pipe.yml and
pipe/README.md list the same, a test compares them): each is read, or refused with a message.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from keyless import process
from keyless.aws import clients
from keyless.compat import StrEnum
from keyless.deploy.apply import DeployRequest, Invalidation, Target
from keyless.deploy.headers import HeaderPolicy, Rule, http_date
from keyless.deploy.local_tree import Filters
from keyless.deploy.plan import DeleteRefusedError
from keyless.errors import CredentialError, UsageError
from keyless.limits import (
    CLOUDFRONT_MAX_FILE_PATHS,
    DEFAULT_MAX_DELETE_PERCENT,
    PIPE_PRE_EXECUTION_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    import boto3

S3_PIPE: Final = "aws-s3-deploy"
CLOUDFRONT_PIPE: Final = "aws-cloudfront-invalidate"
#: The image the release workflow pushes (pipe/Dockerfile); OWNER is the GitHub owner.
PIPE_IMAGE: Final = "ghcr.io/OWNER/keyless-pipe"


class Origin(StrEnum):
    """Where a pipe variable comes from."""

    ATLASSIAN = "atlassian/aws-s3-deploy"
    KEYLESS = "keyless only"


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeVariable:
    name: str
    origin: Origin
    required: bool = False
    default: str | None = None
    #: What keyless does with it, one sentence (pipe.yml and pipe/README.md say the same).
    meaning: str


#: Every variable of atlassian/aws-s3-deploy, then keyless' own; none is read anywhere else.
S3_DEPLOY_VARIABLES: Final = (
    PipeVariable(
        name="AWS_OIDC_ROLE_ARN",
        origin=Origin.ATLASSIAN,
        meaning="Role to assume with the step's OIDC token (the step needs `oidc: true`);"
        " without a token the pipe fails, it never falls back to keys.",
    ),
    PipeVariable(
        name="AWS_DEFAULT_REGION",
        origin=Origin.ATLASSIAN,
        meaning="Region of the STS call; the bucket's own region comes from S3.",
    ),
    PipeVariable(
        name="AWS_ACCESS_KEY_ID",
        origin=Origin.ATLASSIAN,
        meaning="Only without AWS_OIDC_ROLE_ARN (standard AWS configuration); with it, the"
        " pipe says the keys are not used.",
    ),
    PipeVariable(
        name="AWS_SECRET_ACCESS_KEY",
        origin=Origin.ATLASSIAN,
        meaning="As AWS_ACCESS_KEY_ID.",
    ),
    PipeVariable(
        name="S3_BUCKET", origin=Origin.ATLASSIAN, required=True, meaning="BUCKET or BUCKET/PREFIX."
    ),
    PipeVariable(
        name="LOCAL_PATH",
        origin=Origin.ATLASSIAN,
        required=True,
        meaning="Folder to deploy (relative to the clone directory).",
    ),
    PipeVariable(
        name="CONTENT_ENCODING",
        origin=Origin.ATLASSIAN,
        meaning="Content-Encoding of every object.",
    ),
    PipeVariable(name="ACL", origin=Origin.ATLASSIAN, meaning="Canned ACL of every object."),
    PipeVariable(
        name="STORAGE_CLASS", origin=Origin.ATLASSIAN, meaning="Storage class of every object."
    ),
    PipeVariable(
        name="CACHE_CONTROL", origin=Origin.ATLASSIAN, meaning="Cache-Control of every object."
    ),
    PipeVariable(
        name="EXPIRES", origin=Origin.ATLASSIAN, meaning="Expires of every object (a date)."
    ),
    PipeVariable(
        name="DELETE_FLAG",
        origin=Origin.ATLASSIAN,
        default="false",
        meaning="true: delete remote objects that are not in LOCAL_PATH, within the delete"
        " guard (MAX_DELETE_PERCENT, FORCE_DELETE).",
    ),
    PipeVariable(
        name="EXTRA_ARGS",
        origin=Origin.ATLASSIAN,
        meaning="aws s3 sync options: --exclude, --include, --acl, --cache-control,"
        " --content-encoding, --content-type, --expires, --storage-class, --metadata, --delete,"
        " --dryrun (--follow-symlinks, --no-progress, --only-show-errors, --quiet change"
        " nothing); any other option is refused.",
    ),
    PipeVariable(
        name="PRE_EXECUTION_SCRIPT",
        origin=Origin.ATLASSIAN,
        meaning="Script run (with bash, else sh) before the deploy; if it fails, so does the"
        " pipe, before any credentials are asked for.",
    ),
    PipeVariable(
        name="DEBUG", origin=Origin.ATLASSIAN, default="false", meaning="true: verbose output."
    ),
    PipeVariable(
        name="MAX_DELETE_PERCENT",
        origin=Origin.KEYLESS,
        default=f"{DEFAULT_MAX_DELETE_PERCENT:g}",
        meaning="The delete guard: refuse a deploy that would delete more than this percentage"
        " of the remote objects (0 to 100).",
    ),
    PipeVariable(
        name="FORCE_DELETE",
        origin=Origin.KEYLESS,
        default="false",
        meaning="true: delete past the guard (a wrong LOCAL_PATH then empties the site).",
    ),
)

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})

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


def boolean(env: Mapping[str, str], name: str, pipe: str) -> bool:
    """A true/false variable; anything else is refused, never read as false."""
    value = env.get(name, "").strip()
    if not value or value.lower() in _FALSE:
        return False
    if value.lower() in _TRUE:
        return True
    raise UsageError(
        f"{pipe}: {name} is {value!r}; use true or false",
        remedy=f"In the pipe's variables: {name}: 'true' (or 'false', the default).",
    )


def _required(env: Mapping[str, str], name: str, pipe: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise UsageError(
            f"{pipe}: the variable {name} is not set",
            remedy=f"Set {name} in the pipe's variables (it is required).",
        )
    return value


def _percentage(env: Mapping[str, str], name: str, pipe: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 100:  # also NaN
        raise UsageError(f"{pipe}: {name} is {value!r}; use a number from 0 to 100")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class PipeSettings:
    region: str | None
    role_arn: str | None
    debug: bool


def settings(env: Mapping[str, str], pipe: str = S3_PIPE) -> PipeSettings:
    return PipeSettings(
        region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
        role_arn=env.get("AWS_OIDC_ROLE_ARN", "").strip() or None,
        debug=boolean(env, "DEBUG", pipe),
    )


def _extra_args(value: str, pipe: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise UsageError(
            f"{pipe}: EXTRA_ARGS {value!r} is not valid shell words ({exc})",
            remedy="Close every quote, e.g. EXTRA_ARGS: '--exclude \"*.map\" --exclude tmp/*'",
        ) from None


def s3_deploy_request(env: Mapping[str, str]) -> DeployRequest:
    """The ``aws-s3-deploy`` variables as a keyless ``DeployRequest``."""
    pipe = S3_PIPE
    bucket = _required(env, "S3_BUCKET", pipe).removeprefix("s3://")
    local = _required(env, "LOCAL_PATH", pipe)
    options: dict[str, list[str]] = {}
    flags: set[str] = set()
    words = _extra_args(env.get("EXTRA_ARGS", ""), pipe)
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
        delete=boolean(env, "DELETE_FLAG", pipe) or "--delete" in flags,
        max_delete_percent=_percentage(
            env, "MAX_DELETE_PERCENT", pipe, default=DEFAULT_MAX_DELETE_PERCENT
        ),
        force=boolean(env, "FORCE_DELETE", pipe),
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
    distribution = _required(env, "DISTRIBUTION_ID", CLOUDFRONT_PIPE)
    paths = tuple(env.get("PATHS", "").split()) or ("/*",)
    if len(paths) > CLOUDFRONT_MAX_FILE_PATHS:
        raise UsageError(
            f"aws-cloudfront-invalidate: {len(paths)} paths are more than CloudFront's"
            f" {CLOUDFRONT_MAX_FILE_PATHS} in progress",
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
    return clients.session(region=pipe.region or None)


def unused_keys_notice(env: Mapping[str, str], role: PipeSettings) -> str | None:
    """With AWS_OIDC_ROLE_ARN, keys in the pipe's variables are not used: say so, once."""
    given = [name for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if env.get(name)]
    if role.role_arn is None or not given:
        return None
    return (
        f"keyless: {' and '.join(given)} not used: AWS_OIDC_ROLE_ARN is set, so the credentials"
        " come from the step's OIDC token only"
    )


def token_error(exc: CredentialError, pipe: str) -> CredentialError:
    """The exchange's token error, with the fix in the pipe's terms (variables and the step's
    YAML), not in the command line's (``--ci``, ``--token-file``)."""
    return CredentialError(f"{pipe}: AWS_OIDC_ROLE_ARN is set, but {exc.message}", remedy=_REMEDY)


def no_credentials_error(pipe: str) -> CredentialError:
    """Neither AWS_OIDC_ROLE_ARN nor any standard AWS credentials."""
    return CredentialError(
        f"{pipe}: no AWS credentials: AWS_OIDC_ROLE_ARN is not set", remedy=_REMEDY
    )


_REMEDY: Final = f"""\
The pipe exchanges the step's OIDC token for AWS_OIDC_ROLE_ARN. Bitbucket gives a pipe the token
(BITBUCKET_STEP_OIDC_TOKEN) only in a step with `oidc: true`:

  - step:
      name: Deploy
      oidc: true
      script:
        - pipe: docker://{PIPE_IMAGE}:1
          variables:
            AWS_OIDC_ROLE_ARN: $AWS_OIDC_ROLE_ARN
            S3_BUCKET: my-bucket/www
            LOCAL_PATH: public

The pipe never falls back to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY while AWS_OIDC_ROLE_ARN
is set."""


def delete_refused(exc: DeleteRefusedError) -> UsageError:
    """The delete guard's refusal, with the pipe's variables as the way past it."""
    percent = 100.0 * exc.would_delete / exc.remote
    return UsageError(
        f"{S3_PIPE}: refusing to delete {exc.would_delete} of {exc.remote} objects"
        f" ({percent:.0f}%), more than MAX_DELETE_PERCENT {exc.limit:g}%",
        remedy=(
            "Check LOCAL_PATH and S3_BUCKET: a wrong folder deletes the live site.\n"
            "If the deletion is intended, set FORCE_DELETE: 'true' or a higher"
            " MAX_DELETE_PERCENT in the pipe's variables."
        ),
    )


#: Runs the script: ``(argv, env, timeout) -> exit code``; tests pass a fake.
ScriptRunner = Callable[[Sequence[str], Mapping[str, str], float], int]


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> int:
    # Output goes straight to the step's log, as the script's own would; a cancelled step's
    # SIGTERM reaches the script too.
    return process.run_foreground(
        process.Launch(argv=tuple(argv), env=env), timeout_seconds=timeout
    )


def pre_execution_script(env: Mapping[str, str]) -> Path | None:
    """``PRE_EXECUTION_SCRIPT``, checked to be a file (run by ``run_pre_execution_script``)."""
    value = env.get("PRE_EXECUTION_SCRIPT", "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise UsageError(
            f"{S3_PIPE}: PRE_EXECUTION_SCRIPT {value!r} is not a file",
            remedy="Give the path of a script in the repository, relative to the clone"
            " directory, e.g. PRE_EXECUTION_SCRIPT: 'scripts/before-deploy.sh'.",
        )
    return path


def run_pre_execution_script(
    path: Path, env: Mapping[str, str], *, runner: ScriptRunner = _run
) -> None:
    """Run the script as the Atlassian pipe does, before the deploy; a failure fails the pipe."""
    shell = shutil.which("bash", path=env.get("PATH")) or "sh"
    try:
        code = runner([shell, str(path)], env, PIPE_PRE_EXECUTION_TIMEOUT_SECONDS)
    except process.TimedOutError:
        raise UsageError(
            f"{S3_PIPE}: PRE_EXECUTION_SCRIPT {str(path)!r} ran longer than"
            f" {PIPE_PRE_EXECUTION_TIMEOUT_SECONDS} seconds"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{S3_PIPE}: PRE_EXECUTION_SCRIPT {str(path)!r} could not be run: {exc.strerror or exc}"
        ) from None
    if code != 0:
        raise UsageError(
            f"{S3_PIPE}: PRE_EXECUTION_SCRIPT {str(path)!r} exited with {code}; nothing deployed",
            remedy="The script runs before the deploy; fix it, or remove PRE_EXECUTION_SCRIPT.",
        )
