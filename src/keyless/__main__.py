"""``python -m keyless``: the same as the ``keyless`` console script."""

from keyless.cli.main import entry

entry()
