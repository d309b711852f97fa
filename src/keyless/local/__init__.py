"""The embedded local stack: an OIDC issuer per emulated CI over HTTPS with its own CA (and, beside
it, the AWS side). Used by ``keyless local``, ``keyless demo`` and the tests; never imported by
the production path.
"""
