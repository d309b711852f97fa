"""Handing a role session on: shell exports, dotenv, credential_process JSON, GitHub's env file, an
AWS config profile that refreshes itself from a token file, and a command run with the credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from keyless import process
from keyless.ci.base import RawToken
from keyless.compat import StrEnum
from keyless.errors import KeylessError, OutputError, UsageError
from keyless.fsutil import write_secret_file

if TYPE_CHECKING:
    from keyless.arn import RoleArn
    from keyless.aws.sts import TemporaryCredentials

__all__ = [
    "REMOVED_VARIABLES",
    "CommandNotExecutableError",
    "CommandNotFoundError",
    "OutputFormat",
    "ProfileWritten",
    "child_environment",
    "config_file_path",
    "credential_variables",
    "render",
    "render_process_json",
    "run_command",
    "set_profile",
    "write_github_env",
    "write_profile",
]


class OutputFormat(StrEnum):
    """Where ``keyless assume`` puts the credentials."""

    #: ``export NAME='value'`` lines for ``eval "$(keyless assume ...)"``
    ENV = "env"
    #: ``NAME=value`` lines for ``docker --env-file`` and dotenv loaders
    DOTENV = "dotenv"
    #: the ``credential_process`` document (Version 1)
    JSON = "json"
    #: appended to ``$GITHUB_ENV``, with ``::add-mask::`` lines on stdout first
    GITHUB = "github"


def credential_variables(
    credentials: TemporaryCredentials, *, region: str | None = None
) -> dict[str, str]:
    """The environment variables every AWS SDK reads first (env credentials win over any profile
    or web-identity setting in botocore's chain, docs/aws-sts-iam.md#botocore-web-identity)."""
    variables = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        # botocore's env provider treats the credentials as expiring at this time.
        "AWS_CREDENTIAL_EXPIRATION": credentials.expiration_iso,
    }
    if region:
        variables["AWS_REGION"] = region
        variables["AWS_DEFAULT_REGION"] = region
    return variables


# A value safe to write unquoted in a dotenv file (docker --env-file takes quotes literally).
_DOTENV_PLAIN: Final = re.compile(r"[A-Za-z0-9+/=:._@,-]*")


def render(
    fmt: OutputFormat, credentials: TemporaryCredentials, *, region: str | None = None
) -> str:
    """The text for ``env``, ``dotenv`` or ``json`` (``github`` writes a file: see below)."""
    if fmt is OutputFormat.JSON:
        return render_process_json(credentials)
    variables = credential_variables(credentials, region=region)
    _refuse_line_breaks(variables)
    if fmt is OutputFormat.ENV:
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    if fmt is OutputFormat.DOTENV:
        return "".join(f"{name}={_dotenv_value(value)}\n" for name, value in variables.items())
    raise UsageError(f"--format {fmt.value} is not rendered as text")


def _dotenv_value(value: str) -> str:
    if _DOTENV_PLAIN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_process_json(credentials: TemporaryCredentials) -> str:
    """The ``credential_process`` document: ``Version`` must be the integer 1, and with
    ``Expiration`` the SDK refreshes by running the command again (AWS CLI user guide,
    "Sourcing credentials with an external process")."""
    document: dict[str, object] = {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": credentials.expiration_iso,
    }
    if credentials.account_id:
        document["AccountId"] = credentials.account_id
    return json.dumps(document, indent=2) + "\n"


def write_github_env(
    credentials: TemporaryCredentials,
    *,
    env: Mapping[str, str],
    stdout: TextIO,
    region: str | None = None,
) -> Path:
    """Mask the values in the job log (``::add-mask::`` on stdout, before anything else can print
    them), then append them to the file ``$GITHUB_ENV`` names, for the job's later steps."""
    target = env.get("GITHUB_ENV", "")
    if not target:
        raise UsageError(
            "--format github needs GITHUB_ENV, which the GitHub Actions runner sets in a job",
            remedy="Outside GitHub Actions use --format env, dotenv or json.",
        )
    variables = credential_variables(credentials, region=region)
    _refuse_line_breaks(variables)
    # The access key id is masked too, as configure-aws-credentials does.
    for value in (
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
    ):
        stdout.write(f"::add-mask::{value}\n")
    stdout.flush()
    path = Path(target)
    try:
        # Appending is GitHub's protocol for this file (one NAME=value per line).
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{name}={value}\n" for name, value in variables.items())
    except OSError as exc:
        raise OutputError(f"cannot append to GITHUB_ENV {path}: {exc.strerror or exc}") from exc
    return path


