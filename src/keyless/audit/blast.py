"""What a role may do once assumed, in a few words: admin-like, writes IAM, writes S3 bucket X,
read-only, or unknown when the source does not carry the role's permission policies.

A summary for triage, not an evaluation: it reads Allow statements' actions and resources
(IAM JSON policy elements: Action, NotAction, Resource) and ignores conditions and Deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from keyless.audit.inventory import PolicyDocument
from keyless.compat import StrEnum
from keyless.jsonlimits import loads_bounded

__all__ = ["Blast", "BlastRadius", "blast_radius"]

#: AWS managed policies whose effect is known by name when their document is not at hand.
_KNOWN_MANAGED = {
    "AdministratorAccess": "admin-like",
    "IAMFullAccess": "writes IAM",
    "PowerUserAccess": "writes every service but IAM",
    "ReadOnlyAccess": "read-only",
    "ViewOnlyAccess": "read-only",
    "SecurityAudit": "read-only",
}
_READ_VERBS = ("get", "list", "describe", "head", "view", "lookup", "search", "scan", "query")
#: Items of the summary shown; the rest are counted.
_SUMMARY_ITEMS = 6


class Blast(StrEnum):
    """How much a role may do, worst first."""

    ADMIN = "admin-like"
    IAM = "writes-iam"
    WRITE = "writes"
    READ = "read-only"
    NONE = "none"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class BlastRadius:
    level: Blast
    summary: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"level": self.level.value, "summary": list(self.summary)}

    @property
    def text(self) -> str:
        return ", ".join(self.summary) if self.summary else self.level.value


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _statements(document: object) -> Iterable[dict[str, object]]:
    if isinstance(document, str):
        try:
            document = loads_bounded(document)
        except ValueError:
            return []
    if not isinstance(document, dict):
        return []
    raw = document.get("Statement")
    items = raw if isinstance(raw, list) else [raw]
    return [s for s in items if isinstance(s, dict)]


def _is_write(action: str) -> bool:
    _, _, name = action.partition(":")
    return not name.lower().startswith(_READ_VERBS)


def _bucket(resource: str) -> str | None:
    if resource == "*":
        return "*"
    if resource.startswith("arn:aws") and ":s3:::" in resource:
        return resource.split(":::", 1)[1].split("/", 1)[0] or "*"
    return None


def blast_radius(
    policies: Sequence[PolicyDocument] | None, unread: Sequence[str] = ()
) -> BlastRadius:
    if policies is None:
        return BlastRadius(level=Blast.UNKNOWN, summary=("permissions not in the input",))
    levels: set[Blast] = set()
    items: list[str] = []

    def add(level: Blast, item: str) -> None:
        levels.add(level)
        if item not in items:
            items.append(item)

    for arn in unread:
        name = arn.rsplit("/", 1)[-1]
        known = _KNOWN_MANAGED.get(name)
        if known == "admin-like":
            add(Blast.ADMIN, "admin-like")
        elif known == "writes IAM":
            add(Blast.IAM, known)
        elif known == "read-only":
            add(Blast.READ, f"read-only ({name})")
        elif known:
            add(Blast.WRITE, known)
        else:
            add(Blast.UNKNOWN, f"unknown ({name} not readable)")
    for policy in policies:
        for statement in _statements(policy.document):
            if statement.get("Effect") != "Allow":
                continue
            resources = _strings(statement.get("Resource")) or ["*"]
            if "NotAction" in statement:
                add(Blast.ADMIN if "*" in resources else Blast.WRITE, "admin-like (NotAction)")
                continue
            for action in _strings(statement.get("Action")):
                lowered = action.lower()
                if lowered in ("*", "*:*"):
                    add(Blast.ADMIN if "*" in resources else Blast.WRITE, "admin-like")
                    continue
                service = lowered.partition(":")[0]
                if not _is_write(lowered):
                    add(Blast.READ, f"reads {service}")
                elif service == "iam":
                    add(Blast.IAM, "writes IAM")
                elif service == "s3":
                    buckets = sorted({b for r in resources if (b := _bucket(r))})
                    for bucket in buckets or ["*"]:
                        add(
                            Blast.WRITE,
                            "writes any S3 bucket"
                            if bucket == "*"
                            else f"writes S3 bucket {bucket}",
                        )
                else:
                    add(Blast.WRITE, f"writes {service}")
    level = next((b for b in Blast if b in levels), Blast.NONE)
    if level is Blast.READ:
        items = ["read-only"]
    elif level is Blast.NONE:
        items = ["no permissions"]
    else:
        items = [item for item in items if not item.startswith("reads ")]
        if level is Blast.ADMIN:
            items = ["admin-like"] + [i for i in items if not i.startswith("admin-like")]
    if len(items) > _SUMMARY_ITEMS:
        items = [*items[:_SUMMARY_ITEMS], f"and {len(items) - _SUMMARY_ITEMS} more"]
    return BlastRadius(level=level, summary=tuple(items))
