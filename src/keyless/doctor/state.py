"""The state one diagnosis shares between its steps: the request, the seams, the steps so far and
what they found (the CI, the token, whether it expired, the trust step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keyless import tokens
from keyless.aws.sts import Sts
from keyless.ci.base import ObtainedToken, Provider
from keyless.doctor.report import DoctorRequest, Status, Step
from keyless.errors import KeylessError
from keyless.http import HttpClient

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = ["Diagnosis", "IamFactory"]

#: Makes the IAM client doctor reads the provider and the role with; ``None``: no credentials.
IamFactory = Callable[[], "IAMClient | None"]


class Diagnosis:
    """The steps' shared state; the steps themselves are ``TokenSteps`` and ``AwsSteps``."""

    def __init__(
        self,
        request: DoctorRequest,
        *,
        http: HttpClient,
        sts: Sts,
        iam: IamFactory,
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        self.env = request.env
        self.http = http
        self.sts = sts
        self.iam_factory = iam
        self.clock = clock
        self.steps: list[Step] = []
        self.provider: Provider | None = None
        self.obtained: ObtainedToken | None = None
        self.token: tokens.UnverifiedToken | None = None
        self.expired = False
        self.trust: Step | None = None
        self._iam: IAMClient | None = None
        self._iam_made = False

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def skipped(self, name: str, why: str) -> Step:
        return Step(name=name, status=Status.SKIPPED, summary=why)

    def iam(self) -> IAMClient | None:
        if not self._iam_made:
            self._iam_made = True
            try:
                self._iam = self.iam_factory()
            except KeylessError:
                self._iam = None
        return self._iam
