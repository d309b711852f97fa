"""Doctor's steps in AWS: the IAM OIDC provider, the role's trust policy evaluated condition by
condition, then the exchange itself (assume's, through ``keyless.exchange``) and who the
credentials are."""

from __future__ import annotations

import urllib.parse
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from keyless import claims_view, tokens
from keyless.arn import role_account, role_name, role_partition
from keyless.aws.clients import region_from
from keyless.aws.errors import error_code
from keyless.aws.sts import CallerIdentity, SigningKeys, Sts, TemporaryCredentials
from keyless.aws.sts_errors import StsAccessDeniedError, StsApiError
from keyless.causes import Cause
from keyless.ci import CI_PROVIDERS, PROVIDERS
from keyless.ci.base import RawToken
from keyless.doctor.explain import audience_fix, ci_of, classify_subject, guessed_from_subject
from keyless.doctor.report import Status, Step
from keyless.doctor.state import Diagnosis
from keyless.errors import KeylessError, TokenError, TokenVerificationError
from keyless.exchange import CredentialRequest, TokenSource, obtain_credentials
from keyless.jsonlimits import loads_bounded
from keyless.trust.evaluate import evaluate
from keyless.trust.model import Policy, parse_policy
from keyless.trust.verdict import ConditionRow, Decision, Evaluation, Outcome, Request
from keyless.trust.web_identity import issuer_prefix, provider_arn_for

__all__ = ["AwsSteps"]


class AwsSteps(Diagnosis):
    """provider, trust, exchange, identity: from the token's claims to the credentials."""

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
                    fix=audience_fix(self.provider, self.token.audience, client_ids),
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
        rows = tuple(row_line(row) for row in evaluation.conditions)
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
                return Cause.AUDIENCE, audience_fix(
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
        guessed = [p for p in CI_PROVIDERS if subject and guessed_from_subject(p, subject)]
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
        ci = ci_of(PROVIDERS.get(self._provider_name() or ""))
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
            return Cause.AUDIENCE, audience_fix(
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


def row_line(row: ConditionRow) -> str:
    actual = "absent" if row.actual is None else claims_view.display(row.actual)
    return (
        f"{row.result.value:<7} {row.operator} {row.key} in [{', '.join(row.values)}];"
        f" the token has {actual}" + (f" ({row.note})" if row.note else "")
    )
