"""Every timeout, retry bound and size limit keyless uses, in one place.

Each constant cites where its value comes from when an outside system sets it.
"""

from __future__ import annotations

# --- network -----------------------------------------------------------------------------------
#: Seconds to wait for a TCP connect plus the response of one HTTP request.
HTTP_TIMEOUT_SECONDS = 10.0
#: Largest HTTP response body keyless reads (discovery documents, JWKS, token responses).
HTTP_MAX_BODY_BYTES = 1_000_000

# --- tokens ------------------------------------------------------------------------------------
#: STS rejects a WebIdentityToken longer than this (botocore STS model: 4..20000 characters).
TOKEN_MAX_CHARS = 20_000
#: Default clock skew tolerated on exp/nbf/iat when verifying a token, in seconds.
TOKEN_LEEWAY_SECONDS = 60
#: A refresh of an issuer's JWKS on an unknown `kid` happens at most this often, in seconds.
JWKS_REFRESH_MIN_INTERVAL_SECONDS = 30.0
#: A cached JWKS is used for this long before it is fetched again, in seconds.
JWKS_CACHE_TTL_SECONDS = 300.0
#: A JWKS with more keys than this is refused as hostile (real issuers publish two or three).
JWKS_MAX_KEYS = 100

# --- retries of the CI's token endpoint (GitHub) -----------------------------------------------
#: Attempts in all (first try included) for transient failures of a token endpoint.
TOKEN_REQUEST_MAX_ATTEMPTS = 5
#: Base and cap of the full-jitter exponential backoff between attempts, in seconds.
RETRY_BASE_DELAY_SECONDS = 0.2
RETRY_MAX_DELAY_SECONDS = 5.0
#: Total time budget for all attempts of one request, in seconds.
RETRY_TOTAL_BUDGET_SECONDS = 30.0

# --- CI helper programs (buildkite-agent, circleci) ----------------------------------------------
#: Seconds a CI's token helper program may run before keyless gives up on it.
CI_HELPER_TIMEOUT_SECONDS = 30.0

# --- AWS API calls (boto3) ---------------------------------------------------------------------
#: Seconds for a TCP connect to an AWS endpoint, and for one read on it.
AWS_CONNECT_TIMEOUT_SECONDS = 10.0
AWS_READ_TIMEOUT_SECONDS = 30.0
#: Attempts in all for botocore's own retries of one AWS call (standard mode).
AWS_MAX_ATTEMPTS = 3
#: Region used when none is configured anywhere (STS and IAM answer in every region).
AWS_DEFAULT_REGION = "us-east-1"

# --- the STS exchange (keyless' own retries; botocore's are switched off for it) ---------------
#: Attempts in all (first try included) of one STS call that fails transiently (throttling, 5xx,
#: IDPCommunicationError, connection errors); terminal errors are never retried.
STS_MAX_ATTEMPTS = 6
#: Base and cap of the full-jitter exponential backoff between STS attempts, in seconds.
STS_RETRY_BASE_DELAY_SECONDS = 0.25
STS_RETRY_MAX_DELAY_SECONDS = 8.0
#: No STS attempt starts, and no backoff sleeps, past this many seconds after the first attempt.
STS_RETRY_TOTAL_SECONDS = 45.0
#: DurationSeconds bounds (botocore STS model: 900..43200), and a chained session's cap (IAM User
#: Guide, "Role chaining": a session from a role's credentials lasts at most one hour).
STS_DURATION_MIN_SECONDS = 900
STS_DURATION_MAX_SECONDS = 43_200
STS_CHAINED_DURATION_MAX_SECONDS = 3600
#: Inline session policy length limit (botocore STS model: Policy 1..2048 characters).
STS_SESSION_POLICY_MAX_CHARS = 2048
#: Managed session policies per request (botocore STS model: PolicyArns at most 10).
STS_SESSION_POLICY_ARNS_MAX = 10

# --- YAML keyless reads (bitbucket-pipelines.yml, --variables files) ----------------------------
# keyless' own bounds, checked while the document is composed and before anything is built from
# it: anchors and aliases let a few hundred bytes stand for billions of nodes ("billion laughs"),
# and PyYAML composes nested collections recursively. Real pipeline files are a few kilobytes,
# nest about a dozen levels and use a handful of anchors; each bound is far above that.
#: Largest YAML file read, in bytes (the pure-Python parser reads this much in about a second).
YAML_MAX_BYTES = 1_000_000
#: Most nodes a document may stand for once every alias is expanded (what code walking it sees).
YAML_MAX_NODES = 200_000
#: Most alias uses (``*name``) in one document.
YAML_MAX_ALIASES = 10_000
#: Deepest nesting of collections, aliases expanded (Python's recursion limit is 1000 frames).
YAML_MAX_DEPTH = 100
