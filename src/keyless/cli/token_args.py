"""The options that choose where a CI job's token comes from: one definition for every command."""

from __future__ import annotations

import argparse

from keyless.ci import PROVIDERS


def add_token_source_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--ci``, ``--audience``, ``--token-file`` and ``--token-env`` to ``parser``."""
    parser.add_argument(
        "--ci",
        choices=["auto", *PROVIDERS],
        default="auto",
        help="where to get the token ('file': a token file; default: auto)",
    )
    parser.add_argument("--audience", metavar="AUD", help="the audience (aud) the token must have")
    parser.add_argument("--token-file", metavar="PATH", help="read the token from this file")
    parser.add_argument(
        "--token-env", metavar="NAME", help="GitLab: the id_tokens variable that holds the token"
    )
