"""The issuers a local issuer serves (path, JWKS path, keys), and their saved form on disk.

The state folder holds ``issuers.json`` and one 0600 PEM file per key, so that clients and AWS
providers configured once keep working across restarts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from keyless.errors import UsageError
from keyless.fsutil import write_secret_file
from keyless.local import issuer_keys
from keyless.local.issuer_keys import SigningKey
from keyless.local.pki import write_atomic

#: An issuer path: ``/`` or ``/a/b`` of URL path characters.
ISSUER_PATH: Final = re.compile(r"/|(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")
_STATE_FILE: Final = "issuers.json"
_STATE_VERSION: Final = 1


@dataclass(slots=True, kw_only=True)
class IssuerState:
    """One issuer served: its path, where its JWKS is, extra discovery fields, its keys."""

    path: str
    jwks_suffix: str
    discovery_extra: dict[str, object]
    keys: list[SigningKey]  # the active key is the last one

    @property
    def active(self) -> SigningKey:
        return self.keys[-1]

    @property
    def base_path(self) -> str:
        return "" if self.path == "/" else self.path


def check_path(path: str) -> str:
    """``path`` if it can be an issuer path, else ``UsageError``."""
    segments = path.split("/")[1:]
    if (
        not ISSUER_PATH.fullmatch(path)
        or (path != "/" and path.endswith("/"))
        or any(s in {"", ".", ".."} for s in segments if path != "/")
    ):
        raise UsageError(f"issuer path {path!r} must be '/' or '/a/b' without '.', '..' or '//'")
    return path


def save_issuers(state_dir: Path, issuers: Iterable[IssuerState]) -> None:
    """Write ``issuers`` and their keys to ``state_dir``; key files no issuer uses are removed."""
    keys_dir = state_dir / "keys"
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    document: dict[str, Any] = {"version": _STATE_VERSION, "issuers": []}
    kept: set[str] = set()
    for state in issuers:
        for key in state.keys:
            key_file = keys_dir / f"{key.kid}.pem"
            if not key_file.exists():
                pem = issuer_keys.private_pem(key.private_key)
                write_secret_file(key_file, pem.decode("ascii"))
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
    write_atomic(state_dir / _STATE_FILE, data, mode=0o644)


def load_issuers(state_dir: Path) -> dict[str, IssuerState]:
    """The issuers saved in ``state_dir`` by path (none without a saved state); ``UsageError``
    naming the folder when it cannot be read."""
    issuers: dict[str, IssuerState] = {}
    state_file = state_dir / _STATE_FILE
    if not state_file.is_file():
        return issuers
    try:
        document = json.loads(state_file.read_text(encoding="utf-8"))
        if document.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown version {document.get('version')!r}")
        for entry in document["issuers"]:
            keys = []
            for item in entry["keys"]:
                pem = (state_dir / "keys" / f"{item['kid']}.pem").read_bytes()
                private_key = issuer_keys.load_private_pem(pem, item["kid"])
                keys.append(
                    SigningKey(
                        kid=item["kid"],
                        private_key=private_key,
                        retired_at=item["retired_at"],
                        last_expiry=float(item["last_expiry"]),
                    )
                )
            if not keys:
                raise ValueError(f"issuer {entry['path']} has no key")
            path = check_path(entry["path"])
            issuers[path] = IssuerState(
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
    return issuers
