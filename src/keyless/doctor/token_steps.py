"""Doctor's steps up to the token: which CI, its token, the claims, their times, the signature
against the issuer's published keys."""

from __future__ import annotations

from keyless import claims_view, tokens
from keyless.causes import Cause
from keyless.ci import (
    CI_PROVIDERS,
    PROVIDERS,
    detect,
    local_issuers,
    obtain_token,
    provider_for_issuer,
)
from keyless.doctor.explain import ci_of
from keyless.doctor.report import Status, Step
from keyless.doctor.state import Diagnosis
from keyless.errors import (
    CredentialError,
    IssuerError,
    KeylessError,
    NetworkError,
    TokenError,
    TokenVerificationError,
)
from keyless.limits import TOKEN_LEEWAY_SECONDS
from keyless.trust.web_identity import issuer_prefix
from keyless.urls import shown_url

__all__ = ["TokenSteps"]


class TokenSteps(Diagnosis):
    """ci, token, claims, time, signature: each reads what the ones before it found."""

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
            " token with --token-file PATH. On a laptop, run it as a job of the local stack:"
            " keyless local run --ci github --repository OWNER/REPO -- keyless doctor",
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
        ci = ci_of(self.provider)
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
        # What IAM decides on: iss, sub, aud and the claims AWS exposes as condition keys for
        # this CI; the times are the time step's, the rest are in --json and `keyless claims`.
        exposed = self.provider.aws_condition_claims if self.provider else frozenset()
        keys = {"iss", "sub", "aud"} | exposed
        details = [
            f"{name} = {claims_view.display(value)}"
            for name, value in shown.items()
            if name in keys
        ]
        others = [n for n in shown if n not in keys and n not in claims_view.TIME_CLAIMS]
        if others:
            details.append(f"{len(others)} more claim(s) in --json and `keyless claims`")
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
            ci = ci_of(self.provider)
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
                " document and JWKS over HTTPS (for the local stack, --ca-bundle or the exported"
                " KEYLESS_LOCAL_CA_BUNDLE).",
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
