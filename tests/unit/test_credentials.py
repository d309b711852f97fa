"""keyless.credentials: the output formats, the config-file profile, the child's environment and
running a command (exit codes, signals)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from keyless.arn import AccountId, RoleArn
from keyless.aws.sts import TemporaryCredentials
from keyless.ci.base import RawToken
from keyless.credentials import (
    REMOVED_VARIABLES,
    CommandNotFoundError,
    OutputFormat,
    child_environment,
    config_file_path,
    render,
    render_process_json,
    run_command,
    set_profile,
    write_github_env,
    write_profile,
)
from keyless.errors import OutputError, UsageError

CREDENTIALS = TemporaryCredentials(
    access_key_id="ASIAKEYLESSTEST00001",
    secret_access_key="wJalr/K7MDENG+bPxRfi'CY$EXAMPLEKEY",
    session_token="IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJ=",
    expiration=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    account_id=AccountId("123456789012"),
)
ROLE = RoleArn("arn:aws:iam::123456789012:role/deploy")
TOKEN = RawToken("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")


def _shell(text: str, command: str) -> str:
    """What bash prints for ``command`` after evaluating ``text``."""
    result = subprocess.run(  # noqa: S603 - fixed program, the text is keyless' own output
        ["/bin/bash", "-c", f'eval "$1"; {command}', "bash", text],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    return result.stdout


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.prints_secrets("stdout", "argv")  # the shell evaluates the env output it is handed
def test_env_format_survives_eval_in_a_real_shell() -> None:
    text = render(OutputFormat.ENV, CREDENTIALS, region="eu-west-1")
    assert all(line.startswith("export AWS_") for line in text.splitlines())
    printed = _shell(
        text,
        'printf "%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN"'
        ' "$AWS_CREDENTIAL_EXPIRATION" "$AWS_REGION" "$AWS_DEFAULT_REGION"',
    )
    assert printed.splitlines() == [
        CREDENTIALS.access_key_id,
        CREDENTIALS.secret_access_key,
        CREDENTIALS.session_token,
        "2030-01-02T03:04:05Z",
        "eu-west-1",
        "eu-west-1",
    ]


def test_env_format_leaves_the_region_alone_unless_given() -> None:
    text = render(OutputFormat.ENV, CREDENTIALS)
    assert "AWS_REGION" not in text


def test_dotenv_quotes_only_what_needs_it() -> None:
    text = render(OutputFormat.DOTENV, CREDENTIALS)
    lines = dict(line.split("=", 1) for line in text.splitlines())
    assert lines["AWS_ACCESS_KEY_ID"] == CREDENTIALS.access_key_id
    # docker --env-file takes values literally: plain AWS values stay unquoted.
    assert lines["AWS_SESSION_TOKEN"] == CREDENTIALS.session_token
    assert lines["AWS_SECRET_ACCESS_KEY"] == '"' + CREDENTIALS.secret_access_key + '"'


def test_json_is_the_credential_process_document() -> None:
    document = json.loads(render_process_json(CREDENTIALS))
    assert document == {
        "Version": 1,
        "AccessKeyId": CREDENTIALS.access_key_id,
        "SecretAccessKey": CREDENTIALS.secret_access_key,
        "SessionToken": CREDENTIALS.session_token,
        "Expiration": "2030-01-02T03:04:05Z",
        "AccountId": "123456789012",
    }
    assert render(OutputFormat.JSON, CREDENTIALS) == render_process_json(CREDENTIALS)


@pytest.mark.prints_secrets("file")  # GITHUB_ENV is the runner's file, written by design
def test_github_masks_first_then_appends_to_its_env_file(tmp_path: Path) -> None:
    github_env = tmp_path / "github_env"
    github_env.write_text("EARLIER=1\n")
    out = io.StringIO()
    write_github_env(CREDENTIALS, env={"GITHUB_ENV": str(github_env)}, stdout=out)
    assert out.getvalue().splitlines() == [
        f"::add-mask::{CREDENTIALS.access_key_id}",
        f"::add-mask::{CREDENTIALS.secret_access_key}",
        f"::add-mask::{CREDENTIALS.session_token}",
    ]
    lines = github_env.read_text().splitlines()
    assert lines[0] == "EARLIER=1"
    assert f"AWS_SECRET_ACCESS_KEY={CREDENTIALS.secret_access_key}" in lines
    assert "AWS_CREDENTIAL_EXPIRATION=2030-01-02T03:04:05Z" in lines


def test_github_needs_its_env_file() -> None:
    with pytest.raises(UsageError, match="--format github needs GITHUB_ENV"):
        write_github_env(CREDENTIALS, env={}, stdout=io.StringIO())


def test_a_value_with_a_line_break_is_never_written() -> None:
    bad = TemporaryCredentials(
        access_key_id="A\nAWS_ROLE_ARN=x",
        secret_access_key="s",
        session_token="t",
        expiration=CREDENTIALS.expiration,
    )
    with pytest.raises(OutputError, match="line break"):
        render(OutputFormat.DOTENV, bad)


# --- profiles ------------------------------------------------------------------------------------

SETTINGS = {
    "role_arn": ROLE,
    "web_identity_token_file": "/home/ci/.aws/keyless/ci.token",
    "role_session_name": "bitbucket-site-42",
    "region": "eu-west-1",
}

EXISTING = textwrap.dedent(
    """\
    # my settings
    [default]
    region = us-east-1
    output = json

    [profile ci]
    role_arn = arn:aws:iam::111111111111:role/old
    ; a comment kept in place
    s3 =
      max_concurrent_requests = 20
    region=us-west-2
      continued = yes

    [profile other]
    aws_access_key_id = AKIAOTHER
    """
)


def test_set_profile_changes_only_its_keys_in_its_section() -> None:
    result = set_profile(EXISTING, "ci", SETTINGS)
    assert result.startswith("# my settings\n[default]\nregion = us-east-1\noutput = json\n\n")
    assert result.endswith("\n[profile other]\naws_access_key_id = AKIAOTHER\n")
    section = result.split("[profile ci]\n", 1)[1].split("[profile other]", 1)[0]
    assert section == (
        "; a comment kept in place\n"
        "s3 =\n"
        "  max_concurrent_requests = 20\n"
        f"role_arn = {ROLE}\n"
        "web_identity_token_file = /home/ci/.aws/keyless/ci.token\n"
        "role_session_name = bitbucket-site-42\n"
        "region = eu-west-1\n"
        "\n"
    )
    assert "old" not in result
    assert "continued" not in result
    assert set_profile(result, "ci", SETTINGS) == result  # idempotent


def test_set_profile_appends_a_missing_section() -> None:
    assert set_profile("", "ci", {"region": "x"}) == "[profile ci]\nregion = x\n"
    assert set_profile("[default]\nregion = y", "ci", {"region": "x"}) == (
        "[default]\nregion = y\n\n[profile ci]\nregion = x\n"
    )


def test_default_is_touched_only_when_named() -> None:
    result = set_profile(EXISTING, "default", {"region": "x"})
    assert result.startswith("# my settings\n[default]\noutput = json\nregion = x\n\n[profile ci]")
    assert set_profile("[profile default]\nregion = y\n", "default", {"region": "x"}) == (
        "[profile default]\nregion = x\n"
    )
    # A profile called "defaults" or a section [ci] (not a profile in the config file) is not it.
    assert set_profile("[ci]\nregion = y\n", "ci", {"region": "x"}) == (
        "[ci]\nregion = y\n\n[profile ci]\nregion = x\n"
    )


def test_set_profile_refuses_values_that_would_break_the_file() -> None:
    with pytest.raises(OutputError):
        set_profile("", "ci", {"region": "x\n[default]"})


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "AWS_CONFIG_FILE": str(tmp_path / "aws" / "config")}


def test_write_profile_writes_a_private_token_and_keeps_the_rest(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = Path(env["AWS_CONFIG_FILE"])
    config.parent.mkdir()
    config.write_text(EXISTING)
    written = write_profile(
        profile="ci",
        role_arn=ROLE,
        session_name="bitbucket-site-42",
        region="eu-west-1",
        token=TOKEN,
        env=env,
    )
    assert written.config_file == config
    assert written.token_file == tmp_path / "aws" / "keyless" / "ci.token"
    assert written.token_file.read_text() == TOKEN  # exactly the token: no newline
    assert stat.S_IMODE(written.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.token_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert text.split("[profile ci]")[0] == EXISTING.split("[profile ci]")[0]
    assert f"web_identity_token_file = {written.token_file}\n" in text
    assert "[profile other]\naws_access_key_id = AKIAOTHER\n" in text
    # A second run replaces the token, never appends to it.
    write_profile(profile="ci", role_arn=ROLE, session_name="s2", region="x", token=TOKEN, env=env)
    assert written.token_file.read_text() == TOKEN
    assert config.read_text().count("[profile ci]") == 1


def test_write_profile_creates_folders_and_files(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    written = write_profile(
        profile="deploy", role_arn=ROLE, session_name="s1", region="x", token=TOKEN, env=env
    )
    assert written.config_file == tmp_path / "home" / ".aws" / "config"
    assert written.config_file.read_text().startswith("[profile deploy]\n")
    assert "[default]" not in written.config_file.read_text()
    assert stat.S_IMODE((tmp_path / "home" / ".aws").stat().st_mode) == 0o700


def test_a_refused_config_leaves_no_token_behind(tmp_path: Path) -> None:
    env = _env(tmp_path)
    config = Path(env["AWS_CONFIG_FILE"])
    config.parent.mkdir()
    (tmp_path / "elsewhere").write_text("[default]\n")
    config.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        write_profile(
            profile="ci", role_arn=ROLE, session_name="s1", region="x", token=TOKEN, env=env
        )
    assert not (tmp_path / "aws" / "keyless" / "ci.token").exists()
    assert (tmp_path / "elsewhere").read_text() == "[default]\n"


@pytest.mark.parametrize("name", ["", "a b", "../x", "-x", "x/y", "p" * 65])
def test_profile_names_are_checked(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="--profile"):
        write_profile(
            profile=name,
            role_arn=ROLE,
            session_name="s1",
            region="x",
            token=TOKEN,
            env=_env(tmp_path),
        )


def test_config_file_path_expands_home_of_the_environment() -> None:
    assert config_file_path({"HOME": "/h"}) == Path("/h/.aws/config")
    assert config_file_path({"HOME": "/h", "AWS_CONFIG_FILE": "~/cfg"}) == Path("/h/cfg")


# --- exec ----------------------------------------------------------------------------------------


def test_the_child_environment_has_only_the_roles_credentials() -> None:
    outer = dict.fromkeys(REMOVED_VARIABLES, "outer")
    outer.update(PATH="/bin", BITBUCKET_BUILD_NUMBER="42", AWS_REGION="eu-west-1")
    child = child_environment(outer, CREDENTIALS)
    assert child["AWS_ACCESS_KEY_ID"] == CREDENTIALS.access_key_id
    assert child["AWS_SECRET_ACCESS_KEY"] == CREDENTIALS.secret_access_key
    assert child["AWS_SESSION_TOKEN"] == CREDENTIALS.session_token
    for name in (
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_SECURITY_TOKEN",
    ):
        assert name not in child
    assert "outer" not in child.values()
    assert child["PATH"] == "/bin"
    assert child["BITBUCKET_BUILD_NUMBER"] == "42"
    assert child["AWS_REGION"] == "eu-west-1"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_exec_returns_the_childs_exit_status() -> None:
    assert run_command(_python("raise SystemExit(7)"), dict(os.environ)) == 7
    assert run_command(_python("pass"), dict(os.environ)) == 0


def test_exec_of_a_missing_command_is_127() -> None:
    with pytest.raises(CommandNotFoundError) as caught:
        run_command(["keyless-no-such-command-x"], dict(os.environ))
    assert caught.value.exit_code == 127


def test_a_child_ended_by_a_signal_reports_128_plus_n() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert run_command(_python(code), dict(os.environ)) == 128 + signal.SIGKILL


class _Recorder:
    """A fake child: records the signals it is sent; ``wait`` raises one at itself first."""

    pid = 4242

    def __init__(self, raise_signal: int) -> None:
        self.raise_signal = raise_signal
        self.received: list[int] = []

    def wait(self) -> int:
        signal.raise_signal(self.raise_signal)
        return 0

    def send_signal(self, sig: int) -> None:
        self.received.append(sig)


def test_signals_sent_to_keyless_reach_the_child() -> None:
    child = _Recorder(signal.SIGTERM)

    def spawn(argv: Sequence[str], env: Mapping[str, str]) -> _Recorder:
        return child

    before = signal.getsignal(signal.SIGTERM)
    run_command(["x"], {}, spawn=spawn, terminal_delivers=lambda _sig: False)
    assert child.received == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_ctrl_c_from_the_terminal_is_not_sent_twice() -> None:
    child = _Recorder(signal.SIGINT)

    def spawn(argv: Sequence[str], env: Mapping[str, str]) -> _Recorder:
        return child

    run_command(["x"], {}, spawn=spawn, terminal_delivers=lambda sig: sig == signal.SIGINT)
    assert child.received == []


def test_sigterm_to_a_real_keyless_exec_reaches_the_child(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        "time.sleep(30)\n"
    )
    runner = (
        "import sys\n"
        "from keyless.credentials import run_command\n"
        f"sys.exit(run_command([sys.executable, '-c', {child!r}], {{}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen([sys.executable, "-c", runner], env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 42
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_exec_needs_a_command() -> None:
    with pytest.raises(UsageError, match="no command given"):
        run_command([], {})


def test_shell_quoting_is_the_standard_one() -> None:
    text = render(OutputFormat.ENV, CREDENTIALS)
    assert f"export AWS_SECRET_ACCESS_KEY={shlex.quote(CREDENTIALS.secret_access_key)}" in text
