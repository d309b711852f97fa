"""``keyless doctor``: the CI -> token -> IAM -> STS chain checked step by step, each step ok,
problem or skipped, and a named cause with its fix for every problem found.

``report`` (the values), ``state`` (what the steps share), ``token_steps`` (ci, token, claims,
time, signature), ``aws_steps`` (provider, trust, exchange, identity), ``explain`` (why a `sub` or
an `aud` does not match), ``run`` (``diagnose``).
"""

from __future__ import annotations

from keyless.causes import Cause
from keyless.doctor.explain import classify_subject
from keyless.doctor.report import DoctorRequest, Report, Status, Step
from keyless.doctor.run import diagnose, iam_client_for
from keyless.doctor.state import IamFactory

__all__ = [
    "Cause",
    "DoctorRequest",
    "IamFactory",
    "Report",
    "Status",
    "Step",
    "classify_subject",
    "diagnose",
    "iam_client_for",
]
