"""``keyless doctor``: the CI -> token -> IAM -> STS chain checked step by step, each step ok,
problem or skipped, and a named cause with its fix for every problem found.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from keyless import claims_view, tokens
from keyless.arn import RoleArn, role_account, role_name, role_partition
from keyless.aws import clients
from keyless.aws.clients import ambient_session, region_from
from keyless.aws.errors import error_code
from keyless.aws.sts import (
    CallerIdentity,
    SigningKeys,
    Sts,
    TemporaryCredentials,
    endpoint_url,
)
from keyless.aws.sts_errors import StsAccessDeniedError, StsApiError
from keyless.causes import Cause
from keyless.ci import (
    CI_PROVIDERS,
    PROVIDERS,
    detect,
    local_issuers,
    obtain_token,
    provider_for_issuer,
)
from keyless.ci.base import (
    CiProvider,
    ObtainedToken,
    Provider,
    RawToken,
    SegmentRole,
    SubjectGrammar,
    SubjectSegment,
)
from keyless.ci.shared import CiBase
from keyless.compat import StrEnum
from keyless.errors import (
    CredentialError,
    IssuerError,
    KeylessError,
    NetworkError,
    TokenError,
    TokenVerificationError,
)
from keyless.exchange import CredentialRequest, TokenSource, obtain_credentials
from keyless.http import HttpClient
from keyless.jsonlimits import loads_bounded
from keyless.limits import TOKEN_LEEWAY_SECONDS
from keyless.trust.evaluate import evaluate
from keyless.trust.glob import compile_glob
from keyless.trust.model import Policy, parse_policy
from keyless.trust.verdict import ConditionRow, Decision, Evaluation, Outcome, Request
from keyless.trust.web_identity import issuer_prefix, provider_arn_for
from keyless.urls import shown_url

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

__all__ = ["Cause", "DoctorRequest", "Report", "Status", "Step", "diagnose", "iam_client_for"]


class Status(StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str
    status: Status
    summary: str
    cause: Cause | None = None
    fix: str | None = None
    #: Lines shown under the step (claims, condition rows); never secrets.
    details: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "cause": self.cause.value if self.cause else None,
            "fix": self.fix,
            "details": list(self.details),
            **({"data": dict(self.data)} if self.data else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(step.status is not Status.PROBLEM for step in self.steps)

    @property
    def causes(self) -> tuple[Cause, ...]:
        found: list[Cause] = []
        for step in self.steps:
            if step.status is Status.PROBLEM and step.cause and step.cause not in found:
                found.append(step.cause)
        return tuple(found)

    def to_json(self) -> dict[str, Any]:
        causes = self.causes
        return {
            "ok": self.ok,
            "cause": causes[0].value if causes else None,
            "causes": [cause.value for cause in causes],
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DoctorRequest:
    env: Mapping[str, str]
    ci: str = "auto"
    audience: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    role_arn: RoleArn | None = None
    #: A trust policy given with ``--policy FILE`` (else read from IAM when credentials allow).
    policy: Policy | None = None
    policy_source: str | None = None
    region: str | None = None


IamFactory = Callable[[], "IAMClient | None"]


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


# --- the steps -----------------------------------------------------------------------------------


class _Doctor:
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

    # --- CI and token -----------------------------------------------------------------------------

    def ci_step(self) -> Step:
        request = self.request
        # A contradiction (--token-file with another CI's --ci) is a usage error, not a finding.
        detection = detect(self.env, ci=request.ci, token_file=request.token_file)
        if detection.several:
            names = ", ".join(p.display_name for p in detection.several)
            return Step(
                name="ci",
                status=Status.PROBLEM,
                summary=f"the variables of several CIs are set ({names})",
                cause=Cause.SEVERAL_CIS,
                fix=f"Choose one with --ci NAME, e.g. --ci {detection.several[0].name}.",
            )
        if detection.is_file:
            return Step(name="ci", status=Status.OK, summary=f"a token file ({detection.origin})")
        if detection.provider is not None:
            self.provider = detection.provider
            origin = (
                detection.origin
                if detection.origin.startswith("--")
                else (f"{detection.origin} is set")
            )
            return Step(
                name="ci", status=Status.OK, summary=f"{self.provider.display_name} ({origin})"
            )
        markers = ", ".join(p.markers[0] for p in CI_PROVIDERS)
        return Step(
            name="ci",
            status=Status.PROBLEM,
            summary=f"no CI detected: none of {markers} is set",
            cause=Cause.NO_CI,
            fix="Run keyless doctor inside the CI step, force a CI with --ci NAME, or pass a"
            " token with --token-file PATH.",
        )

    def token_step(self) -> Step:
        if self.steps[-1].status is Status.PROBLEM:
            return self.skipped("token", "no CI to get a token from")
        request = self.request
        try:
            self.obtained = obtain_token(
                self.env,
                ci=request.ci,
                audience=request.audience,
                token_file=request.token_file,
                token_env=request.token_env,
                http=self.http,
            )
        except (CredentialError, TokenError, NetworkError) as exc:
            return Step(
                name="token",
                status=Status.PROBLEM,
                summary=exc.message,
                cause=self._token_cause(exc),
                fix=exc.remedy,
            )
        if self.obtained.provider in PROVIDERS:
            self.provider = self.provider or PROVIDERS[self.obtained.provider]
        return Step(name="token", status=Status.OK, summary=f"from {self.obtained.source}")

    def _token_cause(self, exc: KeylessError) -> Cause:
        # Checked on the environment, not on message texts: the variable is there or not.
        ci = _ci(self.provider)
        if ci is not None and ci.oidc_disabled(self.env):
            return Cause.OIDC_NOT_ENABLED
        if isinstance(exc, TokenError):
            return Cause.TOKEN_MALFORMED
        return Cause.TOKEN_UNAVAILABLE

    def claims_step(self) -> Step:
        if self.obtained is None:
            return self.skipped("claims", "no token")
        try:
            self.token = tokens.peek(self.obtained.token)
        except TokenError as exc:
            return Step(
                name="claims",
                status=Status.PROBLEM,
                summary=f"the token is malformed: {exc.message}",
                cause=Cause.TOKEN_MALFORMED,
                fix="The CI handed over something that is not a JWT; check the variable or file.",
            )
        if self.provider is None or self.provider.name == "file":
            local = local_issuers.from_environment(self.env)
            self.provider = provider_for_issuer(self.token.issuer or "", local) or self.provider
        view = claims_view.view(self.token, claims_view.safe_claims(self.provider))
        shown = dict(view.shown)
        details = [f"{name} = {claims_view.display(value)}" for name, value in shown.items()]
        if view.hidden:
            details.append(claims_view.hidden_line(view.hidden))
        # The prefix has no scheme left, so the console's URL redaction would not see user info.
        prefix = issuer_prefix(shown_url(self.token.issuer or ""))
        return Step(
            name="claims",
            status=Status.OK,
            summary=f"readable; IAM sees them as {prefix}:sub and :aud",
            details=tuple(details),
            data={"claims": shown},
        )

    def time_step(self) -> Step:
        if self.token is None:
            return self.skipped("time", "no readable token")
        now = self.clock()
        expires = self.token.time_claim("exp")
        not_before = self.token.time_claim("nbf")
        if expires is None:
            return Step(
                name="time",
                status=Status.PROBLEM,
                summary="the token has no `exp` claim; STS refuses it",
                cause=Cause.TOKEN_MALFORMED,
            )
        if expires + TOKEN_LEEWAY_SECONDS < now:
            self.expired = True
            ci = _ci(self.provider)
            renew = (ci.renew_hint() if ci else None) or (
                "Get a fresh token right before the exchange (keyless assume and"
                " credential-process do, where the CI allows it)."
            )
            return Step(
                name="time",
                status=Status.PROBLEM,
                summary=f"the token {claims_view.time_text('exp', expires, now)}",
                cause=Cause.TOKEN_EXPIRED,
                fix=renew,
            )
        if not_before is not None and not_before - TOKEN_LEEWAY_SECONDS > now:
            return Step(
                name="time",
                status=Status.PROBLEM,
                summary="the token is valid only from"
                f" {claims_view.time_text('nbf', not_before, now)}: is this clock right?",
                cause=Cause.TOKEN_EXPIRED,
                fix="Synchronise the machine's clock (NTP).",
            )
        return Step(
            name="time",
            status=Status.OK,
            summary=f"valid until {claims_view.time_text('exp', expires, now)}",
        )

    def signature_step(self) -> Step:
        if self.token is None or self.obtained is None:
            return self.skipped("signature", "no readable token")
        issuer = self.token.issuer
        audiences = self.token.audience
        if not issuer or not audiences:
            return Step(
                name="signature",
                status=Status.PROBLEM,
                summary="the token has no `iss` or no `aud`; STS refuses it",
                cause=Cause.TOKEN_MALFORMED,
            )
        # Times are the time step's business: here only the signature, algorithm and issuer.
        leeway = 10**10 if self.expired else TOKEN_LEEWAY_SECONDS
        try:
            verified = tokens.verify(
                self.obtained.token,
                issuer=issuer,
                audience=audiences[0],
                http=self.http,
                leeway=leeway,
            )
        except IssuerError as exc:
            return Step(
                name="signature",
                status=Status.PROBLEM,
                summary=f"cannot fetch the keys of {issuer}: {exc.message}",
                cause=Cause.ISSUER_UNREACHABLE,
                fix="STS fetches them too and answers InvalidIdentityToken (\"Couldn't retrieve"
                ' verification key") when it cannot: the issuer must serve its discovery'
                " document and JWKS over HTTPS (for the local stack, pass --ca-bundle).",
            )
        except TokenVerificationError as exc:
            return Step(
                name="signature",
                status=Status.PROBLEM,
                summary=f"the token fails the {exc.check} check: {exc.message}",
                cause=Cause.SIGNATURE,
                fix="The token was not signed by a key its issuer publishes; STS refuses it.",
            )
        return Step(
            name="signature",
            status=Status.OK,
            summary=f"signed by {verified.kid} ({verified.algorithm}), a key {issuer} publishes",
        )

    # --- AWS --------------------------------------------------------------------------------------

    def _provider_arn(self) -> str | None:
        role = self.request.role_arn
        if role is None or self.token is None or not self.token.issuer:
            return None
        return provider_arn_for(
            self.token.issuer, role_account(role), partition=role_partition(role)
        )

    def provider_step(self) -> Step:
        if self.token is None or not self.token.issuer:
            return self.skipped("provider", "no readable token")
        issuer = self.token.issuer
        arn = self._provider_arn()
        iam = self.iam() if arn else None
        if iam is not None and arn is not None:
            try:
                found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            except ClientError as exc:
                code = error_code(exc) or ""
                if code == "NoSuchEntity":
                    return self._provider_missing(arn, issuer)
                return self.skipped(
                    "provider", f"IAM refused iam:GetOpenIDConnectProvider ({code})"
                )
            except BotoCoreError as exc:
                return self.skipped("provider", f"IAM cannot be read ({type(exc).__name__})")
            client_ids = tuple(found.get("ClientIDList", []))
            matching = [aud for aud in self.token.audience if aud in client_ids]
            if not matching:
                return Step(
                    name="provider",
                    status=Status.PROBLEM,
                    summary=f"the token's aud {', '.join(self.token.audience)} is not a client ID"
                    f" of {arn} (client IDs: {', '.join(client_ids) or 'none'})",
                    cause=Cause.AUDIENCE,
                    fix=_audience_fix(self.provider, self.token.audience, client_ids),
                )
            return Step(
                name="provider",
                status=Status.OK,
                summary=f"{arn} exists and lists the audience {matching[0]}",
            )
        policy = self.request.policy
        if policy is not None:
            prefix = issuer_prefix(issuer)
            named = [value for statement in policy.statements for value in statement.federated]
            if named and not any(
                value.partition(":oidc-provider/")[2] == prefix or value == prefix
                for value in named
            ):
                return Step(
                    name="provider",
                    status=Status.PROBLEM,
                    summary=f"the trust policy trusts {', '.join(named)}, but the token comes"
                    f" from {issuer}",
                    cause=Cause.PROVIDER_MISSING,
                    fix=f"Trust the provider for {issuer} (oidc-provider/{prefix}) in the role,"
                    " or run the step in the CI/workspace the role was made for.",
                )
            return self.skipped(
                "provider",
                f"the trust policy names the provider for {issuer}; whether it exists and"
                " lists the audience needs IAM access (the exchange below checks it)",
            )
        why = "no --role-arn" if arn is None else "no AWS credentials to read IAM"
        return self.skipped("provider", f"{why}; the exchange below checks the provider")

    def _provider_missing(self, arn: str, issuer: str) -> Step:
        audience = self.token.audience[0] if self.token and self.token.audience else "AUDIENCE"
        return Step(
            name="provider",
            status=Status.PROBLEM,
            summary=f"there is no IAM OIDC provider {arn}",
            cause=Cause.PROVIDER_MISSING,
            fix=f"Register the issuer in the role's account: `keyless provision ...`, or\n"
            f"  aws iam create-open-id-connect-provider --url {issuer} --client-id-list"
            f" {audience}",
        )

    def _policy(self) -> tuple[Policy | None, str]:
        if self.request.policy is not None:
            return self.request.policy, self.request.policy_source or "--policy"
        role = self.request.role_arn
        if role is None:
            return None, "no --role-arn and no --policy"
        iam = self.iam()
        if iam is None:
            return None, "no AWS credentials to read the role (pass --policy FILE)"
        try:
            document = iam.get_role(RoleName=role_name(role))["Role"]["AssumeRolePolicyDocument"]
        except ClientError as exc:
            code = error_code(exc) or ""
            return None, f"IAM refused iam:GetRole ({code}); pass --policy FILE"
        except BotoCoreError as exc:
            return None, f"IAM cannot be read ({type(exc).__name__}); pass --policy FILE"
        try:
            parsed: object = (
                loads_bounded(urllib.parse.unquote(document))
                if isinstance(document, str)
                else document
            )
            return parse_policy(parsed), f"the trust policy of {role} (from IAM)"
        except (KeylessError, ValueError) as exc:
            return None, f"the trust policy of {role} cannot be read: {exc}"

    def trust_step(self) -> Step:
        if self.token is None or not self.token.issuer:
            return self.skipped("trust", "no readable token")
        policy, source = self._policy()
        if policy is None:
            return self.skipped("trust", source)
        request = Request.from_claims(
            {name: tokens.thaw(value) for name, value in self.token.claims.items()},
            provider_arn=self._provider_arn(),
        )
        try:
            evaluation = evaluate(policy, request)
        except KeylessError as exc:
            return self.skipped("trust", f"{source} cannot be evaluated: {exc.message}")
        rows = tuple(_row_line(row) for row in evaluation.conditions)
        if evaluation.allowed:
            return Step(
                name="trust",
                status=Status.OK,
                summary=f"{source}: {evaluation.reason}",
                details=rows,
            )
        if evaluation.decision is Decision.INDETERMINATE:
            return Step(
                name="trust",
                status=Status.SKIPPED,
                summary=f"{source}: {evaluation.reason}",
                details=rows,
            )
        cause, fix = self._trust_cause(evaluation)
        return Step(
            name="trust",
            status=Status.PROBLEM,
            summary=f"{source}: {evaluation.reason}",
            cause=cause,
            fix=fix,
            details=rows,
            data={"explanation": evaluation.explanation},
        )

    def _trust_cause(self, evaluation: Evaluation) -> tuple[Cause, str]:
        failed = [
            row
            for result in evaluation.statements
            if result.relevant and result.effect.value == "Allow"
            for row in result.conditions
            if row.result is Outcome.FAIL
        ]
        for row in failed:
            claim = row.key.rpartition(":")[2].lower()
            if claim == "aud":
                return Cause.AUDIENCE, _audience_fix(
                    self.provider, self.token.audience if self.token else (), row.values
                )
        for row in failed:
            if row.key.rpartition(":")[2].lower() == "sub" and isinstance(row.actual, str):
                return classify_subject(self._provider_name(), row.actual, row.values)
        principal_failed = [
            result
            for result in evaluation.statements
            if result.action_matches and result.principal is Outcome.FAIL
        ]
        if principal_failed and not any(r.relevant for r in evaluation.statements):
            note = principal_failed[0].principal_note or ""
            return Cause.PROVIDER_MISSING, (
                f"The trust policy's Federated principal does not match this token ({note})."
                " Trust the provider of the token's issuer."
            )
        return Cause.TRUST_POLICY, (
            "Change the trust policy or the step so that they agree (see the conditions above)."
        )

    def _provider_name(self) -> str | None:
        if self.provider is not None and self.provider.name != "file":
            return self.provider.name
        # A token file names no CI; a default `sub` of a distinctive shape does.
        subject = self.token.subject if self.token else None
        guessed = [p for p in CI_PROVIDERS if subject and _guessed(p, subject)]
        return guessed[0].name if guessed else None

    def exchange_steps(self) -> tuple[Step, Step]:
        """The exchange and the identity step: STS's answer, then GetCallerIdentity's."""
        role = self.request.role_arn
        no_credentials = self.skipped("identity", "no credentials")
        if role is None:
            return self.skipped("exchange", "no --role-arn"), no_credentials
        if self.obtained is None:
            return self.skipped("exchange", "no token"), no_credentials
        request = self.request
        # Built as assume builds it, so that doctor checks the very exchange assume makes.
        credential_request = CredentialRequest(
            role_arn=role,
            region=region_from(self.env, request.region),
            token=TokenSource(
                ci=request.ci,
                audience=request.audience,
                token_file=request.token_file,
                token_env=request.token_env,
            ),
        )
        sts = _Watched(self.sts)
        try:
            obtained = obtain_credentials(
                credential_request,
                env=self.env,
                sts_factory=lambda _env, _region, _notify: sts,
                notify=lambda _line: None,  # self.sts reports its retries itself
                warn=lambda _line: None,  # no fallback: the token is given
                clock=self.clock,
                token=self.obtained,
            )
        except KeylessError as exc:
            if sts.issued is not None:  # STS issued them; GetCallerIdentity is what failed
                return self._issued_step(sts.issued), self._identity_problem(exc)
            return self._exchange_problem(exc), no_credentials
        assumed = obtained.assumed
        issued = sts.issued or (assumed.assumed_role_arn, assumed.credentials.expiration_iso)
        return self._issued_step(issued), self._identity_step(assumed.identity)

    def _issued_step(self, issued: tuple[str, str]) -> Step:
        return Step(
            name="exchange",
            status=Status.OK,
            summary=f"STS issued credentials for {issued[0]} until {issued[1]}",
        )

    def _exchange_problem(self, exc: KeylessError) -> Step:
        if isinstance(exc, StsAccessDeniedError):
            cause, fix = self._denied_cause()
        elif isinstance(exc, StsApiError):
            cause, fix = self._sts_cause(exc)
        elif isinstance(exc, TokenVerificationError) and exc.check == "expired":
            cause, fix = Cause.TOKEN_EXPIRED, exc.remedy or ""
        elif isinstance(exc, TokenError):
            cause, fix = Cause.TOKEN_MALFORMED, exc.remedy or ""
        else:
            cause, fix = Cause.EXCHANGE, exc.remedy or ""
        return Step(
            name="exchange", status=Status.PROBLEM, summary=exc.message, cause=cause, fix=fix
        )

    def _denied_cause(self) -> tuple[Cause, str]:
        trust = self.trust
        if trust is not None and trust.status is Status.PROBLEM and trust.cause:
            return trust.cause, trust.fix or ""
        hint = self._likely_cause()
        certain = trust is not None and trust.status is Status.OK
        if certain:
            return Cause.TRUST_POLICY, (
                "keyless' evaluation allows the token, so STS denied for another reason: the role"
                " may not exist, or the policy read differs from the role's."
            )
        cause, fix = hint
        return cause, (
            f"Likely: {fix}\nThe trust policy could not be read here; pass --policy FILE (or run"
            " with credentials that may call iam:GetRole) for a condition-by-condition answer."
        )

    def _likely_cause(self) -> tuple[Cause, str]:
        """The likely cause of an AccessDenied from the claims alone (no policy to compare)."""
        subject = self.token.subject if self.token else None
        if not subject:
            return Cause.TRUST_POLICY, "STS denied the token."
        ci = _ci(PROVIDERS.get(self._provider_name() or ""))
        finding = ci.likely_subject_cause(subject) if ci else None
        if finding is not None:
            return finding.cause, finding.fix
        return Cause.TRUST_POLICY, (
            f"The role's trust policy does not admit sub {subject!r} with aud"
            f" {', '.join(self.token.audience) if self.token else ''}."
        )

    def _sts_cause(self, exc: StsApiError) -> tuple[Cause, str]:
        message = exc.sts_message.lower()
        if exc.code == "InvalidIdentityToken" and "provider" in message:
            issuer = self.token.issuer if self.token else "ISSUER"
            audience = self.token.audience[0] if self.token and self.token.audience else "AUD"
            return Cause.PROVIDER_MISSING, (
                f"Register {issuer} as an IAM OIDC provider in the role's account (keyless"
                f" provision, or aws iam create-open-id-connect-provider --url {issuer}"
                f" --client-id-list {audience})."
            )
        if exc.code == "InvalidIdentityToken" and "audience" in message:
            return Cause.AUDIENCE, _audience_fix(
                self.provider, self.token.audience if self.token else (), ()
            )
        if exc.code in ("ExpiredTokenException", "IDPRejectedClaim"):
            return Cause.TOKEN_EXPIRED, exc.remedy or ""
        if exc.code == "IDPCommunicationError" or "verification key" in message:
            return Cause.ISSUER_UNREACHABLE, exc.remedy or ""
        return Cause.EXCHANGE, exc.remedy or ""

    def _identity_step(self, identity: CallerIdentity) -> Step:
        return Step(
            name="identity",
            status=Status.OK,
            summary=f"account {identity.account}, {identity.arn}",
            data={"identity": identity.to_json()},
        )

    def _identity_problem(self, exc: KeylessError) -> Step:
        return Step(
            name="identity",
            status=Status.PROBLEM,
            summary=exc.message,
            cause=Cause.EXCHANGE,
            fix=exc.remedy,
        )


class _Watched(Sts):
    """``sts`` that remembers what ``AssumeRoleWithWebIdentity`` issued: ``obtain_credentials``
    makes both calls doctor reports as two steps (exchange, identity), so a failure after the
    issue is GetCallerIdentity's."""

    def __init__(self, sts: Sts) -> None:
        # No client or retry policy of its own: every call goes to ``sts``, which has them.
        self._sts = sts
        #: The assumed-role ARN and expiry of the credentials STS issued, once it did.
        self.issued: tuple[str, str] | None = None

    def assume_role_with_web_identity(
        self, token: RawToken, **options: Any
    ) -> tuple[TemporaryCredentials, str, str | None]:
        answer = self._sts.assume_role_with_web_identity(token, **options)
        self.issued = (answer[1], answer[0].expiration_iso)
        return answer

    def assume_role(self, keys: SigningKeys, **options: Any) -> tuple[TemporaryCredentials, str]:
        return self._sts.assume_role(keys, **options)

    def caller_identity(self, keys: SigningKeys, *, role: str) -> CallerIdentity:
        return self._sts.caller_identity(keys, role=role)


