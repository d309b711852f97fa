"""--check-thumbprints: which providers' thumbprints matter (not the hosted CIs', not a publicly
trusted host's), and a stale one is a finding; an issuer that cannot be read is listed, not
fatal. The reader is a fake here; tests/integration/audit/test_live.py reads the local stack's
issuers over TLS."""

from __future__ import annotations

from pathlib import Path

from keyless.audit.inventory import Inventory, ProviderRecord, RoleRecord
from keyless.audit.report import build_report
from keyless.audit.thumbprints import ThumbprintReader, check_thumbprints
from keyless.errors import NetworkError
from tests.unit.audit.dumps import ACCOUNT, GH, trust

PRIVATE = "issuer.corp.example"
PUBLIC = "oidc.acme.example"
BUNDLE = Path("/ca.pem")
NOW = "b" * 40


def _reader(calls: list[tuple[str, Path | None]]) -> ThumbprintReader:
    def read(issuer: str, ca_bundle: Path | None) -> str:
        calls.append((issuer, ca_bundle))
        if PRIVATE in issuer and ca_bundle is None:
            raise NetworkError(f"TLS certificate of {PRIVATE}:443 is not trusted")
        return NOW

    return read


def _inventory(registered: str) -> Inventory:
    providers = tuple(
        ProviderRecord(
            arn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url}",
            url=url,
            account_id=ACCOUNT,
            client_ids=("sts.amazonaws.com",),
            thumbprints=(registered,),
        )
        for url in (PRIVATE, PUBLIC, GH)
    )
    roles = tuple(
        RoleRecord(
            arn=f"arn:aws:iam::{ACCOUNT}:role/{name}",
            role_name=name,
            account_id=ACCOUNT,
            trust=trust(
                url, {"StringEquals": {f"{url}:sub": "x", f"{url}:aud": "sts.amazonaws.com"}}
            ),
        )
        for name, url in (("private", PRIVATE), ("public", PUBLIC), ("github", GH))
    )
    return Inventory(roles=roles, providers=providers)


def _stale(report: object) -> dict[str, tuple[bool | None, bool]]:
    return {
        role.role_name: (
            role.providers[0].thumbprint_stale,
            any(f.rule == "thumbprint-stale" for f in role.findings),
        )
        for role in report.roles  # type: ignore[attr-defined]
    }


def test_a_stale_thumbprint_of_a_private_issuer_is_a_finding() -> None:
    calls: list[tuple[str, Path | None]] = []
    checked = check_thumbprints(_inventory("a" * 40), ca_bundle=BUNDLE, read=_reader(calls))
    assert _stale(build_report(checked)) == {
        "private": (True, True),
        "public": (False, False),  # publicly trusted: AWS does not use the thumbprint
        "github": (False, False),
    }
    assert (f"https://{GH}", BUNDLE) not in calls  # publicly trusted: read once
    assert (f"https://{PRIVATE}", BUNDLE) in calls
    assert checked.errors == ()


def test_a_current_thumbprint_is_no_finding() -> None:
    checked = check_thumbprints(_inventory(NOW.upper()), ca_bundle=BUNDLE, read=_reader([]))
    assert _stale(build_report(checked))["private"] == (False, False)


def test_a_private_issuer_without_its_ca_is_listed_not_fatal() -> None:
    checked = check_thumbprints(_inventory("a" * 40), read=_reader([]))
    assert _stale(build_report(checked))["private"] == (None, False)
    (error,) = checked.errors
    assert error.startswith(f"thumbprint of {PRIVATE} not checked")
    assert "--ca-bundle" in error


def test_without_the_check_staleness_is_unknown_for_self_hosted_issuers() -> None:
    assert _stale(build_report(_inventory("a" * 40))) == {
        "private": (None, False),
        "public": (None, False),
        "github": (False, False),
    }
