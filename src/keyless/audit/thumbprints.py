"""The thumbprint each provider's issuer presents now, next to the one IAM holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from keyless.audit.inventory import Inventory, ProviderRecord

__all__ = ["ThumbprintReader", "check_thumbprints"]

#: ``(issuer URL, ca_bundle) -> thumbprint``: keyless.aws.thumbprint.issuer_thumbprint.
ThumbprintReader = Callable[[str, Path | None], str]


def _issuer_thumbprint(issuer: str, ca_bundle: Path | None) -> str:
    from keyless.aws.thumbprint import issuer_thumbprint

    return issuer_thumbprint(issuer, ca_bundle=ca_bundle)


def check_thumbprints(
    inventory: Inventory,
    *,
    ca_bundle: Path | None = None,
    read: ThumbprintReader = _issuer_thumbprint,
) -> Inventory:
    """The providers with the thumbprint their issuer's key host presents now. A host the
    system's trust store accepts is publicly trusted (AWS then ignores thumbprints); one it
    refuses is read again with ``ca_bundle``. A provider that cannot be read is listed in
    ``errors`` and the audit goes on."""
    from keyless.errors import KeylessError

    providers: list[ProviderRecord] = []
    errors: list[str] = []
    for record in inventory.providers or ():
        issuer = f"https://{record.url}"
        try:
            current, public = read(issuer, None), True
        except KeylessError as first:
            if ca_bundle is None:
                errors.append(
                    f"thumbprint of {record.url} not checked: {first} (pass --ca-bundle PEM when"
                    " its CA is private)"
                )
                providers.append(record)
                continue
            try:
                current, public = read(issuer, ca_bundle), False
            except KeylessError as second:
                errors.append(f"thumbprint of {record.url} not checked: {second}")
                providers.append(record)
                continue
        providers.append(
            dataclasses.replace(record, current_thumbprint=current, publicly_trusted=public)
        )
    return dataclasses.replace(
        inventory,
        providers=tuple(providers) if inventory.providers is not None else None,
        errors=(*inventory.errors, *errors),
    )