# --- classification of a `sub` that does not match -----------------------------------------------


def classify_subject(
    provider: str | None, actual: str, patterns: Sequence[str]
) -> tuple[Cause, str]:
    """Why the subject ``actual`` matches none of ``patterns``: a named cause and its fix.

    The cause is the first component of the CI's subject grammar (organization, repository,
    then ref or environment...) in which ``actual`` differs from the closest pattern.
    """
    known = PROVIDERS.get(provider) if provider is not None else None
    grammar = known.subject_grammar if known is not None else None
    differing = _first_difference(grammar, actual, patterns) if grammar else None
    ci = _ci(known)
    if ci is not None:
        # The CI's own reading first (GitHub's subject forms, Bitbucket's environments); it
        # leaves the rest to the segment that differs.
        role = differing.segment.role if differing is not None else None
        finding = ci.classify_subject(actual, patterns, differing=role)
        if finding is not None:
            return finding.cause, finding.fix
    if differing is not None:
        return _segment_cause(differing, actual)
    return Cause.SUBJECT, (
        f"sub {actual!r} matches none of {', '.join(patterns)}: the job runs in another"
        " repository, branch or context than the role expects."
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Difference:
    segment: SubjectSegment
    actual: str
    expected: str
    pattern: str


def _split_subject(grammar: SubjectGrammar, text: str) -> list[str | None] | None:
    """The values of ``grammar``'s segments in ``text`` (a subject or a pattern), in order.

    A segment whose literal does not follow is ``None``: in a pattern, a trailing ``*`` has taken
    it (``repo:acme/*``). ``None`` for a text that does not start with the first literal.
    """
    segments = grammar.segments
    values: list[str | None] = []
    rest = text
    for index, segment in enumerate(segments):
        if not rest.startswith(segment.literal):
            if not values:
                return None
            return values + [None] * (len(segments) - index)
        rest = rest[len(segment.literal) :]
        following = segments[index + 1].literal if index + 1 < len(segments) else ""
        cut = rest.find(following) if following else -1
        if cut < 0:
            values.append(rest)
            return values + [None] * (len(segments) - index - 1)
        values.append(rest[:cut])
        rest = rest[cut:]
    return values


def _first_difference(
    grammar: SubjectGrammar, actual: str, patterns: Sequence[str]
) -> _Difference | None:
    """The first segment in which ``actual`` differs from the pattern that agrees with it
    longest (the role's closest pattern); ``None`` when the grammar cannot tell."""
    have = _split_subject(grammar, actual)
    if have is None:
        return None
    best: tuple[int, _Difference] | None = None
    for pattern in patterns:
        want = _split_subject(grammar, pattern)
        if want is None:
            continue
        for index, (segment, value, expected) in enumerate(
            zip(grammar.segments, have, want, strict=True)
        ):
            if expected is None:
                continue
            # The pattern's last value may span what follows (`ref:refs/heads/main:*`): it is
            # matched against the rest of the subject from this segment on.
            last = all(later is None for later in want[index + 1 :])
            if compile_glob(expected).match(_tail(grammar, have, index) if last else value or ""):
                continue
            if best is None or index > best[0]:
                difference = _Difference(
                    segment=segment, actual=value or "", expected=expected, pattern=pattern
                )
                best = (index, difference)
            break
    return best[1] if best else None


def _tail(grammar: SubjectGrammar, values: Sequence[str | None], index: int) -> str:
    """The subject from segment ``index`` on (its value, then each later literal and value)."""
    later = zip(grammar.segments[index + 1 :], values[index + 1 :], strict=True)
    return (values[index] or "") + "".join(
        segment.literal + value for segment, value in later if value is not None
    )


def _segment_cause(difference: _Difference, actual: str) -> tuple[Cause, str]:
    segment, have, want = difference.segment, difference.actual, difference.expected
    role = segment.role
    if role is SegmentRole.PATH:
        # GitLab's project path: the first component is the top-level group (the tenant).
        group, wanted_group = have.split("/", 1)[0], want.split("/", 1)[0]
        role = SegmentRole.REPOSITORY
        if "*" not in wanted_group and "?" not in wanted_group and group != wanted_group:
            role = SegmentRole.TENANT
    if role is SegmentRole.TENANT:
        return Cause.ORGANIZATION, (
            f"sub {actual!r} is of another {segment.field} ({have}) than the role trusts"
            f" ({want}, in {difference.pattern}): this job belongs to someone else, or the role"
            " was made for another organization. Use a role of this organization."
        )
    if role is SegmentRole.REPOSITORY:
        return Cause.REPOSITORY, (
            f"sub {actual!r} names another {segment.field} ({have}) than the role trusts"
            f" ({want}, in {difference.pattern}): each repository needs its own role or its"
            " own pattern in the trust (keyless trust build for this one)."
        )
    if role is SegmentRole.CONTEXT:
        return Cause.REF, (
            f"sub {actual!r} has {segment.field} {have!r}; the role pins {want!r}"
            f" ({difference.pattern}). Run the deploy from {want}, or pin this ref in the trust."
        )
    return Cause.SUBJECT, (
        f"sub {actual!r} has {segment.field} {have!r} where the role expects {want!r}"
        f" ({difference.pattern})."
    )


def _audience_fix(
    provider: Provider | None, audiences: Sequence[str], expected: Sequence[str]
) -> str:
    wanted = ", ".join(expected) if expected else "the provider's client ID"
    have = ", ".join(audiences) or "none"
    ci = _ci(provider)
    how = (ci.audience_hint() if ci else None) or (
        "Request the audience the IAM provider lists (--audience, or the CI's YAML)."
    )
    return (
        f"The token's aud is {have}; IAM expects {wanted}. Add the token's audience to the IAM"
        f" OIDC provider's client IDs (and the trust policy's :aud), or {how}"
    )


def _ci(provider: Provider | None) -> CiProvider | None:
    """``provider`` when it is a CI (with hints of its own), ``None`` for a token file."""
    return provider if isinstance(provider, CiBase) else None


def _guessed(provider: Provider, subject: str) -> bool:
    ci = _ci(provider)
    return ci is not None and ci.guess_from_subject(subject)


def _row_line(row: ConditionRow) -> str:
    actual = "absent" if row.actual is None else claims_view.display(row.actual)
    return (
        f"{row.result.value:<7} {row.operator} {row.key} in [{', '.join(row.values)}];"
        f" the token has {actual}" + (f" ({row.note})" if row.note else "")
    )
