"""``StsGateway``: the local stack's AWS endpoint, ``AssumeRoleWithWebIdentity`` enforced as STS
does it in front of moto, every other signed request relayed to moto byte for byte. It starts
and stops the server, keeps when each session it issued expires, and signs the mint request.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keyless.limits import GATEWAY_STOP_TIMEOUT_SECONDS, HTTP_TIMEOUT_SECONDS
from keyless.local.moto_server import GATE_HEADER, LOOPBACK, AdminCredentials, LocalStackError
from keyless.local.sts.exchange import (
    AllowedExchange,
    CachedDirectory,
    Directory,
    IamDirectory,
    TokensVerifier,
    TokenVerifier,
    TrustEvaluator,
    WebIdentityExchange,
    trust_evaluator,
)
from keyless.local.sts.relay import GatewayServer, RequestObserver
from keyless.local.sts.rules import ACTION, STS_API_VERSION

_ACCESS_KEY_ID: Final = re.compile(rb"<AccessKeyId>([A-Z0-9]{16,128})</AccessKeyId>")
_EXPIRATION: Final = re.compile(rb"<Expiration>[^<]{1,64}</Expiration>")
#: The access key id in a SigV4 Authorization header: ``Credential=AKID/DATE/REGION/...``.
_CREDENTIAL_KEY: Final = re.compile(r"Credential=([A-Z0-9]{16,128})/")


class StsGateway:
    """The gateway server on 127.0.0.1: a context manager that starts it in a background thread
    and, on exit, stops accepting, wakes idle connections and joins every thread it started."""

    def __init__(
        self,
        *,
        upstream_url: str,
        account_id: str,
        region: str,
        admin: AdminCredentials,
        gate_secret: str,
        verify: TokenVerifier | None = None,
        evaluate: TrustEvaluator | None = None,
        ca_bundle: Path | None = None,
        directory: Directory | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        test_only_session_seconds: float | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        """``verify`` defaults to ``keyless.tokens.verify`` fetching JWKS over HTTPS that trusts
        ``ca_bundle`` (the local CA; the system store when None), ``evaluate`` to keyless' trust
        evaluator, ``directory`` to moto's IAM with the administrator key. ``gate_secret`` is
        what moto requires in ``GATE_HEADER`` (``MotoEndpoint.gate_secret``).

        ``test_only_session_seconds`` (tests of expiring credentials only): the sessions this
        gateway issues expire after that many seconds instead of their DurationSeconds (STS never
        issues one under 900 s). Only a constructor sets it, never a request.

        ``observe`` is told of each request as it arrives (``RequestObserver``)."""
        self._observe = observe
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise LocalStackError(f"upstream {upstream_url!r} is not http://HOST:PORT")
        self._upstream = (parts.hostname, parts.port)
        self._region = region
        self._admin = admin
        self.gate = (GATE_HEADER, gate_secret)
        # moto's IAM, cached until a request through the gateway may have changed it; a
        # directory given by the caller (tests of the decision) is asked every time.
        self._cache: CachedDirectory | None = None
        if directory is None:
            self._cache = directory = CachedDirectory(
                IamDirectory(
                    endpoint_url=upstream_url, region=region, admin=admin, gate_secret=gate_secret
                )
            )
        self._exchange = WebIdentityExchange(
            account_id=account_id,
            directory=directory,
            verify=verify or TokensVerifier(ca_bundle=ca_bundle),
            evaluate=evaluate or trust_evaluator,
            clock=clock,
        )
        self._port = port
        self._clock = clock
        self._test_only_session_seconds = test_only_session_seconds
        #: When each session this gateway issued expires, by access key id: AWS refuses a request
        #: signed with expired session credentials (ExpiredToken); moto does not.
        self._session_expiry: dict[str, float] = {}
        self._session_lock = threading.Lock()
        self._server: GatewayServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise LocalStackError("the gateway is not running: call start() first")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> str:
        if self._server is not None:
            raise LocalStackError("the gateway is already running")
        try:
            server = GatewayServer((LOOPBACK, self._port), gateway=self, observe=self._observe)
        except OSError as exc:
            raise LocalStackError(f"cannot listen on {LOOPBACK}:{self._port}: {exc}") from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"keyless-gateway:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.wake_idle_connections()
        server.server_close()  # joins the connection threads
        if thread is not None:
            thread.join(GATEWAY_STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> StsGateway:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- used by the handler ---------------------------------------------------------------------

    def decide(self, params: Mapping[str, str]) -> AllowedExchange:
        return self._exchange.decide(params)

    def changed(self) -> None:
        """A request that may change IAM (any query-protocol call relayed to moto) was answered
        by moto; called before its client sees the answer."""
        if self._cache is not None:
            self._cache.changed()

    def issued(self, allowed: AllowedExchange, body: bytes) -> bytes:
        """Remember when the session in moto's answer ``body`` expires; with short test-only
        sessions, the answer's ``Expiration`` is rewritten to match."""
        key = _ACCESS_KEY_ID.search(body)
        if key is None:
            return body
        lifetime = self._test_only_session_seconds or float(allowed.duration_seconds)
        expires = self._clock() + lifetime
        with self._session_lock:
            self._session_expiry[key.group(1).decode("ascii")] = expires
        if self._test_only_session_seconds is None:
            return body
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires))
        stamp += f".{int(expires % 1 * 1000):03d}Z"
        return _EXPIRATION.sub(f"<Expiration>{stamp}</Expiration>".encode(), body, count=1)

    def expired(self, authorization: str) -> bool:
        """Whether a request's Authorization header is signed with a session this gateway issued
        that has expired."""
        match = _CREDENTIAL_KEY.search(authorization)
        if match is None:
            return False
        with self._session_lock:
            expires = self._session_expiry.get(match.group(1))
        return expires is not None and self._clock() >= expires

    def upstream(self) -> http.client.HTTPConnection:
        host, port = self._upstream
        return http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_SECONDS)

    def signed_mint_request(self, allowed: AllowedExchange) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers of moto's ``AssumeRoleWithWebIdentity``, signed by the
        administrator (moto with IAM auth on refuses it unsigned). The token is not sent: moto
        does not read it, and it need not travel further than this process."""
        fields: list[tuple[str, str]] = [
            ("Action", ACTION),
            ("Version", STS_API_VERSION),
            ("RoleArn", allowed.role_arn),
            ("RoleSessionName", allowed.session_name),
            ("DurationSeconds", str(allowed.duration_seconds)),
        ]
        if allowed.session_policy is not None:
            fields.append(("Policy", allowed.session_policy))
        fields.extend(allowed.policy_arns)
        body = urlencode(fields).encode("ascii")
        host, port = self._upstream
        request = AWSRequest(
            method="POST",
            url=f"http://{host}:{port}/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        credentials = Credentials(self._admin.access_key_id, self._admin.secret_access_key)
        SigV4Auth(credentials, "sts", self._region).add_auth(request)
        headers = [("Host", f"{host}:{port}")]
        headers += [(name, str(value)) for name, value in request.headers.items()]
        headers.append(("Content-Length", str(len(body))))
        return body, headers
