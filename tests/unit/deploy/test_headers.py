"""Content types browsers need, per-glob rules, validation of ACL, storage class and dates."""

from __future__ import annotations

import pytest

from keyless import limits
from keyless.deploy.headers import HeaderPolicy, Rule, content_type, http_date
from keyless.errors import UsageError


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("index.html", ("text/html; charset=utf-8", None)),
        ("app.js", ("text/javascript; charset=utf-8", None)),
        ("mod.mjs", ("text/javascript; charset=utf-8", None)),
        ("x.wasm", ("application/wasm", None)),
        ("logo.svg", ("image/svg+xml; charset=utf-8", None)),
        ("a.webp", ("image/webp", None)),
        ("a.avif", ("image/avif", None)),
        ("data.json", ("application/json; charset=utf-8", None)),
        ("app.js.map", ("application/json; charset=utf-8", None)),
        ("f.woff2", ("font/woff2", None)),
        ("site.webmanifest", ("application/manifest+json; charset=utf-8", None)),
        ("UPPER.CSS", ("text/css; charset=utf-8", None)),
        ("app.js.br", ("text/javascript; charset=utf-8", "br")),
        ("style.css.gz", ("text/css; charset=utf-8", "gzip")),
        ("backup.tar.gz", ("application/gzip", None)),
        ("README", ("application/octet-stream", None)),
        ("dir.v2/noext", ("application/octet-stream", None)),
    ],
)
def test_content_types(key: str, expected: tuple[str, str | None]) -> None:
    assert content_type(key) == expected


def test_rules_apply_in_order_and_empty_removes() -> None:
    policy = HeaderPolicy(
        cache_control="max-age=60",
        acl="public-read",
        storage_class="STANDARD_IA",
        metadata={"build": "42"},
        rules=[
            Rule.parse("assets/*:cache-control=public, max-age=31536000, immutable"),
            Rule.parse("index.html:cache-control=no-cache"),
            Rule.parse("*.gz:content-encoding="),
            Rule.parse("*.pdf:content-disposition=attachment"),
            Rule.parse("*:x-amz-meta-team=web"),
        ],
    )
    assets = policy.for_key("assets/app.3f2a.js")
    assert assets.cache_control == "public, max-age=31536000, immutable"
    assert policy.for_key("index.html").cache_control == "no-cache"
    assert policy.for_key("other.html").cache_control == "max-age=60"
    assert policy.for_key("x.css.gz").content_encoding is None
    assert policy.for_key("x.pdf").content_disposition == "attachment"
    http = dict(assets.http())
    assert http["x-amz-acl"] == "public-read"
    assert http["x-amz-storage-class"] == "STANDARD_IA"
    assert http["x-amz-meta-build"] == "42"
    assert http["x-amz-meta-team"] == "web"
    assert assets.digest() != policy.for_key("index.html").digest()
    assert assets.digest() == policy.for_key("assets/other.js").digest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-colon", "is not GLOB:header=value"),
        ("*.js:cache-control", "is not GLOB:header=value"),
        ("*.js:x-evil=1", "which a rule cannot set"),
        ("*.js:x-amz-meta-Bad_Name=1", "metadata name"),
        ("*.js:expires=someday", "is not a date"),
    ],
)
def test_bad_rules_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Rule.parse(text)


def test_keys_with_the_same_outcome_share_one_headers_object() -> None:
    policy = HeaderPolicy(rules=[Rule.parse("assets/*:cache-control=immutable")])
    first, second = policy.for_key("a/one.html"), policy.for_key("b/two.html")
    assert first is second
    assert first.content_type == "text/html; charset=utf-8"
    asset = policy.for_key("assets/three.html")
    assert asset is not first
    assert asset.cache_control == "immutable"
    assert first.cache_control is None
    assert policy.for_key("a/four.css") is not first
    assert policy.for_key("a/five.html.gz").content_encoding == "gzip"
    assert policy.for_key("a/six.html").content_encoding is None


def test_sharing_stops_at_its_limit_and_stays_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "DEPLOY_SHARED_HEADERS_MAX", 1)
    policy = HeaderPolicy()
    html = policy.for_key("a.html")
    assert policy.for_key("b.html") is html
    css, again = policy.for_key("a.css"), policy.for_key("b.css")
    assert css is not again
    assert css == again
    assert css.content_type == "text/css; charset=utf-8"


def test_bad_acl_and_storage_class_are_refused() -> None:
    with pytest.raises(UsageError, match="--acl 'public' is not a canned ACL"):
        HeaderPolicy(acl="public")
    with pytest.raises(UsageError, match="--storage-class 'COLD'"):
        HeaderPolicy(storage_class="COLD")


def test_http_date() -> None:
    assert http_date("2030-01-01T00:00:00Z") == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert http_date("2030-01-01") == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert http_date("Tue, 01 Jan 2030 00:00:00 GMT") == "Tue, 01 Jan 2030 00:00:00 GMT"
