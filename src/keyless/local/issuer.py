"""A local OIDC issuer over HTTPS on 127.0.0.1: several issuers on one server, each with a discovery
document, a JWKS and rotatable RS256 keys, signing whatever claims it is given.

Claim shapes are not decided here: the CI provider modules own them and pass them to ``mint()``.
"""

from __future__ import annotations

import collections
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from keyless.ci.base import RawToken
from keyless.errors import UsageError
from keyless.limits import (
    LOCAL_ISSUER_REQUEST_LOG_SIZE,
    LOCAL_ISSUER_STOP_SECONDS,
    MAX_ON_DEMAND_ISSUERS,
)
from keyless.local.issuer_keys import SigningKey, b64url, json_segment, new_key, sign
from keyless.local.issuer_server import IssuerServer, Request, Responder, Response
from keyless.local.issuer_state import (
    ISSUER_PATH,
    IssuerState,
    check_path,
    load_issuers,
    save_issuers,
)
from keyless.local.pki import LocalPki, PkiFiles
from keyless.tokens import IssuerUrl

__all__ = [
    "DEFAULT_JWKS_SUFFIX",
    "DEFAULT_LIFETIME_SECONDS",
    "DISCOVERY_SUFFIX",
    "LocalIssuer",
]

#: OIDC Discovery §4: the document lives here, below the issuer's path.
DISCOVERY_SUFFIX: Final = "/.well-known/openid-configuration"
#: Where each issuer's JWKS is served unless ``add_issuer(jwks_suffix=...)`` says otherwise
#: (GitHub and Buildkite publish theirs at this path).
DEFAULT_JWKS_SUFFIX: Final = "/.well-known/jwks"
#: Token lifetime when ``mint()`` is not told one (GitHub's and Buildkite's default: 5 minutes).
DEFAULT_LIFETIME_SECONDS: Final = 300


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
        self._issuers: dict[str, IssuerState] = {}
        self._routes: dict[str, Responder] = {}
        self._log: collections.deque[str] = collections.deque(maxlen=LOCAL_ISSUER_REQUEST_LOG_SIZE)
        self._server: IssuerServer | None = None
        self._thread: threading.Thread | None = None
        self._pki: LocalPki | None = None
        self._files: PkiFiles | None = None
        self._scratch: Path | None = None
        if state_dir is not None:
            self._issuers = load_issuers(state_dir)
        for path in paths:
            if check_path(path) not in self._issuers:
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
                server = IssuerServer(
                    ("127.0.0.1", self._requested_port), context=context, respond=self._respond
                )
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
            thread.join(LOCAL_ISSUER_STOP_SECONDS)
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
        path = check_path(path)
        if not ISSUER_PATH.fullmatch(jwks_suffix) or jwks_suffix == "/":
            raise UsageError(f"JWKS suffix {jwks_suffix!r} is not a URL path")
        with self._lock:
            if path in self._issuers:
                raise UsageError(f"an issuer is already served at {path}")
            state = IssuerState(
                path=path,
                jwks_suffix=jwks_suffix,
                discovery_extra=dict(discovery_extra or {}),
                keys=[new_key()],
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
        path = check_path(path)
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
            state.keys.append(new_key())
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
            signing_input = f"{json_segment(header)}.{json_segment(payload)}"
            signature = sign(key, signing_input.encode("ascii"))
            exp = payload["exp"]
            if isinstance(exp, int | float):
                key.last_expiry = max(key.last_expiry, float(exp))
        return RawToken(f"{signing_input}.{b64url(signature)}")

    def sign(self, issuer: str, signing_input: bytes, *, kid: str | None = None) -> bytes:
        """An RS256 signature of arbitrary bytes by the issuer's key, for tests that need a
        correctly signed token with a malformed header or payload."""
        with self._lock:
            state = self._state(issuer)
            return sign(self._key(state, kid), signing_input)

    # --- internals ------------------------------------------------------------------------------

    def _running_server(self) -> IssuerServer:
        server = self._server
        if server is None:
            raise UsageError("the local issuer is not running; start() it first")
        return server

    def _state(self, issuer: str) -> IssuerState:
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
    def _key(state: IssuerState, kid: str | None) -> SigningKey:
        if kid is None:
            return state.active
        for key in state.keys:
            if key.kid == kid:
                return key
        raise UsageError(f"issuer at {state.path} has no key {kid!r}")

    @staticmethod
    def _discovery_path(state: IssuerState) -> str:
        return state.base_path + DISCOVERY_SUFFIX

    @staticmethod
    def _jwks_path(state: IssuerState) -> str:
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

    def _save_state(self) -> None:
        assert self._state_dir is not None  # noqa: S101 - callers check
        save_issuers(self._state_dir, self._issuers.values())
