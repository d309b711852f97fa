"""The whole local stack in one context manager: OIDC issuers over HTTPS, moto with IAM auth on,
and the STS gateway in front of it, all on 127.0.0.1 ephemeral ports.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from keyless.ci.base import RawToken
from keyless.local.issuer import DEFAULT_LIFETIME_SECONDS, LocalIssuer
from keyless.local.jobs import CiIssuers
from keyless.local.moto_server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    AdminCredentials,
    LocalStackError,
    MotoEndpoint,
    MotoServer,
    client_config,
    isolated_session,
)
from keyless.local.sts import StsGateway, TokenVerifier, TrustEvaluator
from keyless.local.sts.relay import RequestObserver
from keyless.tokens import IssuerUrl

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

__all__ = ["AdminCredentials", "LocalStack", "LocalStackError", "RunningStack"]

#: The audience AWS documents for tokens meant for STS (GitHub's default, and the client ID
#: every provider registered without one gets).
STS_AUDIENCE: Final = "sts.amazonaws.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningStack:
    """Handles on a running local stack. Valid inside the ``with LocalStack()`` block only."""

    #: The one AWS endpoint for every service (``AWS_ENDPOINT_URL``).
    endpoint_url: str
    region: str
    account_id: str
    #: The account's administrator (IAM user with ``Action: *``): to provision and inspect.
    admin: AdminCredentials
    #: The local CA (PEM): what trusts the issuers' HTTPS.
    ca_bundle: Path
    #: SHA-1 of the CA certificate, for an IAM OIDC provider's ``ThumbprintList``.
    ca_thumbprint: str
    issuer: LocalIssuer
    #: The issuer URLs served, in the order they were asked for.
    issuers: tuple[IssuerUrl, ...]
    #: How long the stack took to start, in seconds.
    started_in: float
    #: Process id of moto's child process (gone once the stack has stopped).
    moto_pid: int
    #: One issuer server per emulated CI (``LocalStack(ci_issuers=True)``), with the same CA.
    ci: CiIssuers | None = None
    _stop: Callable[[], None] = field(repr=False, compare=False)

    def mint(
        self,
        claims: Mapping[str, object],
        *,
        issuer: str | None = None,
        lifetime: int = DEFAULT_LIFETIME_SECONDS,
        kid: str | None = None,
        headers: Mapping[str, object | None] | None = None,
    ) -> RawToken:
        """A token signed by ``issuer`` (default: the first), with ``claims``; ``iss``, ``iat``,
        ``nbf`` and ``exp`` are filled in unless given."""
        return self.issuer.mint(
            issuer or self.issuers[0], claims, lifetime=lifetime, kid=kid, headers=headers
        )

    def admin_session(self) -> boto3.session.Session:
        """A boto3 session of the administrator; pass ``endpoint_url`` to its clients."""
        return isolated_session(
            region=self.region,
            access_key_id=self.admin.access_key_id,
            secret_access_key=self.admin.secret_access_key,
        )

    def session(
        self, *, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> boto3.session.Session:
        """A boto3 session with the given (e.g. temporary) credentials, nothing from ``~/.aws``."""
        return isolated_session(
            region=self.region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
        )

    def sts(self) -> STSClient:
        """An unsigned STS client on the stack, as a CI job without credentials has one."""
        client: STSClient = isolated_session(region=self.region).client(
            "sts",
            endpoint_url=self.endpoint_url,
            config=client_config().merge(Config(signature_version=UNSIGNED)),
        )
        return client

    def iam(self) -> IAMClient:
        client: IAMClient = self.admin_session().client(
            "iam", endpoint_url=self.endpoint_url, config=client_config()
        )
        return client

    def register_provider(
        self, issuer: str | None = None, *, client_ids: Sequence[str] = (STS_AUDIENCE,)
    ) -> str:
        """Register ``issuer`` (default: the first) as an IAM OIDC provider; return its ARN."""
        response = self.iam().create_open_id_connect_provider(
            Url=issuer or self.issuers[0],
            ClientIDList=list(client_ids),
            ThumbprintList=[self.ca_thumbprint],
        )
        return response["OpenIDConnectProviderArn"]

    def environment(self, *, admin: bool = False) -> dict[str, str]:
        """Variables that point AWS clients at the stack; the administrator's key only if asked.

        ``AWS_CA_BUNDLE`` is not among them: the AWS endpoint is plain HTTP on loopback, and some
        clients (rclone) fail on an HTTP endpoint when it is set.
        """
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        if admin:
            env["AWS_ACCESS_KEY_ID"] = self.admin.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self.admin.secret_access_key
        return env

    def stop(self) -> None:
        self._stop()


class LocalStack:
    """``with LocalStack() as stack:`` starts issuers, moto and the gateway on fresh ephemeral
    ports (moto starts in parallel with the issuers) and stops all of them, threads and child
    process included, when the block ends.

    ``verify`` and ``evaluate`` replace the gateway's token verification and trust evaluation
    (tests of the gateway itself); by default they are ``keyless.tokens.verify`` against the
    local CA and keyless' trust evaluator.

    ``ci_issuers=True`` adds an issuer server per emulated CI (``RunningStack.ci``) with the
    same CA; with a fixed ``port`` the gateway listens on it and those servers on the next five.

    ``test_only_session_seconds``: the gateway's sessions expire after that many seconds (tests of
    credentials that expire mid-deploy; see ``StsGateway``).

    ``observe`` sees each request the gateway receives, as it arrives (``RequestObserver``).
    """

    def __init__(
        self,
        *,
        issuer_paths: Sequence[str] = ("/",),
        state_dir: Path | None = None,
        port: int = 0,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        verify: TokenVerifier | None = None,
        evaluate: TrustEvaluator | None = None,
        ci_issuers: bool = False,
        test_only_session_seconds: float | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        self._ci_issuers = ci_issuers
        self._observe = observe
        self._test_only_session_seconds = test_only_session_seconds
        self._issuer_paths = tuple(issuer_paths)
        self._state_dir = state_dir
        self._port = port
        self._region = region
        self._account_id = account_id
        self._verify = verify
        self._evaluate = evaluate
        self._exit: contextlib.ExitStack | None = None
        self._running: RunningStack | None = None

    def start(self) -> RunningStack:
        if self._exit is not None:
            raise LocalStackError("the local stack is already running")
        began = time.monotonic()
        with contextlib.ExitStack() as exit_stack:
            moto = MotoServer(account_id=self._account_id, region=self._region)
            exit_stack.callback(moto.stop)
            # moto's child process spends about a second importing; start the issuers meanwhile.
            moto_result: list[MotoEndpoint | BaseException] = []
            starter = threading.Thread(
                target=_capture, args=(moto.start, moto_result), name="keyless-moto-start"
            )
            starter.start()
            try:
                tls_dir = self._tls_dir(exit_stack)
                issuer = LocalIssuer(
                    paths=self._issuer_paths, state_dir=self._state_dir, tls_dir=tls_dir
                )
                exit_stack.enter_context(issuer)
                ci = None
                if tls_dir is not None:
                    ci = CiIssuers(
                        tls_dir=tls_dir,
                        state_dir=self._state_dir / "ci" if self._state_dir else None,
                        base_port=self._port + 1 if self._port else 0,
                    )
                    exit_stack.enter_context(ci)
            finally:
                starter.join()
            endpoint = moto_result[0]
            if isinstance(endpoint, BaseException):
                raise endpoint
            gateway = StsGateway(
                upstream_url=endpoint.url,
                account_id=endpoint.account_id,
                region=endpoint.region,
                admin=endpoint.admin,
                gate_secret=endpoint.gate_secret,
                verify=self._verify,
                evaluate=self._evaluate,
                ca_bundle=issuer.ca_bundle,
                port=self._port,
                test_only_session_seconds=self._test_only_session_seconds,
                observe=self._observe,
            )
            exit_stack.enter_context(gateway)
            self._exit = exit_stack.pop_all()
        self._running = RunningStack(
            endpoint_url=gateway.url,
            region=endpoint.region,
            account_id=endpoint.account_id,
            admin=endpoint.admin,
            ca_bundle=issuer.ca_bundle,
            ca_thumbprint=issuer.ca_thumbprint,
            issuer=issuer,
            issuers=tuple(issuer.issuer_url(path) for path in self._issuer_paths),
            started_in=time.monotonic() - began,
            moto_pid=moto.pid or 0,
            ci=ci,
            _stop=self.stop,
        )
        return self._running

    def _tls_dir(self, exit_stack: contextlib.ExitStack) -> Path | None:
        """Where the issuers' CA lives when several servers share it (``ci_issuers``)."""
        if not self._ci_issuers:
            return None
        if self._state_dir is not None:
            return self._state_dir / "tls"
        scratch = Path(tempfile.mkdtemp(prefix="keyless-stack-"))
        exit_stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        return scratch

    def stop(self) -> None:
        exit_stack, self._exit = self._exit, None
        self._running = None
        if exit_stack is not None:
            exit_stack.close()  # gateway, then issuers, then moto

    def __enter__(self) -> RunningStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _capture(start: Callable[[], MotoEndpoint], into: list[MotoEndpoint | BaseException]) -> None:
    try:
        into.append(start())
    except BaseException as exc:  # handed to the starting thread, which re-raises it
        into.append(exc)
