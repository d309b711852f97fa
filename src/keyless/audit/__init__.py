"""``keyless audit``: every OIDC-trusting role of an account, an organization or IaC files, who
can assume it, what it may do, and what is wrong with its trust."""
