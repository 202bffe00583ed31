"""Errors of the venue adapters, under the project's one root (streams.errors).

    FeedError              a feed cannot run
    ├── BadFrameError      one frame could not be used (counted and logged, never fatal)
    └── FeedAuthError      the venue refused our credentials (fatal: retrying cannot help)

Connection failures are not exceptions here: the connection loop retries them.
"""

from arbstream.streams.errors import ArbstreamError


class FeedError(ArbstreamError):
    """A feed cannot run: bad endpoint, missing API key variable, fatal protocol error."""


class BadFrameError(FeedError):
    """A frame that is not what the protocol promises; the message says why."""


class FeedAuthError(FeedError):
    """The venue rejected authentication."""
