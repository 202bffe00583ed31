"""Errors of the Kafka side, under the project's one root (streams.errors)."""

from streams.errors import ArbstreamError


class AgentError(ArbstreamError):
    """The worker cannot run: broker unreachable, topics misconfigured, state unusable."""
