"""A local stack that other processes find: its state folder, the stack file it writes while it
runs, and ``JobTokens`` that ask a running stack over HTTPS for a job's tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from keyless.ci.base import CiProvider, JobClaims, RawToken, Scope, TokenEndpoint
from keyless.ci.local_issuers import exported_variables
from keyless.errors import NetworkError, UsageError
from keyless.fsutil import write_secret_file
from keyless.http import HttpClient, UrllibClient
from keyless.local.jobs import JOBS_PATH, PING_PATH, SIGN_PATH, claims_query
from keyless.local.moto_server import LocalStackError
from keyless.local.names import STATE_VARIABLE
from keyless.local.stack import LocalStack, RunningStack

__all__ = [
    "STACK_FILE",
    "STATE_VARIABLE",
    "RemoteTokens",
    "StackInfo",
    "check_issuer",
    "default_state_dir",
    "find_running",
    "read_stack_file",
    "scope_issuer",
    "served_stack",
]

#: Written into the state folder while a stack runs (0600: it holds the control secret).
STACK_FILE: Final = "stack.json"
_STACK_FILE_VERSION: Final = 1


def default_state_dir(env: Mapping[str, str]) -> Path:
    """``$KEYLESS_LOCAL_STATE``, else ``$XDG_STATE_HOME/keyless/local``, else
    ``~/.local/state/keyless/local``: one stack per user, whatever the current folder."""
    if env.get(STATE_VARIABLE):
        return Path(env[STATE_VARIABLE]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(base).expanduser() / "keyless" / "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackInfo:
    """What the stack file says about a running stack (no administrator key in it)."""

    state_dir: Path
    pid: int
    endpoint_url: str
    region: str
    account_id: str
    ca_bundle: Path
    ca_thumbprint: str
    moto_pid: int
    #: Each emulated CI's issuer server, ``https://127.0.0.1:PORT``, by CI name.
    servers: Mapping[str, str]
    #: Every issuer served when the stack started, by CI name.
    issuers: Mapping[str, tuple[str, ...]]
    control_secret: str = field(repr=False)

    @property
    def issuer_variables(self) -> tuple[tuple[str, str], ...]:
        """``KEYLESS_LOCAL_<CI>_ISSUER(_BASE)`` for each CI's issuer server."""
        return tuple(exported_variables(self.servers, self.issuers))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _STACK_FILE_VERSION,
            "pid": self.pid,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "account_id": self.account_id,
            "ca_bundle": str(self.ca_bundle),
            "ca_thumbprint": self.ca_thumbprint,
            "moto_pid": self.moto_pid,
            "servers": dict(self.servers),
            "issuers": {name: list(urls) for name, urls in self.issuers.items()},
            "control_secret": self.control_secret,
        }


def stack_info(stack: RunningStack, state_dir: Path) -> StackInfo:
    if stack.ci is None:
        raise LocalStackError("the stack has no CI issuers (LocalStack(ci_issuers=True))")
    return StackInfo(
        state_dir=state_dir,
        pid=os.getpid(),
        endpoint_url=stack.endpoint_url,
        region=stack.region,
        account_id=stack.account_id,
        ca_bundle=stack.ci.ca_bundle,
        ca_thumbprint=stack.ci.ca_thumbprint,
        moto_pid=stack.moto_pid,
        servers=stack.ci.base_urls(),
        issuers=stack.ci.issuers(),
        control_secret=stack.ci.control_secret,
    )


