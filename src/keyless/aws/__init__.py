"""Everything that talks to AWS: client factory, STS exchange, provisioning."""
