"""The gateway's errors, under the project's one root (streams.errors.ArbstreamError)."""

from __future__ import annotations

from arbstream.streams.errors import ArbstreamError


class GatewayError(ArbstreamError):
    """Something the gateway cannot do."""


class SubscriptionError(GatewayError):
    """A client's subscription message is not one the protocol allows."""
