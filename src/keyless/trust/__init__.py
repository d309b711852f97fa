"""Trust policies, pure and I/O-free: parse, evaluate as IAM does, lint, build least privilege.

- ``keyless.trust.model``      IAM policy JSON as frozen values, exact error locations
- ``keyless.trust.operators``  IAM condition operators as a name -> small function table
- ``keyless.trust.evaluate``   ``evaluate(policy, request) -> Evaluation`` for web identity
- ``keyless.trust.verdict``    ``Request`` and the ``Evaluation`` values it returns
- ``keyless.trust.web_identity`` what AWS defines for web identity: actions, key prefix, exposure
- ``keyless.trust.context``    the request context: condition keys, session tags, variables
- ``keyless.trust.explain``    an evaluation's reason and explanation in plain English
- ``keyless.trust.lint``       ``lint(policy) -> list[Finding]``: every rule over a policy, ordered
- ``keyless.trust.lint_rules`` the lint rules, one declaration each (id, severity, title, help, fix)
- ``keyless.trust.subjects``   how much a `sub` value admits, from the CI's subject grammar
- ``keyless.trust.findings``   ``Severity`` and ``Finding``, the values lint reports
- ``keyless.trust.sarif``      findings as SARIF 2.1.0, the rule catalogue from the declarations
- ``keyless.trust.build``      least-privilege trust for a CI scope: JSON, Terraform, CloudFormation
"""

from __future__ import annotations
