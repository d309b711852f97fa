"""The logic of the keyless GitHub Action's step (``keyless action configure-aws-credentials``):
every input of aws-actions/configure-aws-credentials with the same meaning, or refused with a
message, plus keyless' own inputs; the contract is docs/github-action.md.

Inputs arrive as environment variables ``INPUT_<NAME>`` (upper case, ``-`` as ``_``), which the
composite step sets from ``${{ inputs.* }}``: values such as keys never reach an argv.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from keyless.ci import obtain_token
from keyless.errors import CredentialError, KeylessError, UsageError
from keyless.limits import (
    STS_TAG_VALUE_MAX_CHARS,
)

if TYPE_CHECKING:
    from keyless.arn import RoleArn
    from keyless.aws.sts import (
        Assumed,
        CallerIdentity,
        RetryPolicy,
        Sts,
        TemporaryCredentials,
    )

_TRUE: Final = ("true", "True", "TRUE")
_FALSE: Final = ("false", "False", "FALSE", "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Input:
    name: str
    #: ``None``: accepted; otherwise why keyless refuses a value other than the default.
    refused: str | None = None
    default: str = ""
    boolean: bool = False
    keyless_only: bool = False


_NO_KEYS = (
    "keyless never uses stored AWS keys; grant the job `id-token: write` and give role-to-assume"
    " (or role-chaining: true to chain from credentials already in the environment)"
)

#: Every input of aws-actions/configure-aws-credentials' action.yml, then keyless' own.
INPUTS: Final = (
    Input(name="aws-region"),
    Input(
        name="aws-profile",
        refused="keyless exports environment credentials; for a web identity profile run"
        " `keyless assume --profile NAME` in a step",
    ),
    Input(name="overwrite-aws-profile", boolean=True, refused="aws-profile is not supported"),
    Input(name="role-to-assume"),
    Input(name="aws-access-key-id", refused=_NO_KEYS),
    Input(name="aws-secret-access-key", refused=_NO_KEYS),
    Input(name="aws-session-token", refused=_NO_KEYS),
    Input(name="web-identity-token-file"),
    Input(name="role-chaining", boolean=True),
    Input(name="audience", default="sts.amazonaws.com"),
    Input(
        name="http-proxy",
        refused="set HTTPS_PROXY in the step's env instead; keyless and the AWS SDK read it",
    ),
    Input(
        name="no-proxy",
        refused="set NO_PROXY in the step's env instead; keyless and the SDK read it",
    ),
    Input(name="mask-aws-account-id", boolean=True),
    Input(name="role-duration-seconds"),
    Input(name="role-external-id"),
    Input(name="role-session-name"),
    Input(name="role-skip-session-tagging", boolean=True),
    Input(name="transitive-tag-keys"),
    Input(name="inline-session-policy"),
    Input(name="managed-session-policies"),
    Input(name="output-credentials", boolean=True),
    Input(name="output-env-credentials", boolean=True, default="true"),
    Input(name="unset-current-credentials", boolean=True),
    Input(name="disable-retry", boolean=True),
    Input(name="retry-max-attempts"),
    Input(
        name="special-characters-workaround",
        boolean=True,
        refused="keyless writes the secret access key verbatim; no retrying for another one",
    ),
    Input(name="use-existing-credentials", boolean=True),
    Input(name="allowed-account-ids"),
    Input(name="force-skip-oidc", boolean=True),
    Input(
        name="action-timeout-s",
        refused="use the step's `timeout-minutes`; every STS call of keyless has its own bound",
    ),
    Input(name="custom-tags"),
    Input(name="sts-endpoint"),
    Input(name="deploy-source", keyless_only=True),
    Input(name="deploy-target", keyless_only=True),
    Input(name="doctor-on-failure", boolean=True, default="true", keyless_only=True),
)
_BY_NAME: Final = {spec.name: spec for spec in INPUTS}

OUTPUTS: Final = (
    "aws-account-id",
    "authenticated-arn",
    "aws-access-key-id",
    "aws-secret-access-key",
    "aws-session-token",
    "aws-expiration",
)

#: configure-aws-credentials' default session name.
DEFAULT_SESSION_NAME: Final = "GitHubActions"
#: STS session tag values: letters, digits, spaces and _.:/=+-@, at most 256 characters.
_TAG_VALUE_FORBIDDEN: Final = re.compile(r"[^\w .:/=+\-@]")


def env_name(name: str) -> str:
    return "INPUT_" + name.upper().replace("-", "_")


class Inputs:
    """The step's inputs, read from ``INPUT_*`` variables, with their defaults."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._values = {
            spec.name: env.get(env_name(spec.name), "").strip() or spec.default for spec in INPUTS
        }

    def text(self, name: str) -> str:
        return self._values[name]

    def flag(self, name: str) -> bool:
        value = self._values[name]
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise UsageError(f"input {name}: {value!r} is not true or false")

    def lines(self, name: str) -> tuple[str, ...]:
        return tuple(line.strip() for line in self._values[name].splitlines() if line.strip())

    def check_refused(self) -> None:
        for spec in INPUTS:
            value = self._values[spec.name]
            given = self.flag(spec.name) if spec.boolean else value != spec.default
            if spec.refused is not None and given:
                raise UsageError(f"input {spec.name} is not supported by keyless: {spec.refused}")


