"""The lint rules, one declaration each (``registry.rule``), grouped by what they read.

``RULES`` is every registered rule in report order: findings of one statement and severity are
listed in this order, and SARIF's rule catalogue follows it.
"""

from __future__ import annotations

from keyless.trust.lint_rules import (
    bitbucket,
    conditions,
    github,
    gitlab,
    policy,
    principal,
    subject,
    templates,
    terraform,
)
from keyless.trust.lint_rules.registry import REGISTRY, Hit, Rule, rule

__all__ = ["REGISTRY", "RULES", "Hit", "Rule", "rule"]

#: Report order by module; within a module, declaration order.
_ORDER = tuple(
    m.__name__
    for m in (
        principal,
        subject,
        github,
        gitlab,
        terraform,
        conditions,
        bitbucket,
        policy,
        templates,
    )
)

RULES: tuple[Rule, ...] = tuple(
    sorted(
        (r for r in REGISTRY if r.detect.__module__ in _ORDER),
        key=lambda r: _ORDER.index(r.detect.__module__),
    )
)
