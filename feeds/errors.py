"""Errors of the venue adapters, under the project's one root (streams.errors)."""

from streams.errors import ArbstreamError


class FeedError(ArbstreamError):
    """A feed cannot run: bad endpoint, missing API key variable, fatal protocol error."""
