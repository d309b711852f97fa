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
#: ...and shorter than this (same model), so the local stack's STS refuses it too.
STS_TOKEN_MIN_CHARS = 4
#: Characters read beyond TOKEN_MAX_CHARS from a token file or stdin: whitespace around a token
#: (a newline from `echo`, CRLF from an editor) is allowed, anything longer is refused unread.
CLAIMS_READ_SLACK_CHARS = 1024
#: Default clock skew tolerated on exp/nbf/iat when verifying a token, in seconds.
TOKEN_LEEWAY_SECONDS = 60
#: A refresh of an issuer's JWKS on an unknown `kid` happens at most this often, in seconds.
JWKS_REFRESH_MIN_INTERVAL_SECONDS = 30.0
#: A cached JWKS is used for this long before it is fetched again, in seconds.
JWKS_CACHE_TTL_SECONDS = 300.0
#: A JWKS with more keys than this is refused as hostile (real issuers publish two or three).
JWKS_MAX_KEYS = 100
#: Smallest RSA key a JWKS may verify with: RFC 7518 §3.3 requires 2048 bits for RS*.
JWK_MIN_RSA_BITS = 2048
#: Largest time claim accepted: 9999-12-31T23:59:59Z, so that every accepted time can be shown.
TOKEN_MAX_TIMESTAMP = 253_402_300_799

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

