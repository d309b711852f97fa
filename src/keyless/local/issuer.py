"""A local OIDC issuer over HTTPS on 127.0.0.1: several issuers on one server, each with a discovery
document, a JWKS and rotatable RS256 keys, signing whatever claims it is given.

Claim shapes are not decided here: the CI provider modules own them and pass them to ``mint()``.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keyless.ci.base import RawToken
from keyless.errors import UsageError
from keyless.fsutil import write_secret_file
from keyless.limits import HTTP_TIMEOUT_SECONDS, MAX_ON_DEMAND_ISSUERS, TOKEN_LEEWAY_SECONDS
from keyless.local.pki import LocalPki, PkiFiles, write_atomic
from keyless.tokens import IssuerUrl

__all__ = [
    "DEFAULT_JWKS_SUFFIX",
    "DEFAULT_LIFETIME_SECONDS",
    "DISCOVERY_SUFFIX",
    "LocalIssuer",
    "Request",
    "Responder",
    "Response",
]

#: OIDC Discovery §4: the document lives here, below the issuer's path.
DISCOVERY_SUFFIX: Final = "/.well-known/openid-configuration"
#: Where each issuer's JWKS is served unless ``add_issuer(jwks_suffix=...)`` says otherwise
#: (GitHub and Buildkite publish theirs at this path).
DEFAULT_JWKS_SUFFIX: Final = "/.well-known/jwks"
#: Token lifetime when ``mint()`` is not told one (GitHub's and Buildkite's default: 5 minutes).
DEFAULT_LIFETIME_SECONDS: Final = 300

_RSA_BITS: Final = 2048
_RSA_EXPONENT: Final = 65537
#: A retired key stays published until its last token has expired plus the verifiers' leeway.
_RETIRED_KEY_GRACE_SECONDS: Final = TOKEN_LEEWAY_SECONDS
#: How long stop() waits for the server thread to finish.
_STOP_TIMEOUT_SECONDS: Final = 10.0
_REQUEST_LOG_SIZE: Final = 10_000
_PATH: Final = re.compile(r"/|(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")
_STATE_FILE: Final = "issuers.json"
_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What an ``add_route`` responder is given."""

    path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str] = field(repr=False)  # may carry a bearer token


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, document: object, *, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(document, indent=2).encode("utf-8") + b"\n")


Responder = Callable[[Request], Response]


@dataclass(slots=True, kw_only=True)
class _SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    #: When rotate() replaced it; None while it is the active key.
    retired_at: float | None = None
    #: Latest ``exp`` of a token it signed (0 when it signed none).
    last_expiry: float = 0.0

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _b64url(_int_bytes(numbers.n)),
            "e": _b64url(_int_bytes(numbers.e)),
        }

    def published(self, now: float) -> bool:
        if self.retired_at is None:
            return True
        return now < self.last_expiry + _RETIRED_KEY_GRACE_SECONDS


@dataclass(slots=True, kw_only=True)
class _IssuerState:
    path: str
    jwks_suffix: str
    discovery_extra: dict[str, object]
    keys: list[_SigningKey]  # the active key is the last one

    @property
    def active(self) -> _SigningKey:
        return self.keys[-1]

    @property
    def base_path(self) -> str:
        return "" if self.path == "/" else self.path


