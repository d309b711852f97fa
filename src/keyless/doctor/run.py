"""``diagnose``: every step of the chain in order, and the production IAM seam."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError

from keyless.aws import clients
from keyless.aws.clients import ambient_session, region_from
from keyless.aws.sts import Sts, endpoint_url
from keyless.doctor.aws_steps import AwsSteps
from keyless.doctor.report import DoctorRequest, Report
from keyless.doctor.state import IamFactory
from keyless.doctor.token_steps import TokenSteps
from keyless.http import HttpClient

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = ["diagnose", "iam_client_for"]


def iam_client_for(env: Mapping[str, str], *, region: str | None = None) -> IamFactory:
    """The production IAM seam: a client with the job's own credentials, or ``None`` when it has
    none (the usual case in CI, where the exchange itself is the check)."""

    def make() -> IAMClient | None:
        session = ambient_session(env, region=region_from(env, region))
        try:
            if session.get_credentials() is None:
                return None
        except BotoCoreError:
            return None
        return clients.client(session, "iam", endpoint_url=endpoint_url(env, "iam"))

    return make


def diagnose(
    request: DoctorRequest,
    *,
    http: HttpClient,
    sts: Sts,
    iam: IamFactory,
    clock: Callable[[], float] = time.time,
) -> Report:
    """Run every step that can run; a step whose input is missing is skipped, saying why."""
    return _Doctor(request, http=http, sts=sts, iam=iam, clock=clock).run()


class _Doctor(TokenSteps, AwsSteps):
    def run(self) -> Report:
        self.add(self.ci_step())
        self.add(self.token_step())
        self.add(self.claims_step())
        self.add(self.time_step())
        self.add(self.signature_step())
        self.add(self.provider_step())
        self.trust = self.trust_step()
        self.add(self.trust)
        self.steps.extend(self.exchange_steps())
        return Report(steps=tuple(self.steps))
