"""The options that choose where a CI job's token comes from: one definition for every command."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from keyless.ci_names import PROVIDER_NAMES
from keyless.errors import UsageError

if TYPE_CHECKING:
    from keyless.http import HttpClient


def add_token_source_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--ci``, ``--audience``, ``--token-file`` and ``--token-env`` to ``parser``."""
    parser.add_argument(
        "--ci",
        choices=["auto", *PROVIDER_NAMES],
        default="auto",
        help="where to get the token ('file': a token file; default: auto)",
    )
    parser.add_argument("--audience", metavar="AUD", help="the audience (aud) the token must have")
    parser.add_argument("--token-file", metavar="PATH", help="read the token from this file")
    parser.add_argument(
        "--token-env", metavar="NAME", help="GitLab: the id_tokens variable that holds the token"
    )


def issuer_http(ca_bundle: Path | None, env: Mapping[str, str]) -> HttpClient:
    """The client that fetches an issuer's discovery document and JWKS: ``--ca-bundle`` for
    every host; else the system's CAs, plus the local stack's exported CA for loopback hosts
    only (``KEYLESS_LOCAL_CA_BUNDLE``, docs/local-stack.md#issuers)."""
    import ssl

    from keyless.ci.local_issuers import CA_VARIABLE, local_ca_bundle
    from keyless.http import UrllibClient

    loopback = None if ca_bundle else local_ca_bundle(env)
    try:
        return UrllibClient(ca_bundle=ca_bundle, loopback_ca_bundle=loopback)
    except (ssl.SSLError, OSError) as exc:
        what = f"--ca-bundle {ca_bundle}" if ca_bundle else f"{CA_VARIABLE} {loopback}"
        raise UsageError(f"{what} holds no usable certificate") from exc
