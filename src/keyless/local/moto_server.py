"""moto in server mode for the local stack: a child process on 127.0.0.1 with an administrator
and IAM authentication switched on, behind a gate: every request must carry the stack's secret
header (``GATE_HEADER``), which only the gateway and the stack's own administrator clients hold.

Development only (``moto[server]`` is a dev dependency): moto is imported in the child process,
never by this module's importer.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from keyless.errors import KeylessError
from keyless.limits import (
    HTTP_TIMEOUT_SECONDS,
    MOTO_CLIENT_POOL_SIZE,
    MOTO_DISPATCH_CACHE_MAX_HOSTS,
    MOTO_STARTUP_TIMEOUT_SECONDS,
    MOTO_STOP_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "AdminCredentials",
    "LocalStackError",
    "MotoEndpoint",
    "MotoServer",
    "admit",
    "isolated_session",
]

#: Every local server binds here and nowhere else.
LOOPBACK: Final = "127.0.0.1"
#: moto's own default account; requests signed by unknown keys land in it.
DEFAULT_ACCOUNT_ID: Final = "123456789012"
DEFAULT_REGION: Final = "us-east-1"
#: Name of the IAM user that holds the stack's administrator key.
ADMIN_USER_NAME: Final = "keyless-local-admin"

#: The header every request to moto must carry, with the stack's secret as its value; moto's
#: side answers 403 to anything else. Without it any local process (or a web page, through DNS
#: rebinding) could read ``/moto-api/data.json`` (every secret key) or switch IAM auth off.
GATE_HEADER: Final = "X-Keyless-Moto-Gate"
#: Random bytes in the gate secret (256 bits, as ``secrets`` recommends for tokens).
GATE_SECRET_BYTES: Final = 32

_READY_KEY: Final = "keyless-moto-port"
_GATE_ENVIRON_KEY: Final = "HTTP_" + GATE_HEADER.upper().replace("-", "_")
_C = TypeVar("_C", bound=BaseClient)
_ADMIN_POLICY: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
)


class LocalStackError(KeylessError):
    """A part of the local stack (moto, the gateway, an issuer) could not start or failed."""

    kind = "local-stack"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminCredentials:
    """The stack's administrator key (IAM user with ``Action: *``); the secret stays out of repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MotoEndpoint:
    """A running moto: where it listens and who administers it."""

    url: str
    region: str
    account_id: str
    admin: AdminCredentials
    admin_arn: str
    #: The value of ``GATE_HEADER`` moto requires on every request.
    gate_secret: str = field(repr=False)


def admit(client: _C, gate_secret: str) -> _C:
    """``client`` with moto's gate header added to every request it sends.

    The header is added after signing (botocore's ``before-send``), so it is not a signed header,
    and moto's side removes it before moto checks the signature.
    """

    def add_gate(request: Any, **_: object) -> None:
        request.headers[GATE_HEADER] = gate_secret

    client.meta.events.register("before-send", add_gate)
    return client


def isolated_session(
    *,
    region: str,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> boto3.session.Session:
    """A boto3 session that reads no config or credentials file and no ``AWS_PROFILE``.

    The local stack must behave the same whatever the person's ``~/.aws`` holds (a profile with an
    ``endpoint_url`` or ``credential_process`` would otherwise leak in).
    """
    # No profile from AWS_PROFILE (a profile missing from the empty config file is an error).
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    return boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
        botocore_session=core,
    )


def client_config() -> Config:
    """botocore settings for talking to local servers: bounded waits, a pool for concurrency."""
    return Config(
        connect_timeout=HTTP_TIMEOUT_SECONDS,
        read_timeout=HTTP_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=MOTO_CLIENT_POOL_SIZE,
    )


