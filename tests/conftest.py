"""Fixtures shared by every test."""

from __future__ import annotations

import os

import pytest

# Variables a CI sets for its jobs. Tests must behave the same on a laptop and inside CI, so every
# test starts without them (and without AWS settings that would reach a real account).
_CI_PREFIXES = (
    "GITHUB_",
    "ACTIONS_",
    "RUNNER_",
    "BITBUCKET_",
    "CI_",
    "GITLAB_",
    "CIRCLE",
    "BUILDKITE",
    "KEYLESS_",
    "AWS_",
)
_CI_NAMES = ("CI", "GITLAB_CI", "CIRCLECI", "BUILDKITE", "GITHUB_ACTIONS", "TF_BUILD")


@pytest.fixture(autouse=True)
def _strip_ci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_CI_PREFIXES) or name in _CI_NAMES:
            monkeypatch.delenv(name, raising=False)


# The real local OIDC issuer over HTTPS (keyless.local.issuer), for tests that verify tokens.
from tests.fixtures.issuer import fresh_issuer as fresh_issuer  # noqa: E402
from tests.fixtures.issuer import issuer_http as issuer_http  # noqa: E402
from tests.fixtures.issuer import local_issuer as local_issuer  # noqa: E402