def _tags(inputs: Inputs, env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    tags: dict[str, str] = {}
    if not inputs.flag("role-skip-session-tagging"):
        # The tags configure-aws-credentials sets on AssumeRole (its README, "Session tagging").
        for key, variable in (
            ("Repository", "GITHUB_REPOSITORY"),
            ("Workflow", "GITHUB_WORKFLOW"),
            ("Action", "GITHUB_ACTION"),
            ("Actor", "GITHUB_ACTOR"),
            ("Commit", "GITHUB_SHA"),
            ("Branch", "GITHUB_REF"),
        ):
            if env.get(variable):
                tags[key] = env[variable]
        tags = {"GitHub": "Actions", **tags}
    custom = inputs.text("custom-tags")
    if custom:
        try:
            document = json.loads(custom)
        except ValueError:
            raise UsageError("input custom-tags is not a JSON object") from None
        if not isinstance(document, dict):
            raise UsageError("input custom-tags is not a JSON object")
        tags.update({str(key): str(value) for key, value in document.items()})
    return tuple(
        (key, _TAG_VALUE_FORBIDDEN.sub("*", value)[:STS_TAG_VALUE_MAX_CHARS])
        for key, value in tags.items()
    )


def retry_policy(inputs: Inputs) -> RetryPolicy:
    from keyless.aws.sts import RetryPolicy

    if inputs.flag("disable-retry"):
        return RetryPolicy(max_attempts=1)
    attempts = inputs.text("retry-max-attempts")
    if attempts:
        if not attempts.isdigit() or int(attempts) < 1:
            raise UsageError(f"input retry-max-attempts: {attempts!r} is not a positive number")
        return RetryPolicy(max_attempts=int(attempts))
    return RetryPolicy()


def _duration(inputs: Inputs) -> int | None:
    text = inputs.text("role-duration-seconds")
    if not text:
        return None
    if not text.isdigit():
        raise UsageError(f"input role-duration-seconds: {text!r} is not a number of seconds")
    return int(text)


def _session_policy(inputs: Inputs) -> str | None:
    text = inputs.text("inline-session-policy")
    if not text:
        return None
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:
        raise UsageError("input inline-session-policy is not JSON") from None


def exchange(inputs: Inputs, env: Mapping[str, str], sts: Sts, region: str) -> Assumed:
    from keyless.arn import parse_role_arn
    from keyless.aws.sts import Assumed, check_session_name

    role_text = inputs.text("role-to-assume")
    if not role_text:
        raise UsageError("input role-to-assume is required (the ARN of the role to assume)")
    role = parse_role_arn(role_text, flag="role-to-assume")
    session = inputs.text("role-session-name") or DEFAULT_SESSION_NAME
    check_session_name(session)
    options = _SessionOptions(
        session_name=session,
        duration_seconds=_duration(inputs),
        session_policy=_session_policy(inputs),
        session_policy_arns=inputs.lines("managed-session-policies"),
    )
    chaining = inputs.flag("role-chaining")
    token_file = inputs.text("web-identity-token-file") or None
    if inputs.flag("force-skip-oidc") and not (chaining or token_file):
        raise UsageError(
            "input force-skip-oidc: true needs web-identity-token-file or role-chaining: true"
            " (keyless takes no access keys)"
        )
    if chaining:
        credentials, assumed_arn = _chain(inputs, env, sts, role, options)
        subject, source = None, "role-chaining"
    else:
        credentials, assumed_arn, subject = _web_identity(inputs, env, sts, role, options)
        source = "web-identity"
    identity = sts.caller_identity(credentials.signing_keys(), role=role)
    _check_allowed_accounts(inputs, role, identity.account)
    return Assumed(
        credentials=credentials,
        role_arn=role,
        session_name=session,
        assumed_role_arn=assumed_arn,
        subject=subject,
        identity=identity,
        hops=(role,),
        source=source,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _SessionOptions:
    """The inputs both STS calls take alike."""

    session_name: str
    duration_seconds: int | None
    session_policy: str | None
    session_policy_arns: tuple[str, ...]


def _chain(
    inputs: Inputs, env: Mapping[str, str], sts: Sts, role: RoleArn, options: _SessionOptions
) -> tuple[TemporaryCredentials, str]:
    """``role-chaining: true``: AssumeRole with the keys an earlier step exported."""
    from keyless.aws.sts import static_keys

    keys = static_keys(env)
    if keys is None:
        raise CredentialError(
            "input role-chaining: true, but the environment has no AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY to chain from",
            remedy="Run the action once without role-chaining first; its credentials are in"
            " the environment of the steps after it.",
        )
    return sts.assume_role(
        keys,
        role_arn=role,
        session_name=options.session_name,
        duration_seconds=options.duration_seconds,
        session_policy=options.session_policy,
        session_policy_arns=options.session_policy_arns,
        tags=_tags(inputs, env),
        transitive_tag_keys=inputs.lines("transitive-tag-keys"),
        external_id=inputs.text("role-external-id") or None,
    )


def _web_identity(
    inputs: Inputs, env: Mapping[str, str], sts: Sts, role: RoleArn, options: _SessionOptions
) -> tuple[TemporaryCredentials, str, str | None]:
    """AssumeRoleWithWebIdentity with the job's token (or ``web-identity-token-file``)."""
    for name in ("role-external-id", "custom-tags", "transitive-tag-keys"):
        if inputs.text(name):
            # STS AssumeRoleWithWebIdentity takes no ExternalId and no session tags: the
            # token's claims are what the trust policy checks (STS API reference).
            raise UsageError(
                f"input {name} applies to AssumeRole only, and a web identity token is"
                " exchanged with AssumeRoleWithWebIdentity; use it with role-chaining: true"
            )
    token_file = inputs.text("web-identity-token-file") or None
    obtained = obtain_token(
        env,
        ci="auto" if token_file else "github",
        audience=inputs.text("audience"),
        token_file=token_file,
    )
    return sts.assume_role_with_web_identity(
        obtained.token,
        role_arn=role,
        session_name=options.session_name,
        duration_seconds=options.duration_seconds,
        session_policy=options.session_policy,
        session_policy_arns=options.session_policy_arns,
    )


def _check_allowed_accounts(inputs: Inputs, role: RoleArn, account: str) -> None:
    from keyless.arn import parse_account_id
    from keyless.aws.sts import AccountMismatchError

    allowed = [item.strip() for item in inputs.text("allowed-account-ids").split(",")]
    allowed_ids = {parse_account_id(item) for item in allowed if item}
    if allowed_ids and account not in allowed_ids:
        raise AccountMismatchError(
            f"the credentials of {role} are in account {account}, not one of the"
            f" allowed-account-ids {', '.join(sorted(allowed_ids))}",
            remedy="Check role-to-assume and allowed-account-ids; no credentials were exported.",
        )


def append_runner_file(path_text: str, pairs: Mapping[str, str], *, what: str) -> None:
    """Append ``pairs`` to a runner file ($GITHUB_OUTPUT, $GITHUB_ENV) in its heredoc form."""
    if not path_text:
        raise UsageError(f"{what} is not set; the GitHub Actions runner sets it in a job")
    lines = []
    for name, value in pairs.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    with open(Path(path_text), "a", encoding="utf-8") as handle:
        handle.writelines(lines)


def existing_identity(env: Mapping[str, str], sts: Sts) -> CallerIdentity | None:
    from keyless.aws.sts import static_keys

    keys = static_keys(env)
    if keys is None:
        return None
    try:
        return sts.caller_identity(keys, role="the credentials in the environment")
    except KeylessError:
        return None
