"""CloudFront invalidation paths for a deploy: the changed keys, collapsed into wildcards when
they are many, within CloudFront's limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from keyless.limits import (
    CLOUDFRONT_MAX_EXPLICIT_PATHS,
    CLOUDFRONT_MAX_WILDCARD_PATHS,
)


def invalidation_paths(keys: Iterable[str]) -> list[str]:
    """URL paths to invalidate for the changed ``keys`` (S3 keys, no leading ``/``).

    ``dir/index.html`` also invalidates ``dir/`` (the URL people use). Many paths are collapsed
    into ``/dir/*`` at the deepest level that fits the limits, and ``/*`` at worst.
    """
    paths: set[str] = set()
    for key in keys:
        paths.add("/" + key)
        if key == "index.html" or key.endswith("/index.html"):
            paths.add("/" + key.removesuffix("index.html"))
    if not paths:
        return []
    if len(paths) <= CLOUDFRONT_MAX_EXPLICIT_PATHS:
        return sorted(_encode(p) for p in paths)
    depth = max(p.count("/") for p in paths)
    for level in range(depth - 1, 0, -1):
        collapsed = {_collapse(p, level) for p in paths}
        wildcards = sum(1 for p in collapsed if p.endswith("*"))
        if (
            wildcards <= CLOUDFRONT_MAX_WILDCARD_PATHS
            and len(collapsed) <= CLOUDFRONT_MAX_EXPLICIT_PATHS
        ):
            return sorted(_encode(p) for p in collapsed)
    return ["/*"]


def _collapse(path: str, level: int) -> str:
    """``/a/b/c.js`` at level 1 is ``/a/*``; paths at or above the level stay as they are."""
    parts = path.split("/")
    if len(parts) - 1 <= level:
        return path
    return "/".join(parts[: level + 1]) + "/*"


def _encode(path: str) -> str:
    # CloudFront wants URL-encoded paths (RFC 1738 unsafe and non-ASCII characters); '*' stays.
    return quote(path, safe="/*~-_.")
