"""The output forms of ``keyless trust build``, apart from the builder so that the ``trust``
parser (shared by ``check`` and ``lint``) can list them without importing it."""

from __future__ import annotations

from keyless.compat import StrEnum

#: Stands for the account in JSON output built without ``--account-id``.
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"


class OutputFormat(StrEnum):
    JSON = "json"
    TERRAFORM = "terraform"
    CLOUDFORMATION = "cloudformation"
