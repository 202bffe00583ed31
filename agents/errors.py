"""Errors of the Kafka side, under the project's one root (streams.errors)."""

from arbstream.streams.errors import ArbstreamError, SetupError

#: Where a refusal sends the reader.
DEPLOY_DOC = "docs/deploy.md lists each role's ACLs"


class AgentError(ArbstreamError):
    """The worker cannot run: broker unreachable, topics misconfigured, state unusable."""


class KafkaRefusedError(SetupError):
    """Kafka refused this process: its credentials, its TLS, or an ACL (the message says
    which, and never holds a secret)."""
