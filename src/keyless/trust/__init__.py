"""Trust policies, pure and I/O-free: parse, evaluate as IAM does, lint, build least privilege.

- ``keyless.trust.model``      IAM policy JSON as frozen values, exact error locations
- ``keyless.trust.operators``  IAM condition operators as a name -> small function table
- ``keyless.trust.evaluate``   ``evaluate(policy, request) -> Evaluation`` for web identity
- ``keyless.trust.lint``       ``lint(policy) -> list[Finding]``, one function per rule, SARIF
- ``keyless.trust.build``      least-privilege trust for a CI scope: JSON, Terraform, CloudFormation
"""

from __future__ import annotations
