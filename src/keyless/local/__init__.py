"""The embedded local stack: OIDC issuers over HTTPS with their own CA (``issuer``, one server per
emulated CI in ``jobs``), moto behind an STS gateway that enforces web identity (``moto_server``,
``gateway``), all of it in one context manager (``stack``), announced to other processes
(``served``), and the environment of emulated CI jobs (``run``, ``buildkite_agent``). Used by
``keyless local``, ``keyless demo`` and the tests; never imported by the production path.
"""
