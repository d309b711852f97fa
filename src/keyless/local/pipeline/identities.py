"""The workspace, repositories and deployment environments of local pipeline runs: UUIDs made up
once and kept in the state folder, so the same names keep the same identities across runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from keyless.ci import bitbucket
from keyless.ci.base import JobRun
from keyless.ci.bitbucket import BitbucketScope
from keyless.errors import UsageError
from keyless.local.pipeline.model import PipelineError
from keyless.local.pki import write_atomic
from keyless.local.served import RemoteTokens, StackInfo

#: Where the workspace, repository and environment identities live, in the state folder.
IDENTITIES_FILE: Final = "bitbucket-identities.json"
_IDENTITIES_VERSION: Final = 1
#: The workspace slug a new identities file gets (it is part of the local issuer URL).
DEFAULT_WORKSPACE: Final = "local-workspace"
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9_.-]*")


# --- identities: the workspace, repositories and environments, stable across runs ---------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who a pipeline run is: UUIDs as Bitbucket shows them, without braces."""

    workspace: str
    workspace_uuid: str
    repository: str
    repository_uuid: str
    #: Deployment environment name -> UUID, for the environments asked for.
    environments: Mapping[str, str]
    build_number: int

    def scope(self, deployment: str | None = None) -> BitbucketScope:
        return BitbucketScope(
            workspace=self.workspace,
            workspace_uuid=self.workspace_uuid,
            repository_uuid=self.repository_uuid,
            environment_uuid=self.environments[deployment] if deployment else None,
        )


def resolve_identity(
    path: Path, *, repository: str, deployments: Sequence[str] = (), new_build: bool = False
) -> Identity:
    """The identities of ``repository`` and its ``deployments`` from ``path``, created (random
    UUIDs) and saved on first use, so the same names keep the same UUIDs; ``new_build`` counts a
    build of the repository."""
    if not _SLUG.fullmatch(repository):
        raise PipelineError(
            f"repository slug {repository!r} is not a slug (lowercase letters, digits, ._-)"
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path):
        document = _read_identities(path)
        workspace = document["workspace"]
        repositories = document["repositories"]
        entry = repositories.setdefault(
            repository, {"uuid": str(uuid.uuid4()), "builds": 0, "environments": {}}
        )
        for name in deployments:
            entry["environments"].setdefault(name, str(uuid.uuid4()))
        if new_build:
            entry["builds"] += 1
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text.encode(), mode=0o644)
    return Identity(
        workspace=workspace["slug"],
        workspace_uuid=workspace["uuid"],
        repository=repository,
        repository_uuid=entry["uuid"],
        environments={name: entry["environments"][name] for name in deployments},
        build_number=max(entry["builds"], 1),
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two runs creating the file at once must not mint two UUIDs for one repository.
    with (path.parent / f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_identities(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {
            "version": _IDENTITIES_VERSION,
            "workspace": {"slug": DEFAULT_WORKSPACE, "uuid": str(uuid.uuid4())},
            "repositories": {},
        }
    broken = PipelineError(
        f"{path} is not a keyless identities file",
        remedy=f"Remove {path}: keyless makes a new one (with new UUIDs) on the next run.",
    )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise broken from None
    try:
        if document["version"] != _IDENTITIES_VERSION:
            raise broken
        BitbucketScope(
            workspace=document["workspace"]["slug"],
            workspace_uuid=document["workspace"]["uuid"],
            repository_uuid=str(uuid.UUID(int=0)),
        )
        for entry in document["repositories"].values():
            uuid.UUID(entry["uuid"])
            int(entry["builds"])
            for value in entry["environments"].values():
                uuid.UUID(value)
    except (KeyError, TypeError, ValueError, AttributeError, UsageError):
        raise broken from None
    return dict(document)


def local_issuer(stack: StackInfo, identity: Identity) -> str:
    """The workspace's issuer URL on ``stack``, served from now on (so that provisioning can
    read its discovery document before any step has run)."""
    scope = identity.scope()
    # A stack serves a workspace's issuer once it has signed for it: sign once, discard the token.
    RemoteTokens.of(stack, bitbucket.PROVIDER, scope).sign(
        bitbucket.PROVIDER.job_claims(scope, JobRun(step="provision"))
    )
    base = stack.servers[bitbucket.PROVIDER.name]
    return base + bitbucket.PROVIDER.issuer_path(scope)


def scope_flags(identity: Identity, *, deployment: str | None, issuer: str | None) -> list[str]:
    """The scope flags of ``keyless provision`` / ``trust build`` for this identity."""
    flags = ["--ci", "bitbucket", "--workspace", identity.workspace]
    flags += ["--workspace-uuid", identity.workspace_uuid]
    flags += ["--repository-uuid", identity.repository_uuid]
    if deployment is not None:
        flags += ["--environment-uuid", identity.environments[deployment]]
    if issuer is not None:
        flags += ["--issuer", issuer]
    return flags
