"""Every timeout, retry bound and size limit keyless uses, in one place.

Each constant cites where its value comes from when an outside system sets it.
"""

from __future__ import annotations

import os

# --- network -----------------------------------------------------------------------------------
#: Default deadline of one HTTP request, in seconds: connect, TLS handshake, sending and every
#: read of the status line, headers and body together (not per read: a server dripping one byte
#: at a time cannot stretch it).
HTTP_TIMEOUT_SECONDS = 10.0
#: Deadline of one fetch of an issuer's discovery document (OIDC Discovery §4), all of it.
OIDC_DISCOVERY_REQUEST_SECONDS = 10.0
#: Deadline of one fetch of an issuer's JWKS (the discovery document's jwks_uri), all of it.
JWKS_REQUEST_SECONDS = 10.0
#: Deadline of one attempt at GitHub's ID token request endpoint; RETRY_TOTAL_BUDGET_SECONDS
#: bounds all attempts together, the one in flight included.
GITHUB_TOKEN_REQUEST_SECONDS = 10.0
#: Deadline of the TCP connect plus TLS handshake that reads an issuer's certificate chain for
#: IAM's thumbprint.
TLS_CHAIN_REQUEST_SECONDS = 10.0
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
#: Total time budget for all attempts of one request, in seconds: no attempt runs past it (each
#: attempt's deadline is cut to what is left) and no backoff sleeps past it.
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

# --- S3 deploys ----------------------------------------------------------------------------------
#: Attempts in all (first included) of one S3 request of the deploy's data plane (listing pages,
#: the manifest, each upload and part); the native client retries 5xx, 503 SlowDown, connection
#: resets and short bodies, never 4xx such as AccessDenied.
S3_MAX_ATTEMPTS = 5
#: Files of more than one part uploaded at a time where the native client buffers their parts
#: (plain-HTTP endpoints): it holds every part of a file in memory (8 MiB each), whatever its
#: connection count, so this bounds a deploy's memory (one 20 MB file: about 20 MB). Over TLS the
#: parts are streamed from disk and this bound does not apply.
S3_LARGE_UPLOADS_IN_FLIGHT = 1
#: Base (milliseconds) and cap (seconds) of its full-jitter exponential backoff: at most 3.75 s of
#: sleeping across the four retries of one request.
S3_RETRY_BASE_DELAY_MS = 250
S3_RETRY_MAX_DELAY_SECONDS = 5
#: Attempts in all (first included) of one control-plane call (copies, deletes, CloudFront), with
#: botocore's standard mode (which retries throttling codes, 5xx and connection errors).
S3_CONTROL_MAX_ATTEMPTS = 5
#: Seconds for a control-plane connection, and for each of its reads: a DeleteObjects of 1,000
#: keys or a CopyObject of up to 5 GiB answers only when done, so reads wait botocore's 60 s.
S3_CONTROL_CONNECT_TIMEOUT_SECONDS = 10.0
S3_CONTROL_READ_TIMEOUT_SECONDS = 60.0

# --- role sessions that outlive their credentials (deploy --role-arn) ---------------------------
#: A session is renewed (the token exchanged again) once it has less than this left...
CREDENTIAL_REFRESH_MARGIN_SECONDS = 300.0
#: Environment credentials with an end (``AWS_CREDENTIAL_EXPIRATION``, as ``keyless exec`` sets
#: it) stop a deploy when less than this is left: botocore's mandatory-refresh margin for them
#: (``RefreshableCredentials``, 10 minutes), which a deploy read through botocore used before.
ENV_CREDENTIALS_STOP_SECONDS = 600.0
#: ...or less than this share of its lifetime, whichever is shorter (a 900 s session, STS' minimum,
#: is renewed 225 s before it ends, not at once).
CREDENTIAL_REFRESH_MARGIN_SHARE = 0.25
#: When renewing failed, no new request starts on credentials with less than this share of the
#: margin left: the deploy stops with an error before they expire mid-request.
CREDENTIAL_STOP_SHARE = 0.5

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

# --- JSON documents keyless parses (policies, claims files, token parts) -----------------------
#: Largest policy or claims document keyless reads, in characters. IAM's own quotas are far
#: smaller (IAM User Guide, "IAM and AWS STS quotas": a role trust policy 2,048 characters by
#: default and a few thousand at most, a managed policy 6,144), so this only stops a runaway file.
DOCUMENT_MAX_CHARS = 1_000_000
#: Deepest nesting of arrays and objects keyless parses. A policy nests seven levels (document,
#: Statement list, statement, Condition, operator, key, value list); real token claims fewer.
#: Python's json recurses once per level, so without this a deep document is a RecursionError.
JSON_MAX_DEPTH = 64

# --- IAM output trust lint reads (get-role, list-roles, get-account-authorization-details) ------
#: Roles in one file: IAM's most roles in one account (IAM User Guide, "IAM and AWS STS quotas":
#: 1,000 roles by default, raised to at most 5,000).
IAM_OUTPUT_MAX_ROLES = 5000
#: Characters of one such file: 5,000 roles with their metadata and trust policies at IAM's
#: largest trust quota (4,096 characters) fit in well under this.
IAM_OUTPUT_MAX_CHARS = 40_000_000

