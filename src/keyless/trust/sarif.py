"""Lint findings as SARIF 2.1.0 for GitHub code scanning: the rule catalogue from the rule
declarations, one result per finding with its file and line."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from keyless.trust.findings import Finding, Severity
from keyless.trust.lines import LineIndex
from keyless.trust.lint_rules import RULES, Rule
from keyless.trust.work import current as current_work

__all__ = ["Declared", "LintedFile", "PolicyLines", "line_of", "rule_descriptor", "sarif"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LintedFile:
    """One linted policy: the path of its file as the user named it, the file's text, and its
    findings; for a role of IAM output (``keyless.trust.role_output``) also the role, where it
    sits (``Roles[3]``) and the part of the text that holds its trust policy."""

    path: str
    text: str
    findings: tuple[Finding, ...]
    role: str | None = None
    where: str = ""
    start: int = 0
    end: int | None = None
    #: The lines of ``text``, shared by the policies of one file (built when not given).
    lines: LineIndex | None = field(default=None, repr=False, compare=False)
    #: Built on the first ``line`` call, then shared by every finding of the policy.
    _located: PolicyLines | None = field(default=None, init=False, repr=False, compare=False)

    def line(self, finding: Finding) -> int:
        located = self._located
        if located is None:
            located = PolicyLines(self.text, self.start, self.end, lines=self.lines)
            object.__setattr__(self, "_located", located)
        return located.line_of(finding)

    def qualified(self, finding: Finding) -> str:
        """Where the finding is, its role included (``Roles[3].AssumeRolePolicyDocument...``)."""
        if not self.where:
            return finding.location
        return f"{self.where}.AssumeRolePolicyDocument.{finding.location}"


# A statement's Effect as JSON writes it, and as CloudFormation YAML (`Effect: Allow`) and
# Terraform's jsonencode (`Effect = "Allow"`) write it, for policies read from templates.
_EFFECT = re.compile(r'(?:"Effect"|(?<![\w"])Effect)\s*[:=]')


class PolicyLines:
    """Where each finding of one policy sits, by line.

    The policy's text is scanned once (its statements' ``Effect`` members) and the file's
    lines are indexed once (``lines``, shared by the policies of one file); each finding then
    searches only its own statement's part, and a line number is a binary search. So a policy
    of S statements with F findings costs its length plus F statements' lengths, not F times
    its length (1,000 statements with two findings each took 30 s; 5,000 roles of
    ``list-roles`` output, 11 s counting the line breaks before each role).
    """

    def __init__(
        self, text: str, start: int = 0, end: int | None = None, *, lines: LineIndex | None = None
    ) -> None:
        if lines is None:
            lines = LineIndex(text)
            _count_scanned(len(text))
        self._lines = lines
        self._start = start
        self._text = text[start:end]
        self._effects = [match.start() for match in _EFFECT.finditer(self._text)]
        _count_scanned(len(self._text))

    def line_of(self, finding: Finding) -> int:
        """The 1-based line of the JSON member a finding is about (the statement's ``Effect``
        line when the member is not found); the policy's first line for document-level
        findings."""
        return self._lines.line_at(self._start + self._offset_in(finding))

    def _offset_in(self, finding: Finding) -> int:
        starts = self._effects
        if finding.statement is None or finding.statement >= len(starts):
            return 0
        anchor = starts[finding.statement]
        low = starts[finding.statement - 1] if finding.statement > 0 else 0
        high = starts[finding.statement + 1] if finding.statement + 1 < len(starts) else None
        position = anchor
        if finding.element:
            needle = re.compile(re.escape(json.dumps(finding.element)))
            hits = self._starts(needle, low, high)
            if not hits:  # a YAML template's key is unquoted: `repo.example:sub: ...`
                bare = re.compile(rf"(?<![\w.:-]){re.escape(finding.element)}\s*:")
                hits = self._starts(bare, low, high)
            if hits:
                position = min(hits, key=lambda hit: abs(hit - anchor))
        return position

    def _starts(self, pattern: re.Pattern[str], low: int, high: int | None) -> list[int]:
        """Where ``pattern`` matches, starting in ``[low, high)`` (look-behinds still see what
        lies before ``low``, as in a search of the whole text)."""
        hits = []
        for match in pattern.finditer(self._text, low):
            if high is not None and match.start() >= high:
                break
            hits.append(match.start())
        _count_scanned((len(self._text) if high is None else high) - low)
        return hits


def _count_scanned(characters: int) -> None:
    work = current_work()
    if work is not None:
        work.located += characters


def line_of(text: str, finding: Finding, *, start: int = 0, end: int | None = None) -> int:
    """The 1-based line of the JSON member a finding is about (the statement's ``Effect`` line
    when the member is not found); the first line for document-level findings. ``start`` and
    ``end`` bound the part of ``text`` that holds the policy (one role of ``list-roles``)."""
    return PolicyLines(text, start, end).line_of(finding)


def sarif(
    files: Sequence[LintedFile], *, tool_version: str, rules: Sequence[Rule] = RULES
) -> dict[str, Any]:
    """A SARIF 2.1.0 log for GitHub code scanning: one run, the rule catalogue, one result per
    finding with its file and line."""
    index = {rule.id: position for position, rule in enumerate(rules)}
    results = []
    for linted in files:
        who = f"role {linted.role}: " if linted.role else ""
        for finding in linted.findings:
            results.append(
                {
                    "ruleId": finding.rule,
                    "ruleIndex": index[finding.rule],
                    "level": finding.severity.sarif_level,
                    "message": {"text": f"{who}{finding.message}. Fix: {finding.fix}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": linted.path},
                                "region": {"startLine": linted.line(finding)},
                            },
                            "logicalLocations": [{"fullyQualifiedName": linted.qualified(finding)}],
                        }
                    ],
                    "properties": {"severity": finding.severity.value},
                }
            )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keyless",
                        "version": tool_version,
                        "rules": [rule_descriptor(rule) for rule in rules],
                    }
                },
                "results": results,
            }
        ],
    }


class Declared(Protocol):
    """What SARIF's catalogue says of a rule: a lint ``Rule``, or another tool's declaration."""

    @property
    def id(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def title(self) -> str: ...
    @property
    def help(self) -> str: ...


def rule_descriptor(rule: Declared) -> dict[str, Any]:
    """One entry of SARIF's rule catalogue (``reportingDescriptor``, SARIF 2.1.0 §3.49)."""
    return {
        "id": rule.id,
        "name": _pascal(rule.id),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {"text": rule.help},
        "defaultConfiguration": {"level": rule.severity.sarif_level},
        "properties": {
            "security-severity": rule.severity.security_severity,
            "tags": ["security", "iam", "oidc"],
            "precision": "high",
        },
    }


def _pascal(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.split("-"))