def read_stack_file(state_dir: Path) -> StackInfo | None:
    """The stack file in ``state_dir``, or ``None`` when there is none; unreadable is an error."""
    path = state_dir / STACK_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LocalStackError(
            f"{path} is unreadable ({type(exc).__name__})",
            remedy=f"Remove {path} if no local stack runs from {state_dir}.",
        ) from exc
    try:
        if document["version"] != _STACK_FILE_VERSION:
            raise ValueError("version")
        return StackInfo(
            state_dir=state_dir,
            pid=int(document["pid"]),
            endpoint_url=str(document["endpoint_url"]),
            region=str(document["region"]),
            account_id=str(document["account_id"]),
            ca_bundle=Path(document["ca_bundle"]),
            ca_thumbprint=str(document["ca_thumbprint"]),
            moto_pid=int(document["moto_pid"]),
            servers={str(k): str(v) for k, v in document["servers"].items()},
            issuers={str(k): tuple(map(str, v)) for k, v in document["issuers"].items()},
            control_secret=str(document["control_secret"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LocalStackError(
            f"{path} is not a keyless stack file ({type(exc).__name__})",
            remedy=f"Remove {path} if no local stack runs from {state_dir}.",
        ) from exc


def find_running(state_dir: Path, *, http: HttpClient | None = None) -> StackInfo | None:
    """The stack running from ``state_dir``, or ``None``: a stack file whose process is alive
    and whose servers answer with its control secret (a stale file is ignored)."""
    info = read_stack_file(state_dir)
    if info is None or not _alive(info.pid):
        return None
    client = http or UrllibClient(ca_bundle=info.ca_bundle)
    for base in info.servers.values():
        try:
            response = client.get(base + PING_PATH, headers=_control(info))
        except NetworkError:
            return None
        if response.status != 200:
            return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: not ours to use
        return False
    return True


def _control(info: StackInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {info.control_secret}"}


@contextlib.contextmanager
def served_stack(*, state_dir: Path, port: int = 0) -> Iterator[tuple[RunningStack, StackInfo]]:
    """A stack with CI issuers whose CA and keys persist in ``state_dir``, announced by the stack
    file there while it runs; ``LocalStackError`` if one already runs from that folder."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    running = find_running(state_dir)
    if running is not None:
        raise LocalStackError(
            f"a local stack already runs from {state_dir} (pid {running.pid})",
            remedy="Stop it first, or give another folder with --state DIR.",
        )
    with LocalStack(issuer_paths=(), state_dir=state_dir, port=port, ci_issuers=True) as stack:
        info = stack_info(stack, state_dir)
        stack_file = state_dir / STACK_FILE
        write_secret_file(stack_file, json.dumps(info.to_json(), indent=2) + "\n")
        try:
            yield stack, info
        finally:
            stack_file.unlink(missing_ok=True)


def scope_issuer(info: StackInfo, provider: CiProvider, scope: Scope) -> str:
    """The issuer URL that ``info``'s stack signs ``scope``'s tokens with."""
    base = info.servers.get(provider.name)
    if base is None:
        raise LocalStackError(f"the running stack has no {provider.name} issuer")
    path = provider.issuer_path(scope)
    return base if path == "/" else base + path


def check_issuer(info: StackInfo, provider: CiProvider, scope: Scope, issuer: str | None) -> None:
    """``--issuer URL`` (as ``local pipeline --print-scope`` prints it) must be the issuer the
    stack signs the scope's tokens with: the stack, not the flag, decides it."""
    if issuer is None:
        return
    served = scope_issuer(info, provider, scope)
    if issuer != served:
        raise UsageError(
            f"--issuer {issuer} is not the issuer of this scope on the local stack at"
            f" {info.endpoint_url}: it signs with {served}",
            remedy="Drop --issuer (the stack decides the issuer of a scope), or run against the"
            " stack that printed it (--state DIR, or its KEYLESS_LOCAL_STATE).",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteTokens:
    """``JobTokens`` of one scope's issuer on a stack running in another process."""

    info: StackInfo
    ci: str
    path: str
    http: HttpClient = field(repr=False)

    @classmethod
    def of(cls, info: StackInfo, provider: CiProvider, scope: Scope) -> RemoteTokens:
        return cls(
            info=info,
            ci=provider.name,
            path=provider.issuer_path(scope),
            http=UrllibClient(ca_bundle=info.ca_bundle),
        )

    def sign(self, claims: JobClaims) -> RawToken:
        return RawToken(self._ask(SIGN_PATH, claims)["value"])

    def endpoint(self, claims: JobClaims) -> TokenEndpoint:
        answer = self._ask(JOBS_PATH, claims)
        return TokenEndpoint(url=answer["url"], bearer=answer["bearer"])

    def _ask(self, route: str, claims: JobClaims) -> dict[str, str]:
        base = self.info.servers.get(self.ci)
        if base is None:
            raise LocalStackError(f"the running stack has no {self.ci} issuer")
        query = urllib.parse.urlencode(claims_query(self.path, claims))
        response = self.http.get(f"{base}{route}?{query}", headers=_control(self.info))
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        if response.status != 200 or not isinstance(document, dict):
            detail = document.get("message") if isinstance(document, dict) else None
            raise LocalStackError(
                f"the local stack at {base} refused: HTTP {response.status}"
                + (f": {detail}" if isinstance(detail, str) else "")
            )
        return {str(k): str(v) for k, v in document.items()}
