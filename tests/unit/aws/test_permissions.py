"""The --s3-deploy preset grants keyless deploy's calls on one prefix only; --policy files are
checked as IAM checks an identity policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyless.aws.permissions import (
    S3DeployPreset,
    S3Location,
    check_permission_policy,
    load_permission_policy,
    parse_distribution_id,
    parse_s3_location,
    s3_deploy_policy,
)
from keyless.errors import PolicyError, UsageError
from keyless.limits import IAM_INLINE_POLICY_MAX_CHARS
from keyless.trust.model import parse_policy, to_document

ACCOUNT = "123456789012"


def statements(preset: S3DeployPreset, partition: str = "aws") -> dict[str, dict[str, Any]]:
    document = to_document(s3_deploy_policy(preset, account_id=ACCOUNT, partition=partition))
    assert document["Version"] == "2012-10-17"
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_a_prefix_limits_listing_with_s3_prefix_and_writes_to_the_prefix() -> None:
    found = statements(S3DeployPreset(location=parse_s3_location("site-bucket/www/app")))
    assert found == {
        "ListThePrefix": {
            "Sid": "ListThePrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::site-bucket",
            "Condition": {"StringLike": {"s3:prefix": "www/app/*"}},
        },
        "WriteUnderThePrefix": {
            "Sid": "WriteUnderThePrefix",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
            "Resource": "arn:aws:s3:::site-bucket/www/app/*",
        },
    }


def test_no_delete_without_allow_delete_and_delete_under_the_prefix_with_it() -> None:
    location = parse_s3_location("site-bucket/www")
    without = statements(S3DeployPreset(location=location))
    assert not any("s3:DeleteObject" in json.dumps(s) for s in without.values())
    with_delete = statements(S3DeployPreset(location=location, allow_delete=True))
    assert with_delete["DeleteUnderThePrefix"]["Action"] == "s3:DeleteObject"
    assert with_delete["DeleteUnderThePrefix"]["Resource"] == "arn:aws:s3:::site-bucket/www/*"


def test_a_whole_bucket_lists_without_condition() -> None:
    found = statements(S3DeployPreset(location=parse_s3_location("s3://site-bucket")))
    assert "Condition" not in found["ListThePrefix"]
    assert found["WriteUnderThePrefix"]["Resource"] == "arn:aws:s3:::site-bucket/*"


def test_invalidation_is_on_the_one_distribution_of_the_account_and_partition() -> None:
    preset = S3DeployPreset(
        location=parse_s3_location("b-1/x"), distribution=parse_distribution_id("E2QWRUHEXAMPLE")
    )
    found = statements(preset, partition="aws-cn")
    assert found["InvalidateTheDistribution"] == {
        "Sid": "InvalidateTheDistribution",
        "Effect": "Allow",
        "Action": "cloudfront:CreateInvalidation",
        "Resource": f"arn:aws-cn:cloudfront::{ACCOUNT}:distribution/E2QWRUHEXAMPLE",
    }
    assert found["ListThePrefix"]["Resource"] == "arn:aws-cn:s3:::b-1"
    assert "InvalidateTheDistribution" not in statements(
        S3DeployPreset(location=S3Location(bucket="b-1"))
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bucket", S3Location(bucket="bucket")),
        ("bucket/", S3Location(bucket="bucket")),
        ("s3://bucket/a/b/", S3Location(bucket="bucket", prefix="a/b/")),
        ("my.bucket-1/site", S3Location(bucket="my.bucket-1", prefix="site/")),
    ],
)
def test_locations(text: str, expected: S3Location) -> None:
    assert parse_s3_location(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Bucket/x", "'Bucket'"),
        ("ab", "'ab'"),
        ("a..b/x", "'a..b'"),
        ("-bucket", "'-bucket'"),
        ("bucket/a*", "'a*'"),
        ("bucket/${aws:username}", "'${aws:username}'"),
        ("bucket/a?b", "'a?b'"),
        ("bucket/a//b", "'a//b'"),
    ],
)
def test_bad_locations_are_refused_naming_the_value(text: str, named: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_s3_location(text)
    assert named in caught.value.message


def test_a_bad_distribution_id_is_refused() -> None:
    with pytest.raises(UsageError, match="'e123'"):
        parse_distribution_id("e123")


def _policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return document


ALLOW_GET = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_policy(ALLOW_GET, version=None), 'Version must be "2012-10-17"'),
        (_policy(ALLOW_GET, version="2008-10-17"), 'Version must be "2012-10-17"'),
        (_policy({**ALLOW_GET, "Principal": "*"}), "has a Principal"),
        (_policy({"Effect": "Allow", "Action": "s3:GetObject"}), "has no Resource"),
    ],
)
def test_identity_policy_rules(document: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        check_permission_policy(parse_policy(document))


def test_an_empty_statement_list_allows_nothing_and_is_refused() -> None:
    with pytest.raises(PolicyError):
        check_permission_policy(parse_policy(_policy()))


def test_a_policy_over_the_inline_quota_is_refused() -> None:
    big = [f"arn:aws:s3:::b/{'x' * 90}{n}" for n in range(IAM_INLINE_POLICY_MAX_CHARS // 90)]
    with pytest.raises(PolicyError, match="more than the 10240"):
        check_permission_policy(parse_policy(_policy({**ALLOW_GET, "Resource": big})))


def test_a_policy_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_policy(ALLOW_GET)), encoding="utf-8")
    assert to_document(load_permission_policy(path))["Statement"][0]["Action"] == "s3:GetObject"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON at line 1"),
        ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}', "Action"),
        (json.dumps(_policy({**ALLOW_GET, "Principal": {"AWS": "*"}})), "has a Principal"),
    ],
)
def test_a_bad_policy_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_permission_policy(path)
    assert str(path) in caught.value.message
    assert message in caught.value.message


def test_a_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_permission_policy(tmp_path / "missing.json")
