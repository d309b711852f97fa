"""The Atlassian pipes' variables, read into keyless requests; refusals name the variable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from keyless.deploy.pipe import (
    S3_DEPLOY_VARIABLES,
    delete_refused,
    invalidation,
    pre_execution_script,
    run_pre_execution_script,
    s3_deploy_request,
    settings,
    token_error,
)
from keyless.deploy.plan import DeleteRefusedError
from keyless.errors import CredentialError, UsageError

BASE = {"S3_BUCKET": "my-site/www", "LOCAL_PATH": "dist"}


def test_all_variables() -> None:
    request = s3_deploy_request(
        {
            **BASE,
            "ACL": "public-read",
            "CACHE_CONTROL": "max-age=60",
            "CONTENT_ENCODING": "gzip",
            "EXPIRES": "2030-01-01T00:00:00Z",
            "STORAGE_CLASS": "STANDARD_IA",
            "DELETE_FLAG": "true",
            "EXTRA_ARGS": "--exclude '*.map' --include=keep.map --metadata a=1,b=2 --dryrun"
            " --follow-symlinks --content-type text/plain",
        }
    )
    assert request.local_dir == Path("dist")
    assert (request.target.bucket, request.target.prefix) == ("my-site", "www/")
    assert request.delete
    assert request.dry_run
    assert request.filters.exclude == ("*.map",)
    assert request.filters.include == ("keep.map",)
    headers = request.headers.for_key("app.js")
    assert headers.acl == "public-read"
    assert headers.cache_control == "max-age=60"
    assert headers.content_encoding == "gzip"
    assert headers.expires == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert headers.storage_class == "STANDARD_IA"
    assert headers.metadata == (("a", "1"), ("b", "2"))
    assert headers.content_type == "text/plain"


def test_defaults_keep_the_delete_guard_and_no_delete() -> None:
    request = s3_deploy_request(BASE)
    assert not request.delete
    assert request.max_delete_percent == 50
    assert not request.force


def test_json_metadata() -> None:
    request = s3_deploy_request({**BASE, "EXTRA_ARGS": """--metadata '{"Team": "web"}'"""})
    assert request.headers.for_key("a").metadata == (("team", "web"),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOCAL_PATH": "dist"}, "the variable S3_BUCKET is not set"),
        ({"S3_BUCKET": "b-1"}, "the variable LOCAL_PATH is not set"),
        ({**BASE, "EXTRA_ARGS": "--sse AES256"}, "EXTRA_ARGS option '--sse' is not supported"),
        ({**BASE, "EXTRA_ARGS": "--size-only"}, "EXTRA_ARGS option '--size-only' is not supported"),
        ({**BASE, "EXTRA_ARGS": "--exclude"}, "EXTRA_ARGS option --exclude has no value"),
        ({**BASE, "ACL": "public"}, "--acl 'public' is not a canned ACL"),
        # A value that is neither true nor false was read as false: now it is refused.
        ({**BASE, "DELETE_FLAG": "maybe"}, "DELETE_FLAG is 'maybe'; use true or false"),
        ({**BASE, "FORCE_DELETE": "sure"}, "FORCE_DELETE is 'sure'; use true or false"),
        ({**BASE, "MAX_DELETE_PERCENT": "80%"}, "MAX_DELETE_PERCENT is '80%'; use a number"),
        ({**BASE, "MAX_DELETE_PERCENT": "101"}, "MAX_DELETE_PERCENT is '101'; use a number"),
        ({**BASE, "MAX_DELETE_PERCENT": "nan"}, "MAX_DELETE_PERCENT is 'nan'; use a number"),
        # An unterminated quote was an internal error (shlex's ValueError).
        ({**BASE, "EXTRA_ARGS": '--exclude "*.map'}, "EXTRA_ARGS '--exclude \"*.map' is not"),
        ({**BASE, "EXTRA_ARGS": "--exclude a\\"}, "is not valid shell words"),
    ],
)
def test_refusals(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        s3_deploy_request(env)
    assert message in str(caught.value)


def test_invalidation_variables() -> None:
    assert invalidation({"DISTRIBUTION_ID": "E1"}).paths == ("/*",)
    assert invalidation({"DISTRIBUTION_ID": "E1", "PATHS": "/a /b/*"}).paths == ("/a", "/b/*")
    with pytest.raises(UsageError, match="DISTRIBUTION_ID is not set"):
        invalidation({})
    with pytest.raises(UsageError, match="does not start with"):
        invalidation({"DISTRIBUTION_ID": "E1", "PATHS": "index.html"})


def test_settings() -> None:
    found = settings({"AWS_OIDC_ROLE_ARN": "arn:aws:iam::1:role/r", "DEBUG": "true"})
    assert found.role_arn == "arn:aws:iam::1:role/r"
    assert found.debug
    assert settings({}).role_arn is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False), ("no", False)],
)
def test_booleans(value: str, expected: bool) -> None:
    assert s3_deploy_request({**BASE, "DELETE_FLAG": value}).delete is expected
    assert s3_deploy_request({**BASE, "FORCE_DELETE": value}).force is expected


def test_the_delete_guard_can_be_raised_or_forced_from_the_variables() -> None:
    raised = s3_deploy_request({**BASE, "DELETE_FLAG": "true", "MAX_DELETE_PERCENT": "90"})
    assert (raised.delete, raised.max_delete_percent, raised.force) == (True, 90.0, False)
    forced = s3_deploy_request({**BASE, "DELETE_FLAG": "true", "FORCE_DELETE": "true"})
    assert forced.force


def test_the_delete_refusal_names_the_pipe_variables() -> None:
    refused = delete_refused(DeleteRefusedError(would_delete=3, remote=4, limit=50))
    assert str(refused) == (
        "aws-s3-deploy: refusing to delete 3 of 4 objects (75%), more than MAX_DELETE_PERCENT 50%"
    )
    assert "FORCE_DELETE: 'true'" in refused.diagnostics()
    assert "--force" not in refused.diagnostics()
    assert "--max-delete" not in refused.diagnostics()


def test_debug_must_be_a_boolean() -> None:
    with pytest.raises(UsageError, match="DEBUG is 'verbose'; use true or false"):
        settings({"DEBUG": "verbose"})


def test_the_token_error_advises_in_pipe_variables_not_cli_flags() -> None:
    cli = CredentialError(
        "no CI detected", remedy="force one with --ci NAME, or pass --token-file PATH"
    )
    advice = token_error(cli, "aws-s3-deploy").diagnostics()
    assert advice.startswith("aws-s3-deploy: AWS_OIDC_ROLE_ARN is set, but no CI detected")
    for flag in ("--ci", "--token-file", "--token-env", "--allow-static-fallback"):
        assert flag not in advice
    assert "oidc: true" in advice
    assert "AWS_OIDC_ROLE_ARN: $AWS_OIDC_ROLE_ARN" in advice


class _Runner:
    def __init__(self, code: int) -> None:
        self.code = code
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], timeout: float) -> int:
        self.calls.append((list(argv), timeout))
        return self.code


def test_pre_execution_script_runs_with_a_shell_and_its_failure_fails_the_pipe(
    tmp_path: Path,
) -> None:
    script = tmp_path / "before.sh"
    script.write_text("exit 3\n")
    env = {"PRE_EXECUTION_SCRIPT": str(script), "PATH": "/usr/bin:/bin"}
    found = pre_execution_script(env)
    assert found == script
    ok = _Runner(0)
    run_pre_execution_script(script, env, runner=ok)
    ((argv, timeout),) = ok.calls
    assert Path(argv[0]).name in ("bash", "sh")
    assert argv[1:] == [str(script)]
    assert timeout > 0
    with pytest.raises(UsageError, match=r"PRE_EXECUTION_SCRIPT '.*before.sh' exited with 3"):
        run_pre_execution_script(script, env, runner=_Runner(3))
    assert pre_execution_script({}) is None


def test_a_missing_pre_execution_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"PRE_EXECUTION_SCRIPT 'nope\.sh' is not a file"):
        pre_execution_script({"PRE_EXECUTION_SCRIPT": "nope.sh"})


def test_every_variable_is_named_once() -> None:
    names = [variable.name for variable in S3_DEPLOY_VARIABLES]
    assert len(names) == len(set(names))
    assert {"S3_BUCKET", "LOCAL_PATH"} == {v.name for v in S3_DEPLOY_VARIABLES if v.required}
