"""CloudFront invalidation paths: explicit when few, wildcards within CloudFront's limits."""

from __future__ import annotations

from keyless.deploy.invalidate import invalidation_paths
from keyless.limits import CLOUDFRONT_MAX_WILDCARD_PATHS


def test_few_paths_stay_explicit_and_encoded() -> None:
    assert invalidation_paths(["index.html", "docs/index.html", "a b/ü.js"]) == [
        "/",
        "/a%20b/%C3%BC.js",
        "/docs/",
        "/docs/index.html",
        "/index.html",
    ]


def test_many_paths_collapse_to_directories() -> None:
    keys = [f"assets/{i}.js" for i in range(500)] + ["index.html"]
    assert invalidation_paths(keys) == ["/", "/assets/*", "/index.html"]


def test_too_many_directories_collapse_to_everything() -> None:
    keys = [f"d{j}/{i}.js" for j in range(CLOUDFRONT_MAX_WILDCARD_PATHS + 1) for i in range(10)]
    assert invalidation_paths(keys) == ["/*"]


def test_nothing_changed_means_no_paths() -> None:
    assert invalidation_paths([]) == []
