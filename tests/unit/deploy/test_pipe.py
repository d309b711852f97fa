"""The Atlassian pipes' variables, read into keyless requests; refusals name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyless.deploy.pipe import invalidation, s3_deploy_request, settings
from keyless.errors import UsageError

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