def _refuse_line_breaks(variables: Mapping[str, str]) -> None:
    # A line break in a value would let it define other variables in an env file.
    for name, value in variables.items():
        if "\n" in value or "\r" in value:
            raise OutputError(f"refusing to write {name}: its value has a line break")


# --- profiles in the AWS config file -------------------------------------------------------------

_PROFILE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SECTION: Final = re.compile(r"\s*\[([^\]]*)\]")
# A key at the start of a line: `name = value` (indented lines continue the previous key).
_KEY: Final = re.compile(r"([^\s=#;\[][^=]*?)\s*=")

#: What ``--profile`` sets: botocore's web identity provider reads these from a profile and
#: re-reads the token file on every refresh (docs/aws-sts-iam.md#botocore-web-identity).
PROFILE_KEYS: Final = ("role_arn", "web_identity_token_file", "role_session_name", "region")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileWritten:
    profile: str
    config_file: Path
    token_file: Path

    def to_json(self) -> dict[str, str]:
        return {
            "profile": self.profile,
            "config_file": str(self.config_file),
            "token_file": str(self.token_file),
        }


def check_profile_name(name: str) -> str:
    if _PROFILE.fullmatch(name) is None:
        raise UsageError(
            f"--profile {name!r} is not a profile name keyless writes: use letters, digits,"
            " '.', '_' and '-' (at most 64, starting with a letter or digit)"
        )
    return name


def config_file_path(env: Mapping[str, str]) -> Path:
    """``AWS_CONFIG_FILE``, else ``~/.aws/config``, with ``~`` meaning ``HOME`` of ``env``."""
    home = env.get("HOME") or str(Path.home())
    named = env.get("AWS_CONFIG_FILE")
    if named:
        if named == "~" or named.startswith("~/"):
            named = home + named[1:]
        return Path(named).absolute()
    return Path(home, ".aws", "config").absolute()


def token_file_path(config_file: Path, profile: str) -> Path:
    """Where ``--profile NAME`` keeps the token: beside the config file, one file per profile."""
    return config_file.parent / "keyless" / f"{profile}.token"


def set_profile(text: str, profile: str, settings: Mapping[str, str]) -> str:
    """``text`` (an AWS config file) with ``settings`` in ``profile``'s section.

    Only that section changes: the keys being set are replaced where they stand (with any
    indented continuation lines), the rest of the section, every other section, comments and
    blank lines stay byte for byte. A missing section is appended. ``default`` is the section
    ``[default]`` (or ``[profile default]``); any other name is ``[profile NAME]``.
    """
    for name, value in settings.items():
        if "\n" in value or "\r" in value or value != value.strip():
            raise OutputError(f"refusing to write {name} = {value!r} into the AWS config file")
    wanted = {"default", "profile default"} if profile == "default" else {f"profile {profile}"}
    header = "[default]" if profile == "default" else f"[profile {profile}]"
    new_lines = [f"{name} = {value}\n" for name, value in settings.items()]
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if _section_name(line) in wanted),
        None,
    )
    if start is None:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        separator = "\n" if prefix.strip() else ""
        return prefix + separator + header + "\n" + "".join(new_lines)
    end = next(
        (i for i in range(start + 1, len(lines)) if _section_name(lines[i]) is not None),
        len(lines),
    )
    keys = {name.lower() for name in settings}
    kept: list[str] = []
    skipping = False
    for line in lines[start + 1 : end]:
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue  # a continuation line of a key being replaced
        skipping = False
        match = _KEY.match(line)
        if match and match.group(1).strip().lower() in keys:
            skipping = True
            continue
        kept.append(line)
    trailing: list[str] = []
    while kept and not kept[-1].strip():
        trailing.insert(0, kept.pop())
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    head = lines[: start + 1]
    if not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join(head + kept + new_lines + trailing + lines[end:])