# --- IAM (provision) -----------------------------------------------------------------------------
#: IAM's own default MaxSessionDuration, and what a role keyless creates gets unless told
#: otherwise.
IAM_ROLE_DEFAULT_SESSION_SECONDS = 3600
#: IAM limits (IAM API Reference: CreateRole MaxSessionDuration 3600..43200;
#: CreateOpenIDConnectProvider: at most 5 thumbprints and 100 client IDs; TagRole: 50 tags).
IAM_ROLE_MIN_SESSION_SECONDS = 3600
IAM_ROLE_MAX_SESSION_SECONDS = 43200
IAM_OIDC_MAX_THUMBPRINTS = 5
IAM_OIDC_MAX_CLIENT_IDS = 100
IAM_MAX_TAGS = 50
#: IAM quota: all inline policies of one role together, whitespace not counted (IAM User Guide,
#: "IAM and AWS STS quotas": role policy size 10,240 characters).
IAM_INLINE_POLICY_MAX_CHARS = 10_240
#: Attempts in all for a role write refused because a provider created a moment ago is not yet
#: visible to IAM's policy check ("Invalid principal in policy"; IAM is eventually consistent),
#: and the base and cap of the exponential backoff between them, in seconds: about half a
#: minute in all, longer than IAM takes to show a new provider in practice.
IAM_PROPAGATION_MAX_ATTEMPTS = 6
IAM_PROPAGATION_RETRY_BASE_SECONDS = 1.0
IAM_PROPAGATION_MAX_DELAY_SECONDS = 8.0
#: Witness requests the widening check tries per statement and filler: values multiply across
#: condition keys, and a trust policy pins a handful of keys, so 64 covers real ones.
WIDENING_MAX_COMBINATIONS = 64

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
#: Seconds for a TCP (and TLS) connection to S3 by the native client, in its unit
#: (milliseconds): the same 10 s as every other AWS connection.
S3_CONNECT_TIMEOUT_MS = 10_000
#: Seconds one control request of the native client (a listing page, the manifest) may take,
#: retries included: five attempts with backoff on a slow link.
S3_REQUEST_TIMEOUT_SECONDS = 120.0
#: Seconds to wait for the in-flight requests after an interrupt before giving up on them.
S3_DRAIN_TIMEOUT_SECONDS = 30.0
#: Bytes the native client may hold in part buffers (its default is 2 GiB or more; 256 MiB is
#: the least it accepts). What keyless holds is bounded lower: large files are streamed from disk
#: over TLS, and at most ``S3_LARGE_UPLOADS_IN_FLIGHT`` of them are buffered at a time otherwise.
S3_CRT_MEMORY_LIMIT_BYTES = 256 << 20
#: Keys per listing page (S3's maximum, ListObjectsV2 MaxKeys).
S3_LIST_PAGE_KEYS = 1000
#: DeleteObjects takes at most 1,000 keys per request (S3 API reference).
S3_DELETE_BATCH_KEYS = 1000
#: CopyObject copies at most 5 GiB; bigger objects get their new headers by a re-upload.
S3_COPY_MAX_BYTES = 5 << 30
#: S3 rejects keys longer than this many UTF-8 bytes.
S3_MAX_KEY_BYTES = 1024
#: Upper bound of ``--concurrency``: far past where the local measurements flatten out (16),
#: and within the file descriptors a CI container gives a process.
DEPLOY_MAX_CONCURRENCY = 256
#: Listed objects whose local MD5 is started before the planner reaches them: enough to keep
#: the hashing threads busy, few enough that a large tree is not held in memory.
DEPLOY_HASH_AHEAD = 256
#: Files hashed in one task of the hashing threads (one task per file costs more than the MD5).
DEPLOY_HASH_BATCH = 64
#: Bytes read at a time when hashing; large files are never read whole.
DEPLOY_READ_CHUNK_BYTES = 1 << 20
#: At most this many part sizes are tried for one multipart ETag (each costs an MD5 pass in CPU):
#: the common tools' defaults (keyless.deploy.plan.COMMON_PART_SIZES).
DEPLOY_MAX_PART_SIZE_GUESSES = 6
#: Distinct header outcomes (type, encoding, matching --header rules) the planner keeps to share
#: one headers object among the files that have it; past it each file gets its own (still
#: correct, only larger). A site has a few dozen.
DEPLOY_SHARED_HEADERS_MAX = 4096
#: Default of ``--max-delete``: refuse to delete more than this percentage of the remote objects
#: (a wrong LOCAL_DIR or prefix deletes most of a site; a real release rarely half of it).
DEFAULT_MAX_DELETE_PERCENT = 50.0
#: Up to this many changed paths are invalidated one by one. CloudFront bills each path past the
#: first 1,000 a month, and a wildcard counts as one path.
CLOUDFRONT_MAX_EXPLICIT_PATHS = 100
#: CloudFront allows at most 15 wildcard paths in progress per distribution
#: (CloudFront quotas: "Concurrent invalidation requests, wildcard paths").
CLOUDFRONT_MAX_WILDCARD_PATHS = 15
#: And at most 3,000 file paths in progress per distribution (same quotas page).
CLOUDFRONT_MAX_FILE_PATHS = 3000

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
#: The DurationSeconds STS applies when none is asked (STS API reference: one hour).
STS_DURATION_DEFAULT_SECONDS = 3600
#: RoleSessionName length (botocore STS model: 2..64 characters).
STS_SESSION_NAME_MIN_CHARS = 2
STS_SESSION_NAME_MAX_CHARS = 64
#: RoleArn length (botocore STS model: 20..2048 characters).
STS_ROLE_ARN_MIN_CHARS = 20
STS_ROLE_ARN_MAX_CHARS = 2048
#: Session tag values (STS API reference, Tag: at most 256 characters).
STS_TAG_VALUE_MAX_CHARS = 256
#: Characters of an STS error message keyless shows: its messages are a sentence; longer text
#: is not STS's and is cut (it could carry what a proxy echoed).
STS_MESSAGE_MAX_CHARS = 300

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
#: S3 ETags are 32 hex digits, with "-N" for multipart: 128 is room to spare.
MANIFEST_MAX_ETAG_CHARS = 128

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
#: Clock skew the gateway allows on ``exp``/``nbf``/``iat``. AWS does not publish the figure it
#: applies to web identity tokens; 5 minutes is the skew it documents for signed requests
#: (SigV4), the closest published number.
STS_CLOCK_SKEW_SECONDS = 300
#: Bodies of requests to "/" (the query-protocol APIs: STS, IAM) are read whole and inspected;
#: a real STS or IAM request is a few kilobytes.
GATEWAY_QUERY_API_MAX_BODY_BYTES = 1_048_576
#: A response whose length moto does not announce is read whole before it is relayed: a local
#: site's largest objects fit.
GATEWAY_UNSIZED_RESPONSE_MAX_BYTES = 64 * 1_048_576
#: Seconds an idle client connection is kept open (botocore's own read timeout: 60 s).
GATEWAY_IDLE_TIMEOUT_SECONDS = 60.0
#: Seconds ``stop()`` waits for the serving thread.
GATEWAY_STOP_TIMEOUT_SECONDS = 10.0
#: Size of one relayed piece of a body.
GATEWAY_RELAY_CHUNK_BYTES = 65_536
#: Longest chunk-size or trailer line accepted in a chunked request body.
GATEWAY_CHUNK_LINE_MAX_BYTES = 4096
#: Longest request head read from a connection that is being refused.
GATEWAY_REFUSAL_HEAD_MAX_BYTES = 16_384
#: Most bytes of an unread request body drained before a refused connection is closed (closing
#: with unread data makes the kernel send a reset, which could destroy the answer in flight).
GATEWAY_REFUSAL_DRAIN_MAX_BYTES = 1_048_576
#: Bytes the gateway asks of the socket per read when fetching an issuer's keys.
GATEWAY_KEY_READ_BYTES = 65_536
#: Longest response head accepted from an issuer (status line and headers).
GATEWAY_KEY_HEAD_MAX_BYTES = 65_536
#: Seconds the moto child may take to import moto and bind its port (a cold import on a busy
#: 2-core machine takes a few seconds).
MOTO_STARTUP_TIMEOUT_SECONDS = 60.0
#: Seconds the moto child gets to exit after its stdin closes, then again after SIGTERM.
MOTO_STOP_TIMEOUT_SECONDS = 10.0
#: Connections one boto3 client keeps to moto (the gateway serves 16+ concurrent clients).
MOTO_CLIENT_POOL_SIZE = 32
#: Distinct Host headers whose moto backend the child remembers (it serves loopback: a few).
MOTO_DISPATCH_CACHE_MAX_HOSTS = 64
#: Seconds ``keyless provision`` may take in the demo (a cold start on a busy machine included).
DEMO_PROVISION_TIMEOUT_SECONDS = 120.0

