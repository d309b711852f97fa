"""Fakes shared by the provider tests: an HTTP client that must not be used, a scripted runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from keyless.ci.base import RunResult
from keyless.http import HttpClient, HttpResponse


class _NoHttp:
    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        raise AssertionError("this provider needs no HTTP")


NO_HTTP: HttpClient = _NoHttp()


@dataclass(kw_only=True)
class ScriptedRunner:
    """A ``Runner`` that records argv and answers with ``result`` or raises ``error``."""

    result: RunResult | None = None
    error: Exception | None = None
    calls: list[list[str]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> RunResult:
        self.calls.append(list(argv))
        self.timeouts.append(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def printed(token: str) -> RunResult:
    """What a helper program prints: the token and a newline."""
    return RunResult(returncode=0, stdout=token + "\n", stderr="")
