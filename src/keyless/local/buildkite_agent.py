"""``buildkite-agent`` in jobs that ``keyless local run --ci buildkite`` starts: ``oidc
request-token`` asks the local stack, as the real agent asks Buildkite
(docs/ci-tokens.md#buildkite).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from keyless.ci.local_issuers import CA_VARIABLE
from keyless.errors import KeylessError
from keyless.http import HttpClient, UrllibClient

ENDPOINT_VARIABLE = "BUILDKITE_AGENT_ENDPOINT"
ACCESS_VARIABLE = "BUILDKITE_AGENT_ACCESS_TOKEN"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(f"{self.prog}: {message}")


class _Refused(Exception):
    pass


def main(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    http: HttpClient | None = None,
) -> int:
    """Print a token for the job, like ``buildkite-agent oidc request-token``; 1 on failure."""
    try:
        token = _request_token(argv, env, http)
    except (_Refused, KeylessError) as exc:
        print(f"buildkite-agent (keyless local): {exc}", file=stderr)
        return 1
    stdout.write(token + "\n")
    return 0


def _request_token(argv: Sequence[str], env: Mapping[str, str], http: HttpClient | None) -> str:
    if list(argv[:2]) != ["oidc", "request-token"]:
        raise _Refused("only `oidc request-token` is emulated")
    parser = _Parser(prog="buildkite-agent oidc request-token", add_help=False)
    parser.add_argument("--audience")
    parser.add_argument("--lifetime", type=int)
    parser.add_argument("--claim")
    parser.add_argument("--aws-session-tag")
    parser.add_argument("--skip-redaction", action="store_true")
    args = parser.parse_args(list(argv[2:]))
    if args.claim or args.aws_session_tag:
        raise _Refused("--claim and --aws-session-tag are not emulated by the local stack")
    endpoint, access = env.get(ENDPOINT_VARIABLE), env.get(ACCESS_VARIABLE)
    if not endpoint or not access:
        raise _Refused(f"{ENDPOINT_VARIABLE} and {ACCESS_VARIABLE} must be set (run in a job)")
    query = {}
    if args.audience is not None:
        query["audience"] = args.audience
    if args.lifetime is not None:
        query["lifetime"] = str(args.lifetime)
    url = endpoint.rstrip("/") + "/oidc/tokens"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    ca = env.get(CA_VARIABLE)
    client = http or UrllibClient(ca_bundle=Path(ca) if ca else None)
    response = client.get(url, headers={"Authorization": f"Token {access}"})
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    if response.status != 200 or not isinstance(document, dict):
        message = document.get("message") if isinstance(document, dict) else None
        raise _Refused(f"the agent API answered HTTP {response.status}: {message or 'no detail'}")
    token = document.get("token")
    if not isinstance(token, str):
        raise _Refused("the agent API's answer has no token")
    return token


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], env=os.environ, stdout=sys.stdout, stderr=sys.stderr))
