"""The local stack as the start-up and exchange benchmarks use it: one OIDC provider, one role
whose trust policy admits one GitHub-shaped subject, and a token for it written to a file (the
token never goes on a command line)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keyless.local.stack import STS_AUDIENCE, LocalStack, RunningStack

SUBJECT = "repo:octo/app:ref:refs/heads/main"
ROLE_NAME = "keyless-bench"
#: Seconds the bench's token stays valid: longer than any bench run.
TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class Provisioned:
    stack: RunningStack
    role_arn: str
    token_file: Path

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` without AWS or CI settings, pointed at the stack with the token file."""
        env = {
            k: v
            for k, v in base.items()
            if not k.startswith(("AWS_", "KEYLESS_", "GITHUB_", "BITBUCKET_", "CI"))
        }
        env.update(self.stack.environment())
        env["KEYLESS_TOKEN_FILE"] = str(self.token_file)
        env["AWS_CONFIG_FILE"] = str(self.token_file.parent / "absent-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.token_file.parent / "absent-aws-credentials")
        return env


@contextlib.contextmanager
def provisioned(scratch: Path) -> Iterator[Provisioned]:
    with LocalStack() as stack:
        provider_arn = stack.register_provider()
        prefix = stack.issuers[0].removeprefix("https://")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{prefix}:aud": STS_AUDIENCE, f"{prefix}:sub": SUBJECT}
                    },
                }
            ],
        }
        role_arn = stack.iam().create_role(
            RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        token_file = scratch / "token.jwt"
        token = stack.mint({"sub": SUBJECT, "aud": STS_AUDIENCE}, lifetime=TOKEN_LIFETIME_SECONDS)
        token_file.write_text(token)
        token_file.chmod(0o600)
        yield Provisioned(stack=stack, role_arn=role_arn, token_file=token_file)