class LocalIssuer:
    """One HTTPS server on 127.0.0.1 serving any number of OIDC issuers under different paths.

    ``with LocalIssuer(paths=["/", "/org/<uuid>"]) as issuer:`` starts it on an ephemeral port;
    leaving the block stops the server and joins its threads. Clients trust
    ``issuer.ca_bundle`` (e.g. ``UrllibClient(ca_bundle=issuer.ca_bundle)``). With ``state_dir``
    the CA, the TLS certificate and the signing keys are loaded from and saved to that folder
    (keys 0600), so that clients and AWS providers configured once keep working across restarts.
    ``tls_dir`` puts the CA and TLS certificate elsewhere (default ``state_dir/tls``): servers
    given the same folder share one CA.
    """

    def __init__(
        self,
        *,
        paths: Sequence[str] = ("/",),
        state_dir: Path | None = None,
        tls_dir: Path | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        on_demand: Callable[[str], bool] | None = None,
        on_demand_jwks_suffix: str = DEFAULT_JWKS_SUFFIX,
    ) -> None:
        #: Issuer paths served from their first request (discovery or JWKS) when this says they
        #: are well formed: a CI's per-workspace issuers exist before any token was minted.
        self._on_demand = on_demand
        self._on_demand_jwks_suffix = on_demand_jwks_suffix
        self._on_demand_added = 0
        self._state_dir = state_dir
        # Several issuer servers share one CA when they are given the same tls_dir.
        self._tls_dir = tls_dir or (state_dir / "tls" if state_dir is not None else None)
        self._requested_port = port
        self._clock = clock
        self._lock = threading.RLock()
        self._issuers: dict[str, _IssuerState] = {}
        self._routes: dict[str, Responder] = {}
        self._log: collections.deque[str] = collections.deque(maxlen=_REQUEST_LOG_SIZE)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._pki: LocalPki | None = None
        self._files: PkiFiles | None = None
        self._scratch: Path | None = None
        if state_dir is not None:
            self._load_state(state_dir)
        for path in paths:
            if _check_path(path) not in self._issuers:
                self.add_issuer(path)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalIssuer:
        """Create or load the CA, bind 127.0.0.1 and serve in a background thread."""
        with self._lock:
            if self._server is not None:
                raise UsageError("the local issuer is already running")
            if self._tls_dir is not None:
                self._pki, self._files = LocalPki.load_or_create(self._tls_dir)
            else:
                # ssl loads certificates only from files: a private folder that stop() removes.
                self._scratch = Path(tempfile.mkdtemp(prefix="keyless-issuer-"))
                self._pki = LocalPki.generate()
                self._files = self._pki.write(self._scratch)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self._files.server_chain, self._files.server_key)
            try:
                server = _Server(("127.0.0.1", self._requested_port), context=context, owner=self)
            except OSError as exc:
                self._cleanup_scratch()
                raise UsageError(
                    f"cannot listen on 127.0.0.1:{self._requested_port}: {exc.strerror}"
                ) from exc
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"keyless-local-issuer:{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, join the server and request threads, save the state. Idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()  # joins the request threads (block_on_close)
        if thread is not None:
            thread.join(_STOP_TIMEOUT_SECONDS)
        with self._lock:
            if self._state_dir is not None and server is not None:
                self._save_state()
            self._cleanup_scratch()

    def __enter__(self) -> LocalIssuer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._running_server().server_address[1])

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``, without a trailing slash."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> Path:
        """PEM file of the CA that signed the server certificate: what clients must trust."""
        self._running_server()
        assert self._files is not None  # noqa: S101 - set by start()
        return self._files.ca_bundle

    @property
    def ca_thumbprint(self) -> str:
        """SHA-1 thumbprint of the CA certificate, as IAM's ``ThumbprintList`` takes it."""
        self._running_server()
        assert self._pki is not None  # noqa: S101 - set by start()
        return self._pki.ca_thumbprint

    @property
    def issuers(self) -> tuple[IssuerUrl, ...]:
        with self._lock:
            return tuple(self.issuer_url(path) for path in self._issuers)

    def issuer_paths(self) -> set[str]:
        """The paths of the issuers served (``/`` for a root issuer)."""
        with self._lock:
            return set(self._issuers)

    def issuer_url(self, path: str) -> IssuerUrl:
        """The issuer URL (``iss``) of the issuer at ``path``: the base URL for ``/``."""
        state = self._state(path)
        return IssuerUrl(self.base_url + state.base_path)

    def add_issuer(
        self,
        path: str,
        *,
        jwks_suffix: str = DEFAULT_JWKS_SUFFIX,
        discovery_extra: Mapping[str, object] | None = None,
    ) -> str:
        """Serve one more issuer at ``path`` (e.g. ``/org/<uuid>``), with a fresh RS256 key.

        ``jwks_suffix`` is appended to the issuer path for its JWKS (Bitbucket: ``/keys.json``);
        ``discovery_extra`` adds fields to its discovery document (e.g. ``claims_supported``).
        Returns ``path``; ``issuer_url(path)`` gives the URL once the server runs.
        """
        path = _check_path(path)
        if not _PATH.fullmatch(jwks_suffix) or jwks_suffix == "/":
            raise UsageError(f"JWKS suffix {jwks_suffix!r} is not a URL path")
        with self._lock:
            if path in self._issuers:
                raise UsageError(f"an issuer is already served at {path}")
            state = _IssuerState(
                path=path,
                jwks_suffix=jwks_suffix,
                discovery_extra=dict(discovery_extra or {}),
                keys=[_new_key()],
            )
            served = {self._discovery_path(state), self._jwks_path(state)}
            if served & self._served_paths():
                raise UsageError(f"issuer at {path} would shadow a path already served")
            self._issuers[path] = state
            if self._state_dir is not None:
                self._save_state()
        return path

    def add_route(self, path: str, responder: Responder) -> str:
        """Serve ``responder`` for GET ``path`` (e.g. a CI's token request endpoint); returns
        the URL once running, else the path."""
        path = _check_path(path)
        with self._lock:
            if path in self._served_paths():
                raise UsageError(f"{path} is already served")
            self._routes[path] = responder
        return self.base_url + path if self.running else path

    def request_log(self) -> tuple[str, ...]:
        """Paths requested so far (without query strings), oldest first."""
        with self._lock:
            return tuple(self._log)

    # --- documents ------------------------------------------------------------------------------

    def discovery_document(self, issuer: str) -> dict[str, object]:
        state = self._state(issuer)
        url = self.issuer_url(state.path)
        return {
            "issuer": url,
            "jwks_uri": url + state.jwks_suffix,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            **state.discovery_extra,
        }

    def jwks(self, issuer: str) -> dict[str, object]:
        """The issuer's JWKS: the active key and retired keys whose tokens may still be valid."""
        with self._lock:
            state = self._state(issuer)
            now = self._clock()
            return {"keys": [key.public_jwk() for key in state.keys if key.published(now)]}

    # --- keys -----------------------------------------------------------------------------------

    def active_kid(self, issuer: str) -> str:
        with self._lock:
            return self._state(issuer).active.kid

    def published_kids(self, issuer: str) -> tuple[str, ...]:
        with self._lock:
            now = self._clock()
            return tuple(key.kid for key in self._state(issuer).keys if key.published(now))

    def rotate(self, issuer: str) -> str:
        """Sign with a new key from now on and return its ``kid``. The old key stays in the JWKS
        until the last token it signed has expired (plus the verifiers' leeway)."""
        with self._lock:
            state = self._state(issuer)
            now = self._clock()
            state.active.retired_at = now
            state.keys = [key for key in state.keys if key.published(now)]
            state.keys.append(_new_key())
            if self._state_dir is not None:
                self._save_state()
            return state.active.kid

    # --- tokens ---------------------------------------------------------------------------------

    def mint(
        self,
        issuer: str,
        claims: Mapping[str, object],
        *,
        lifetime: int = DEFAULT_LIFETIME_SECONDS,
        kid: str | None = None,
        headers: Mapping[str, object | None] | None = None,
        not_before: bool = True,
    ) -> RawToken:
        """A compact JWT with ``claims``, signed RS256 by the issuer's active key (or ``kid``).

        ``iss``, ``iat``, ``nbf`` (= ``iat``; not with ``not_before=False``, for CIs that do not
        set it) and ``exp`` (= ``iat`` + ``lifetime``) are filled in when ``claims`` lacks them;
        nothing else is added. ``headers`` overrides header fields
        (``None`` removes one); the signature is RS256 whatever the header then says, so that
        tests can forge headers.
        """
        if lifetime <= 0:
            raise UsageError(f"token lifetime must be positive ({lifetime})")
        with self._lock:
            state = self._state(issuer)
            key = self._key(state, kid)
            now = int(self._clock())
            payload = dict(claims)
            payload.setdefault("iss", self.issuer_url(state.path))
            payload.setdefault("iat", now)
            if not_before:
                payload.setdefault("nbf", payload["iat"])
            iat = payload["iat"]
            payload.setdefault("exp", (iat if isinstance(iat, int) else now) + lifetime)
            header: dict[str, object] = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
            for name, value in (headers or {}).items():
                if value is None:
                    header.pop(name, None)
                else:
                    header[name] = value
            signing_input = f"{_json_segment(header)}.{_json_segment(payload)}"
            signature = _sign(key, signing_input.encode("ascii"))
            exp = payload["exp"]
            if isinstance(exp, int | float):
                key.last_expiry = max(key.last_expiry, float(exp))
        return RawToken(f"{signing_input}.{_b64url(signature)}")

    def sign(self, issuer: str, signing_input: bytes, *, kid: str | None = None) -> bytes:
        """An RS256 signature of arbitrary bytes by the issuer's key, for tests that need a
        correctly signed token with a malformed header or payload."""
        with self._lock:
            state = self._state(issuer)
            return _sign(self._key(state, kid), signing_input)

    # --- internals ------------------------------------------------------------------------------

    def _running_server(self) -> _Server:
        server = self._server
        if server is None:
            raise UsageError("the local issuer is not running; start() it first")
        return server

    def _state(self, issuer: str) -> _IssuerState:
        path = issuer
        if issuer.startswith("https://"):
            base = self.base_url
            if not (issuer == base or issuer.startswith(base + "/")):
                raise UsageError(f"{issuer} is not served by this local issuer ({base})")
            path = issuer.removeprefix(base) or "/"
        with self._lock:
            state = self._issuers.get(path)
        if state is None:
            raise UsageError(f"no local issuer at {issuer!r}")
        return state

    @staticmethod
    def _key(state: _IssuerState, kid: str | None) -> _SigningKey:
        if kid is None:
            return state.active
        for key in state.keys:
            if key.kid == kid:
                return key
        raise UsageError(f"issuer at {state.path} has no key {kid!r}")

    @staticmethod
    def _discovery_path(state: _IssuerState) -> str:
        return state.base_path + DISCOVERY_SUFFIX

    @staticmethod
    def _jwks_path(state: _IssuerState) -> str:
        return state.base_path + state.jwks_suffix

    def _served_paths(self) -> set[str]:
        paths = set(self._routes)
        for state in self._issuers.values():
            paths.add(self._discovery_path(state))
            paths.add(self._jwks_path(state))
        return paths

    def _respond(self, request: Request) -> Response:
        self._serve_on_demand(request.path)
        with self._lock:
            self._log.append(request.path)
            for state in self._issuers.values():
                if request.path == self._discovery_path(state):
                    return Response.json(self.discovery_document(state.path))
                if request.path == self._jwks_path(state):
                    return Response.json(self.jwks(state.path))
            responder = self._routes.get(request.path)
        if responder is None:
            return Response.json({"error": "not found"}, status=404)
        return responder(request)

    def _serve_on_demand(self, path: str) -> None:
        if self._on_demand is None:
            return
        for suffix in (DISCOVERY_SUFFIX, self._on_demand_jwks_suffix):
            issuer = path.removesuffix(suffix)
            if issuer == path or not issuer:
                continue
            with self._lock:
                if issuer in self._issuers or self._on_demand_added >= MAX_ON_DEMAND_ISSUERS:
                    return
                try:
                    if not self._on_demand(issuer):
                        continue
                    self.add_issuer(issuer, jwks_suffix=self._on_demand_jwks_suffix)
                except UsageError:
                    continue
                self._on_demand_added += 1
            return

    def _cleanup_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            self._files = None

    # --- persistence ----------------------------------------------------------------------------

    def _save_state(self) -> None:
        assert self._state_dir is not None  # noqa: S101 - callers check
        keys_dir = self._state_dir / "keys"
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        document: dict[str, Any] = {"version": _STATE_VERSION, "issuers": []}
        kept: set[str] = set()
        for state in self._issuers.values():
            for key in state.keys:
                key_file = keys_dir / f"{key.kid}.pem"
                if not key_file.exists():
                    write_secret_file(key_file, _private_pem(key.private_key).decode("ascii"))
                kept.add(key_file.name)
            document["issuers"].append(
                {
                    "path": state.path,
                    "jwks_suffix": state.jwks_suffix,
                    "discovery_extra": state.discovery_extra,
                    "keys": [
                        {"kid": k.kid, "retired_at": k.retired_at, "last_expiry": k.last_expiry}
                        for k in state.keys
                    ],
                }
            )
        for stale in keys_dir.glob("*.pem"):
            if stale.name not in kept:
                stale.unlink(missing_ok=True)
        data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_atomic(self._state_dir / _STATE_FILE, data, mode=0o644)

    def _load_state(self, state_dir: Path) -> None:
        state_file = state_dir / _STATE_FILE
        if not state_file.is_file():
            return
        try:
            document = json.loads(state_file.read_text(encoding="utf-8"))
            if document.get("version") != _STATE_VERSION:
                raise ValueError(f"unknown version {document.get('version')!r}")
            for entry in document["issuers"]:
                keys = []
                for item in entry["keys"]:
                    pem = (state_dir / "keys" / f"{item['kid']}.pem").read_bytes()
                    private_key = serialization.load_pem_private_key(pem, password=None)
                    if not isinstance(private_key, rsa.RSAPrivateKey):
                        raise ValueError(f"key {item['kid']} is not an RSA key")
                    keys.append(
                        _SigningKey(
                            kid=item["kid"],
                            private_key=private_key,
                            retired_at=item["retired_at"],
                            last_expiry=float(item["last_expiry"]),
                        )
                    )
                if not keys:
                    raise ValueError(f"issuer {entry['path']} has no key")
                path = _check_path(entry["path"])
                self._issuers[path] = _IssuerState(
                    path=path,
                    jwks_suffix=entry["jwks_suffix"],
                    discovery_extra=dict(entry["discovery_extra"]),
                    keys=keys,
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"local issuer state in {state_dir} is unreadable ({type(exc).__name__})",
                remedy=f"Remove {state_dir} to start afresh (clients must then trust a new CA).",
            ) from exc


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer whose TLS handshake runs in the request thread, with a timeout, so a
    silent client cannot block the accept loop."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], *, context: ssl.SSLContext, owner: LocalIssuer
    ) -> None:
        super().__init__(address, _Handler)
        self.context = context
        self.owner = owner

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(HTTP_TIMEOUT_SECONDS)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a failed handshake (e.g. a client that does not trust the CA)
        try:
            _Handler(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "keyless-local-issuer"
    sys_version = ""
    timeout = HTTP_TIMEOUT_SECONDS

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        request = Request(
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(self.headers.items()),
        )
        try:
            response = self.server.owner._respond(request)
        except Exception:
            response = Response.json({"error": "internal error"}, status=500)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: request URLs may carry tokens in their queries; request_log() keeps paths only.
        return


# --- helpers -----------------------------------------------------------------------------------


def _check_path(path: str) -> str:
    segments = path.split("/")[1:]
    if (
        not _PATH.fullmatch(path)
        or (path != "/" and path.endswith("/"))
        or any(s in {"", ".", ".."} for s in segments if path != "/")
    ):
        raise UsageError(f"issuer path {path!r} must be '/' or '/a/b' without '.', '..' or '//'")
    return path


def _new_key() -> _SigningKey:
    private_key = rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=_RSA_BITS)
    numbers = private_key.public_key().public_numbers()
    # RFC 7638 JWK thumbprint as the kid: stable, derived from the key, safe as a file name.
    canonical = json.dumps(
        {"e": _b64url(_int_bytes(numbers.e)), "kty": "RSA", "n": _b64url(_int_bytes(numbers.n))},
        separators=(",", ":"),
        sort_keys=True,
    )
    kid = _b64url(hashlib.sha256(canonical.encode("ascii")).digest())
    return _SigningKey(kid=kid, private_key=private_key)


def _sign(key: _SigningKey, data: bytes) -> bytes:
    return key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _json_segment(value: object) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