def _section_name(line: str) -> str | None:
    match = _SECTION.match(line)
    if match is None:
        return None
    return " ".join(match.group(1).split())


def write_profile(
    *,
    profile: str,
    role_arn: RoleArn,
    session_name: str,
    region: str,
    token: RawToken,
    env: Mapping[str, str],
) -> ProfileWritten:
    """Write the token file (0600, atomic, never appended, folders 0700) and point ``profile`` in
    the AWS config file at it, so any AWS SDK assumes the role itself and refreshes from the file.

    The config file is rewritten atomically (a temporary file renamed over it, mode 0600) under a
    lock on its folder; a failure leaves the previous config file as it was and removes a token
    file this call created.
    """
    check_profile_name(profile)
    config_file = config_file_path(env)
    token_file = token_file_path(config_file, profile)
    existed = token_file.exists()
    write_secret_file(token_file, token)  # also creates the config folder (0700) if missing
    try:
        with _locked(config_file.parent):
            try:
                text = config_file.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except (OSError, UnicodeDecodeError) as exc:
                raise OutputError(f"cannot read the AWS config file {config_file}: {exc}") from exc
            settings = {
                "role_arn": role_arn,
                "web_identity_token_file": str(token_file),
                "role_session_name": session_name,
                "region": region,
            }
            write_secret_file(config_file, set_profile(text, profile, settings))
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                token_file.unlink()
        raise
    return ProfileWritten(profile=profile, config_file=config_file, token_file=token_file)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` while the config file is read and replaced, so that two
    keyless processes writing profiles at once do not lose one another's section."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the write is still atomic
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise OutputError(f"cannot open {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- running a command with the credentials ------------------------------------------------------

#: Removed from the child's environment: other credentials that could shadow or mix with the
#: role's (static keys win over everything in the SDKs' chains; a profile or web-identity setting
#: would be used by anything that ignores the environment keys).
REMOVED_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
)


def child_environment(
    env: Mapping[str, str], credentials: TemporaryCredentials, *, region: str | None = None
) -> dict[str, str]:
    """``env`` without other credentials, with the role's (never in argv: a child's argv is
    readable by every user of the machine through ``ps``)."""
    child = {name: value for name, value in env.items() if name not in REMOVED_VARIABLES}
    child.update(credential_variables(credentials, region=region))
    return child


#: Starts the command; ``keyless.process.popen`` in production, a fake in tests.
Spawn = Callable[[Sequence[str], Mapping[str, str]], process.Child]


def _popen(argv: Sequence[str], env: Mapping[str, str]) -> process.Child:
    # No shell: argv runs as given; the credentials travel in the environment only.
    return process.popen(process.Launch(argv=tuple(argv), env=env))


class CommandNotFoundError(KeylessError):
    """The command for ``keyless exec`` does not exist (exit 127, as a shell says)."""

    kind = "command-not-found"
    exit_code = 127


class CommandNotExecutableError(KeylessError):
    """The command for ``keyless exec`` cannot be run (exit 126, as a shell says)."""

    kind = "command-not-executable"
    exit_code = 126


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    spawn: Spawn = _popen,
    terminal_delivers: Callable[[int], bool] = process.terminal_delivers,
) -> int:
    """Run ``argv`` with ``env``, forward signals to it, and return its exit status as a shell
    reports it (128 + N when signal N ended it)."""
    if not argv:
        raise UsageError("no command given: keyless exec [options] -- COMMAND [ARG...]")
    try:
        return process.run_foreground(
            process.Launch(argv=tuple(argv), env=env),
            spawn=lambda launch: spawn(launch.argv, launch.env),
            skip=terminal_delivers,
        )
    except FileNotFoundError:
        raise CommandNotFoundError(f"command {argv[0]!r} not found") from None
    except PermissionError:
        raise CommandNotExecutableError(f"command {argv[0]!r} cannot be executed") from None
    except OSError as exc:
        raise CommandNotExecutableError(
            f"command {argv[0]!r} cannot be run: {exc.strerror or exc}"
        ) from None
