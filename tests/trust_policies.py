"""Trust policies the tests lint and evaluate: GitHub's issuer, one Allow statement per `sub`
pattern, through the provider of account 123456789012."""

from __future__ import annotations

from typing import Any

GITHUB_ISSUER_HOST = "token.actions.githubusercontent.com"
GITHUB_PROVIDER_ARN = f"arn:aws:iam::123456789012:oidc-provider/{GITHUB_ISSUER_HOST}"


def github_trust(*subs: str, audience: str | None = "sts.amazonaws.com") -> dict[str, Any]:
    """One statement per pattern in ``subs`` (StringLike on `sub`), each also pinning `aud` to
    ``audience`` unless it is None."""
    statements = []
    for sub in subs:
        condition: dict[str, Any] = {}
        if audience is not None:
            condition["StringEquals"] = {f"{GITHUB_ISSUER_HOST}:aud": audience}
        condition["StringLike"] = {f"{GITHUB_ISSUER_HOST}:sub": sub}
        statements.append(
            {
                "Effect": "Allow",
                "Principal": {"Federated": GITHUB_PROVIDER_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