# --- policies and the wildcard matcher ---------------------------------------------------------
#: Statements in one policy. A trust policy within IAM's quota holds at most a few dozen; a
#: thousand leaves room for generated identity policies keyless lints.
POLICY_MAX_STATEMENTS = 1000
#: Values under one condition key, and patterns in one Action/NotAction list.
POLICY_MAX_VALUES = 1000
#: Characters in one condition value or action pattern: more than IAM's whole policy quotas,
#: since one value can never be longer than the policy that holds it.
POLICY_VALUE_MAX_CHARS = 10_000
#: Characters in one request value the wildcard matcher compares: a claim comes from a token,
#: and STS refuses tokens longer than TOKEN_MAX_CHARS, so no real claim is longer.
#: `StringLike` work is at most (pattern tokens + 1) * (value length + 1) steps
#: (keyless.trust.glob), so these two limits bound one comparison.
MATCH_TEXT_MAX_CHARS = TOKEN_MAX_CHARS

# --- the deploy manifest (PREFIX/.keyless-manifest.json.gz) -------------------------------------
# It is read from the bucket, where anyone with s3:PutObject on the prefix can replace it: every
# bound below holds for hostile bytes, and a manifest beyond one costs a re-check, not the deploy.
#: Objects a manifest may describe; a deploy of more still works, comparing the rest by content.
MANIFEST_MAX_OBJECTS = 1_000_000
#: Budget per object of the expanded JSON: key (60 bytes on average on real sites), ETag, MD5
#: and header digest take about 150; 200 leaves room for long keys.
MANIFEST_ENTRY_BUDGET_BYTES = 200
#: Largest manifest read from S3, compressed (keyless' entries compress to about 50 bytes).
MANIFEST_MAX_COMPRESSED_BYTES = 64 << 20
#: Largest manifest expanded: decompression stops here (a 2 MB gzip can expand to 2 GB).
MANIFEST_MAX_EXPANDED_BYTES = MANIFEST_MAX_OBJECTS * MANIFEST_ENTRY_BUDGET_BYTES
#: Nesting of the manifest's JSON ({"objects": {key: [etag, md5, headers]}} is 3 deep); deeper
#: is refused before parsing (the parser recurses once per level).
MANIFEST_MAX_DEPTH = 3
#: Bytes inflated per step, so no single step holds more than this beyond what was kept.
MANIFEST_INFLATE_STEP_BYTES = 1 << 20
#: Files whose manifest entries are written ahead, before the first of them is uploaded; the
#: batches grow fourfold up to the cap (few manifest writes for big deploys, an early start).
MANIFEST_AHEAD_FIRST_BATCH = 64
MANIFEST_AHEAD_MAX_BATCH = 4096
#: What the manifest cannot know ahead (multipart uploads, copies in place) is written after at
#: least this many such changes, or this many seconds after the first unwritten one: a deploy
#: killed at any point redoes at most that much on the next run.
MANIFEST_FLUSH_CHANGES = 256
MANIFEST_FLUSH_SECONDS = 5.0

# --- keyless pipe ------------------------------------------------------------------------------
#: Seconds PRE_EXECUTION_SCRIPT may run: a Bitbucket step's default max-time is 120 minutes
#: (Bitbucket Pipelines docs, "Step options": max-time), and the script cannot outlive its step.
PIPE_PRE_EXECUTION_TIMEOUT_SECONDS = 120 * 60

# --- the local stack's STS gateway -------------------------------------------------------------
#: Pending connections the gateway's listening socket queues (the kernel caps it at somaxconn).
#: With Python's default of 5, 200 simultaneous clients got connection resets.
GATEWAY_LISTEN_BACKLOG = 1024
#: Connections the gateway serves at once, one thread each; one more is answered with AWS's
#: throttling error (STS: 400 Throttling, S3: 503 SlowDown), which SDKs retry with backoff.
GATEWAY_MAX_WORKERS = 64
#: Connections answered with the throttling error at once; beyond that, new connections wait in
#: the listen backlog until a thread is free (never reset).
GATEWAY_MAX_REFUSERS = 16
#: Seconds a connection being refused may take to send its request head, and then to close.
GATEWAY_REFUSAL_IO_SECONDS = 2.0
#: Seconds a new connection waits for a thread to free after idle kept-alive connections were
#: closed to make room, before it is refused.
GATEWAY_WORKER_WAIT_SECONDS = 0.1
#: The gateway refetches an issuer's keys on an unknown `kid` at most this often (keyless' own
#: verifier waits JWKS_REFRESH_MIN_INTERVAL_SECONDS): short, so that a rotation shows within
#: seconds, yet a flood of unknown kids costs one fetch per interval, not one per token.
GATEWAY_JWKS_REFRESH_MIN_INTERVAL_SECONDS = 2.0
#: Total seconds for the gateway's fetch of an issuer's discovery document and key set together
#: (a deadline, not a per-read timeout: a server sending one byte a second cannot stretch it).
#: Under botocore's 60 s default read timeout, so the client gets IDPCommunicationError.
GATEWAY_KEY_FETCH_DEADLINE_SECONDS = 10.0
#: OIDC providers and roles (each) whose IAM answers the gateway keeps between changes to IAM;
#: beyond that a lookup is asked of moto each time (an account of the local stack has a few).
GATEWAY_DIRECTORY_CACHE_MAX_ENTRIES = 1024

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