# --- the local stack's CI tokens ----------------------------------------------------------------
#: GitHub's request token works for about six hours after the job starts
#: (docs/ci-tokens.md#github-delivery).
GITHUB_REQUEST_TOKEN_LIFETIME_SECONDS = 6 * 3600
#: Longest lifetime a job may ask for (``buildkite-agent ... --lifetime``): STS's session maximum.
LOCAL_TOKEN_MAX_LIFETIME_SECONDS = 43_200
#: A Bitbucket step may name at most 10 audiences of at most 150 characters each
#: (docs/ci-tokens.md#bitbucket-delivery).
BITBUCKET_MAX_AUDIENCES = 10
BITBUCKET_AUDIENCE_MAX_CHARS = 150

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
#: Roles copied from one snippet share their trust word for word: each text is analysed once,
#: and this many analyses are kept (the distinct trusts of a large organization).
AUDIT_ANALYSED_CACHE_MAX_ENTRIES = 4096
#: Issuers one local issuer server adds on their first request (a CI's per-workspace or per-org
#: issuers, served for any well-formed path): each costs an RSA key and a line of saved state, so
#: a client asking for made-up workspaces in a loop cannot grow the state without bound.
MAX_ON_DEMAND_ISSUERS = 256
#: Paths a local issuer remembers for request_log(): the most recent ones, so that a client
#: polling for hours cannot grow memory; tests read a handful.
LOCAL_ISSUER_REQUEST_LOG_SIZE = 10_000
#: Seconds stop() waits for a local issuer's server thread to finish: as long as one request
#: may take (HTTP_TIMEOUT_SECONDS).
LOCAL_ISSUER_STOP_SECONDS = 10.0

# --- local CI runners: files copied into and out of a job ----------------------------------------
#: Most files and bytes copied at once into or out of a local job: a working tree (actions/checkout
#: of `local workflow`, a step of `local pipeline` started from the working tree), a step's
#: artifacts, one cache. keyless' own bounds, so that a stray build folder cannot fill the disk.
LOCAL_TREE_MAX_FILES = 20_000
LOCAL_TREE_MAX_BYTES = 500 * 1024 * 1024
#: Seconds git may take to clone the repository for one step, or to list what a commit changed.
LOCAL_GIT_SECONDS = 300.0
#: Seconds a CI step's processes get to end after SIGTERM (max-time, timeout-minutes, Ctrl-C,
#: fail-fast) before SIGKILL: long enough for a tool to flush and clean up, short enough not to
#: hold up the run. Both local runners end their steps through keyless.process.
LOCAL_STEP_STOP_GRACE_SECONDS = 5.0

# --- keyless local pipeline (Bitbucket steps run here) -------------------------------------------
#: Steps of one `parallel:` group running at once: the machine's cores (each step is a build).
PIPELINE_MAX_CONCURRENT_STEPS = max(1, os.cpu_count() or 1)
#: Days a cache is kept: Bitbucket's documented expiry of a cache, one week.
PIPELINE_CACHE_MAX_AGE_DAYS = 7
#: Characters of a step's output kept in its result (the last ones; the log gets all of it).
PIPELINE_STEP_OUTPUT_KEPT_CHARS = 1024 * 1024
#: Seconds git may take to name the checkout's branch and commit (two local reads).
PIPELINE_GIT_CHECKOUT_SECONDS = 10.0
#: Branch and path globs kept compiled: more than a pipeline file's sections and artifact globs,
#: so that each compiles once, while a stream of distinct patterns cannot grow memory.
PIPELINE_GLOB_CACHE_SIZE = 256
#: Schema errors of a pipeline file shown at most (the first ones by line); the rest are counted.
PIPELINE_SCHEMA_ERRORS_SHOWN = 5
#: Pull request ids made up locally are 1..this (small, like a repository's real ones).
PIPELINE_MAX_PR_ID = 9999

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
