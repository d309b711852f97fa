"""keyless: deploy from CI to AWS with no stored secrets.

Map of the package:

- ``keyless.errors``   the error root (``KeylessError``) and its families, each with a remedy
- ``keyless.ci``       one module per CI provider: how a job gets its OIDC token, claim shapes
- ``keyless.tokens``   untrusted peek at a JWT, and ``verify()`` against the issuer's JWKS
- ``keyless.trust``    trust policies, no I/O: evaluate as IAM does, lint, build least privilege
- ``keyless.aws.sts``  the token for a role's credentials: retries that can help, caller identity
- ``keyless.credentials``  handing credentials on: exports, profiles, credential_process, exec
- ``keyless.doctor``   the CI -> token -> IAM -> STS chain checked step by step, causes named
- ``keyless.fsutil``   safe file writing (atomic, 0600, never through a symlink)
- ``keyless.cli``      argument parsing and one small function per command
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