#: Default ``keyless deploy --concurrency``: requests in flight. The local measurements flatten out
#: at 16.
DEFAULT_CONCURRENCY = 16

# --- keyless audit -----------------------------------------------------------------------------
#: Concurrent IAM reads of a live audit. IAM's control plane throttles a busy account at a few
#: requests per second per call (IAM User Guide, "IAM and AWS STS quotas"); eight in flight keeps
#: a large account quick without provoking sustained throttling.
AUDIT_MAX_WORKERS = 8
#: Attempts of one IAM read that AWS answers with a throttling error, the first included.
AUDIT_THROTTLE_ATTEMPTS = 6
#: First wait after a throttled read, doubled on each retry up to AUDIT_THROTTLE_MAX_SECONDS.
AUDIT_THROTTLE_BASE_SECONDS = 0.5
AUDIT_THROTTLE_MAX_SECONDS = 20.0
#: Largest offline input keyless audit reads, in characters: a get-account-authorization-details
#: dump of 10,000 roles with an inline policy each is about 6.5 MB (bench/audit.py), and IAM caps
#: an account at 5,000 roles, so this holds the largest account with room for its managed
#: policies, and keeps the parsed dump (about ten times the text) within a gigabyte. (Its JSON
#: nests at most JSON_MAX_DEPTH levels: a policy's seven, four levels down in a dump.)
AUDIT_INPUT_MAX_CHARS = 100_000_000
#: Largest Terraform .tf file read. python-hcl2 is a pure-Python parser that reads about 65 KB
#: of role blocks a second on a CI machine, so this is a few seconds; a module's .tf files are a
#: few KB each.
AUDIT_HCL_MAX_CHARS = 300_000
#: Roles one audit reports on; IAM's default quota is 1,000 roles per account (adjustable to
#: 5,000), so this is an organization of many large accounts.
AUDIT_MAX_ROLES = 200_000
#: Issuers one local issuer server adds on their first request (a CI's per-workspace or per-org
#: issuers, served for any well-formed path): each costs an RSA key and a line of saved state, so
#: a client asking for made-up workspaces in a loop cannot grow the state without bound.
MAX_ON_DEMAND_ISSUERS = 256

# --- local CI runners: files copied into and out of a job ----------------------------------------
#: Most files and bytes copied at once into or out of a local job: a working tree (actions/checkout
#: of `local workflow`, a step of `local pipeline` started from the working tree), a step's
#: artifacts, one cache. keyless' own bounds, so that a stray build folder cannot fill the disk.
LOCAL_TREE_MAX_FILES = 20_000
LOCAL_TREE_MAX_BYTES = 500 * 1024 * 1024
#: Seconds git may take to clone the repository for one step, or to list what a commit changed.
LOCAL_GIT_SECONDS = 300.0

# --- keyless local pipeline (Bitbucket steps run here) -------------------------------------------
#: Steps of one `parallel:` group running at once: the machine's cores (each step is a build).
PIPELINE_MAX_CONCURRENT_STEPS = max(1, os.cpu_count() or 1)
#: Days a cache is kept: Bitbucket's documented expiry of a cache, one week.
PIPELINE_CACHE_MAX_AGE_DAYS = 7
#: Characters of a step's output kept in its result (the last ones; the log gets all of it).
PIPELINE_STEP_OUTPUT_KEPT_CHARS = 1024 * 1024

# --- keyless local workflow (GitHub Actions jobs run here) ---------------------------------------
#: Longest `${{ }}` expression evaluated: the GitHub Actions runner's own bound
#: (actions/runner, ExpressionConstants.MaxLength).
WORKFLOW_EXPRESSION_MAX_CHARS = 21_000
#: Deepest nesting of an expression (parentheses, operators, calls): the runner's MaxDepth.
WORKFLOW_EXPRESSION_MAX_DEPTH = 50
#: Longest text an expression may build (format() results, interpolated strings); keyless' own
#: bound, so that a value cannot grow without end.
WORKFLOW_VALUE_MAX_CHARS = 1_000_000
#: Largest GITHUB_ENV / GITHUB_OUTPUT / GITHUB_PATH file one step may leave, in bytes; keyless' own
#: bound. GITHUB_STEP_SUMMARY: GitHub's documented limit, 1 MiB per step.
WORKFLOW_FILE_COMMAND_MAX_BYTES = 1024 * 1024
WORKFLOW_STEP_SUMMARY_MAX_BYTES = 1024 * 1024
#: Default `timeout-minutes` of a job and of each step: GitHub's documented 360 minutes.
WORKFLOW_DEFAULT_TIMEOUT_MINUTES = 360
#: Seconds one interpreter may take to say its version (setup-python looking for a match).
WORKFLOW_PYTHON_PROBE_SECONDS = 10.0