class MotoServer:
    """moto as a child process; a context manager that yields a ``MotoEndpoint``.

    The child serves until its stdin reaches EOF, so it also stops when this process dies
    without cleaning up. Start-up bootstraps an administrator with IAM authentication still off,
    then switches authentication on: from then on every request must be signed by a known key
    and is checked against that identity's policies.
    """

    def __init__(
        self,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
        python: str = sys.executable,
        startup_timeout: float = MOTO_STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self._account_id = account_id
        self._region = region
        self._python = python
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint: MotoEndpoint | None = None
        self._gate_secret = ""

    @property
    def endpoint(self) -> MotoEndpoint:
        if self._endpoint is None:
            raise LocalStackError("moto is not running: call start() first")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        """Process id of the child while it runs (tests assert that it is gone after stop)."""
        return self._process.pid if self._process else None

    def start(self) -> MotoEndpoint:
        if self._process is not None:
            raise LocalStackError("moto is already running")
        self._gate_secret = secrets.token_urlsafe(GATE_SECRET_BYTES)
        self._process = self._spawn()
        try:
            # The secret travels on the child's stdin: never in argv or the environment.
            assert self._process.stdin is not None  # noqa: S101 - spawned with stdin=PIPE
            with contextlib.suppress(BrokenPipeError):  # a child that died is reported below
                self._process.stdin.write(self._gate_secret.encode("ascii") + b"\n")
                self._process.stdin.flush()
            port = self._wait_for_port(self._process)
            url = f"http://{LOOPBACK}:{port}"
            self._endpoint = self._bootstrap(url)
        except BaseException:
            self.stop()
            raise
        return self._endpoint

    def stop(self) -> None:
        process, self._process = self._process, None
        self._endpoint = None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's signal to stop
        try:
            process.wait(timeout=MOTO_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=MOTO_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> MotoEndpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals -----------------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["MOTO_ACCOUNT_ID"] = self._account_id
        # The child runs this very module; make it importable even from a source checkout.
        source_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
        try:
            return subprocess.Popen(  # noqa: S603 - fixed argv, no secrets in it
                [self._python, "-m", "keyless.local.moto_server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                # Own session: a Ctrl-C in the terminal reaches the parent, which stops us cleanly.
                start_new_session=True,
            )
        except OSError as exc:
            raise LocalStackError(f"cannot start moto with {self._python}: {exc}") from exc

    def _wait_for_port(self, process: subprocess.Popen[bytes]) -> int:
        assert process.stdout is not None  # noqa: S101 - spawned with stdout=PIPE
        lines: list[bytes] = []
        stdout = process.stdout
        reader = threading.Thread(
            target=lambda: lines.append(stdout.readline()), name="moto-ready", daemon=True
        )
        reader.start()
        reader.join(self._startup_timeout)
        if reader.is_alive():
            process.kill()  # closes the pipe, which ends the reader
            reader.join()
            raise LocalStackError(f"moto did not start within {self._startup_timeout:.0f} s")
        try:
            return int(json.loads(lines[0])[_READY_KEY])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LocalStackError(
                "moto exited during start-up (its error is on stderr above)",
                remedy="Install the development dependencies (make dev): moto[server] is one.",
            ) from exc

    def _bootstrap(self, url: str) -> MotoEndpoint:
        gate = self._gate_secret
        try:
            # Any key will do while authentication is still off.
            bootstrap = isolated_session(
                region=self._region,
                access_key_id="bootstrap",
                secret_access_key="bootstrap",  # noqa: S106 - not a secret
            )
            iam: IAMClient = admit(
                bootstrap.client("iam", endpoint_url=url, config=client_config()), gate
            )
            iam.create_user(UserName=ADMIN_USER_NAME)
            iam.put_user_policy(
                UserName=ADMIN_USER_NAME, PolicyName="administrator", PolicyDocument=_ADMIN_POLICY
            )
            key = iam.create_access_key(UserName=ADMIN_USER_NAME)["AccessKey"]
            admin = AdminCredentials(
                access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
            )
            _enable_iam_authentication(url, gate)
            sts: STSClient = admit(
                isolated_session(
                    region=self._region,
                    access_key_id=admin.access_key_id,
                    secret_access_key=admin.secret_access_key,
                ).client("sts", endpoint_url=url, config=client_config()),
                gate,
            )
            identity = sts.get_caller_identity()
            _assert_authentication_is_on(url, self._region, gate)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise LocalStackError(f"cannot bootstrap moto at {url}: {exc}") from exc
        return MotoEndpoint(
            url=url,
            region=self._region,
            account_id=identity["Account"],
            admin=admin,
            admin_arn=identity["Arn"],
            gate_secret=gate,
        )


def _enable_iam_authentication(url: str, gate_secret: str) -> None:
    """Make moto authenticate and authorize every request from now on.

    moto reads the body as the number of requests left unauthenticated. It must be sent as
    ``text/plain``: with a form content type Flask hands moto an empty body and the call fails.
    """
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT_SECONDS)
    try:
        connection.request(
            "POST",
            "/moto-api/reset-auth",
            body=b"0",
            headers={"Content-Type": "text/plain", GATE_HEADER: gate_secret},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise LocalStackError(f"moto refused to switch IAM authentication on: {body[:200]!r}")


def _assert_authentication_is_on(url: str, region: str, gate_secret: str) -> None:
    """Fail loudly rather than run a stack that silently lets any key through."""
    sts: STSClient = admit(
        isolated_session(
            region=region,
            access_key_id="AKIAUNKNOWNKEY000000",
            secret_access_key="unknown",  # noqa: S106 - deliberately unknown
        ).client("sts", endpoint_url=url, config=Config(retries={"max_attempts": 1})),
        gate_secret,
    )
    try:
        sts.get_caller_identity()
    except ClientError:
        return
    raise LocalStackError("moto accepted an unknown access key: IAM authentication is off")


# --- the child process ---------------------------------------------------------------------------


class _Gate:
    """WSGI middleware in moto's child: a request without the stack's secret in ``GATE_HEADER``
    gets 403 and never reaches moto; with it, the header is removed and moto serves it."""

    def __init__(self, app: Any, secret: bytes) -> None:
        self._app = app
        self._secret = secret

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        offered = str(environ.pop(_GATE_ENVIRON_KEY, "")).encode("latin-1", errors="replace")
        if not hmac.compare_digest(offered, self._secret):
            body = b"moto is reachable only through the local stack's gateway\n"
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self._app(environ, start_response)


def _child_main(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Serve moto on an ephemeral loopback port until ``stdin`` reaches EOF. The first line of
    ``stdin`` is the gate secret."""
    import logging

    secret = stdin.readline().strip()
    if not secret:
        raise SystemExit("keyless.local.moto_server: no gate secret on stdin")

    # werkzeug's access log prints query strings, and presigned URLs carry session tokens in them.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from keyless.local import moto_additions

    moto_additions.install()

    class Dispatcher(DomainDispatcherApplication):
        """moto's dispatcher, remembering which backend a Host header names. moto 5 answers it
        anew for every request, under the lock every request takes, by listing its package
        directory and trying hundreds of URL patterns: that serialised the stack's requests
        (most of moto's time under 32 concurrent exchanges). The answer depends only on the
        host, so it is kept, for at most ``MOTO_DISPATCH_CACHE_MAX_HOSTS`` distinct hosts."""

        def __init__(self, create_app: Any) -> None:
            super().__init__(create_app)
            self._known: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            try:
                return self._known[host]
            except KeyError:
                pass
            backend = super().get_backend_for_host(host)
            if len(self._known) < MOTO_DISPATCH_CACHE_MAX_HOSTS:
                self._known[host] = backend
            return backend

    server = make_server(
        LOOPBACK,
        0,
        _Gate(Dispatcher(create_backend_app), secret),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    serving = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    serving.start()
    stdout.write(json.dumps({_READY_KEY: server.server_port}).encode() + b"\n")
    stdout.flush()
    # Nothing else may go to the pipe: nobody reads it after the handshake.
    os.dup2(sys.stderr.fileno(), stdout.fileno())
    while stdin.read(65536):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    _child_main(sys.stdin.buffer, sys.stdout.buffer)
