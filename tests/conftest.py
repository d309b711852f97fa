"""Fixtures shared by every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import secret_scan

# Before any test module imports the token factories: they are wrapped to register what they mint.
secret_scan.install()

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


@pytest.fixture(autouse=True)
def _secret_scanner(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a registered secret shows in a channel its ``prints_secrets`` marker does
    not name (see tests/secret_scan.py)."""
    marker = request.node.get_closest_marker("prints_secrets")
    tmp_path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    secret_scan.begin(marker.args if marker is not None else ())
    yield
    leaks = secret_scan.end(tmp_path)
    if leaks:
        pytest.fail(
            "a secret leaked (mark the test @pytest.mark.prints_secrets(CHANNEL) only if that"
            " channel is the designed output): " + "; ".join(leaks),
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """What the test printed without reading it back (pytest's own capture) is searched too."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        secret_scan.observe("stdout", report.capstdout)
        secret_scan.observe("stderr", report.capstderr)


# The real local OIDC issuer over HTTPS (keyless.local.issuer), for tests that verify tokens.
from tests.fixtures.issuer import fresh_issuer as fresh_issuer  # noqa: E402
from tests.fixtures.issuer import issuer_http as issuer_http  # noqa: E402
from tests.fixtures.issuer import local_issuer as local_issuer  # noqa: E402
