"""``keyless action configure-aws-credentials``: the step of the keyless GitHub Action
(action.yml at the repository root). The inputs, the exchange and the runner files are
``keyless.action``; this module maps them to the step's output and stderr lines.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from keyless import action
from keyless.cli.console import Console
from keyless.cli.main import EXIT_OK, Subparsers
from keyless.errors import KeylessError, UsageError

if TYPE_CHECKING:
    from keyless.aws.sts import Assumed, TemporaryCredentials


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "action",
        help="the steps of the keyless GitHub Action (action.yml)",
        description="The steps of the keyless GitHub Action; inputs come from INPUT_* variables.",
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    configure = steps.add_parser(
        "configure-aws-credentials",
        help="get the job's token, assume the role, export credentials and set the outputs",
        description="What aws-actions/configure-aws-credentials does, with keyless' checks; the"
        " inputs and outputs are listed in docs/github-action.md.",
    )
    configure.set_defaults(handler=run_configure)


def run_configure(args: argparse.Namespace, console: Console) -> int:
    from keyless.aws.sts import Sts, exchange_client_factory

    env = dict(console.env)
    inputs = action.Inputs(env)
    inputs.check_refused()
    region = inputs.text("aws-region")
    if not region or re.fullmatch(r"[a-z0-9-]+", region) is None:
        raise UsageError(f"input aws-region {region!r} is not a region such as us-east-2")
    endpoint = inputs.text("sts-endpoint")
    if endpoint:
        env["AWS_ENDPOINT_URL_STS"] = endpoint
    source, target = inputs.text("deploy-source"), inputs.text("deploy-target")
    if bool(source) != bool(target):
        raise UsageError("inputs deploy-source and deploy-target go together")
    to_env = inputs.flag("output-env-credentials")
    sts = Sts(
        client_factory=exchange_client_factory(env, region=region),
        retry=action.retry_policy(inputs),
        notify=lambda line: console.info(f"keyless: {line}"),
    )
    if inputs.flag("unset-current-credentials") and to_env:
        blank = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        action.append_runner_file(
            env.get("GITHUB_ENV", ""), dict.fromkeys(blank, ""), what="GITHUB_ENV"
        )
        for name in blank:
            env.pop(name, None)
    if inputs.flag("use-existing-credentials"):
        existing = action.existing_identity(env, sts)
        if existing is not None:
            console.out(f"::notice::Pre-existing credentials are valid ({existing.arn}).")
            return EXIT_OK
    try:
        assumed = action.exchange(inputs, env, sts, region)
    except KeylessError:
        if inputs.flag("doctor-on-failure"):
            _doctor(inputs, env, console)
        raise
    _export(assumed, inputs, env, console, region=region, to_env=to_env)
    console.info(
        f"keyless: assumed {assumed.assumed_role_arn} (account {assumed.identity.account}) until"
        f" {assumed.credentials.expiration_iso}"
    )
    if source:
        return _deploy(source, target, assumed.credentials, env, console, region=region)
    return EXIT_OK


def _export(
    assumed: Assumed,
    inputs: action.Inputs,
    env: Mapping[str, str],
    console: Console,
    *,
    region: str,
    to_env: bool,
) -> None:
    from keyless.credentials import write_github_env

    credentials, identity = assumed.credentials, assumed.identity
    if to_env:
        # Masks first (::add-mask:: on stdout), then the values into $GITHUB_ENV.
        write_github_env(credentials, env=env, stdout=console.stdout, region=region)
    else:
        for value in (credentials.access_key_id, *credentials.secrets()):
            console.out(f"::add-mask::{value}")
    if inputs.flag("mask-aws-account-id"):
        console.out(f"::add-mask::{identity.account}")
        console.out(f"::add-mask::{identity.arn}")
    outputs = {"aws-account-id": identity.account, "authenticated-arn": identity.arn}
    if inputs.flag("output-credentials"):
        outputs |= {
            "aws-access-key-id": credentials.access_key_id,
            "aws-secret-access-key": credentials.secret_access_key,
            "aws-session-token": credentials.session_token,
            "aws-expiration": credentials.expiration_iso,
        }
    console.stdout.flush()
    action.append_runner_file(env.get("GITHUB_OUTPUT", ""), outputs, what="GITHUB_OUTPUT")


def _doctor(inputs: action.Inputs, env: Mapping[str, str], console: Console) -> None:
    from keyless.cli.main import main

    console.info("keyless: the exchange failed; keyless doctor looks for the cause:")
    argv = ["doctor", "--ci", "github", "--audience", inputs.text("audience")]
    if inputs.text("role-to-assume"):
        argv += ["--role-arn", inputs.text("role-to-assume")]
    main(argv, console=Console(stdout=console.stderr, stderr=console.stderr, env=env))


def _deploy(
    source: str,
    target: str,
    credentials: TemporaryCredentials,
    env: Mapping[str, str],
    console: Console,
    *,
    region: str,
) -> int:
    from keyless import process
    from keyless.credentials import child_environment

    console.info(f"keyless: deploying {source} to {target}")
    # A child keyless with the role's credentials in its environment (never in its argv).
    child = child_environment(env, credentials, region=region)
    launch = process.Launch(
        argv=(sys.executable, "-m", "keyless", "deploy", source, target),
        env=child,
        stdin_closed=True,
    )
    return process.run_foreground(launch)
