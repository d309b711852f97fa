"""Test doubles for keyless's I/O seams, shipped so that tests (ours and those of programs that
embed keyless) inject them through the parameters production code already has.

- ``MockTransport``: an ``HttpClient`` (``keyless.http``) that answers from a function or a URL
  table and records every request; ``NO_HTTP`` fails any request (for code that must not fetch).
- ``FakeClock``: a clock that moves only when slept on or advanced; ``monotonic``, ``time`` and
  ``sleep`` plug into the ``clock=`` / ``sleep=`` parameters.
- ``ScriptedRunner``: a ``keyless.ci.base.Runner`` that records each argv and answers with a
  scripted ``RunResult`` (``printed(token)``) or error.

Standard library and keyless's own light modules only; production code never imports this module
(tests/unit/test_layering.py checks it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from keyless.ci.base import RunResult
from keyless.errors import NetworkError
from keyless.http import HttpResponse

__all__ = [
    "NO_HTTP",
    "FakeClock",
    "HttpRequest",
    "MockTransport",
    "ScriptedRunner",
    "json_response",
    "printed",
]


# --- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """One request a ``MockTransport`` was given."""

    url: str
    headers: Mapping[str, str]
    timeout: float | None


Handler = Callable[[HttpRequest], HttpResponse]


class MockTransport:
    """An ``HttpClient`` whose answers come from ``handler`` (which may raise ``NetworkError``
    like a transport failure), or from ``routes``: the response for each URL, and for any other
    URL ``otherwise`` or, without it, ``NetworkError`` (connection refused)."""

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        routes: Mapping[str, HttpResponse] | None = None,
        otherwise: HttpResponse | None = None,
    ) -> None:
        if (handler is None) == (routes is None):
            raise ValueError("MockTransport takes a handler or routes, not both or neither")
        self._handler = handler
        self._routes = dict(routes or {})
        self._otherwise = otherwise
        #: Every request, in order.
        self.requests: list[HttpRequest] = []

    @property
    def urls(self) -> list[str]:
        """The URLs asked for, in order."""
        return [request.url for request in self.requests]

    def count(self, suffix: str) -> int:
        """How many requests went to a URL ending with ``suffix``."""
        return sum(1 for url in self.urls if url.endswith(suffix))

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> HttpResponse:
        request = HttpRequest(url=url, headers=dict(headers or {}), timeout=timeout)
        self.requests.append(request)
        if self._handler is not None:
            return self._handler(request)
        if url in self._routes:
            return self._routes[url]
        if self._otherwise is not None:
            return self._otherwise
        raise NetworkError(f"cannot reach {url}: connection refused (no route in the mock)")


def json_response(document: object, *, status: int = 200) -> HttpResponse:
    """A response whose body is ``document`` as JSON."""
    body = json.dumps(document).encode()
    return HttpResponse(status=status, body=body, headers={"Content-Type": "application/json"})


def _refuse(request: HttpRequest) -> HttpResponse:
    raise AssertionError(f"no HTTP expected here, but {request.url} was fetched")


#: For code paths that must not fetch anything: any request fails the test.
NO_HTTP = MockTransport(_refuse)


# --- time ------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class FakeClock:
    """Time that moves only when ``sleep`` or ``advance`` moves it: no wall-clock time in a test.

    ``now`` is both the monotonic reading and the wall clock's seconds since the epoch, so one
    object serves ``clock=`` parameters of either kind; calling the object reads it too. Each
    ``sleep`` is recorded in ``sleeps``.
    """

    now: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- child processes -------------------------------------------------------------------------


@dataclass(kw_only=True)
class ScriptedRunner:
    """A ``Runner`` that records each argv and timeout and answers with ``result`` or raises
    ``error``."""

    result: RunResult | None = None
    error: Exception | None = None
    calls: list[list[str]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, env: Mapping[str, str], timeout: float) -> RunResult:
        self.calls.append(list(argv))
        self.timeouts.append(timeout)
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise AssertionError(f"ScriptedRunner has no result for {argv!r}")
        return self.result


def printed(token: str) -> RunResult:
    """What a helper program prints: the token and a newline."""
    return RunResult(returncode=0, stdout=token + "\n", stderr="")
