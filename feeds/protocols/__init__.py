"""One sans-I/O adapter per WebSocket protocol, chosen by a feed's ``protocol`` setting."""

from __future__ import annotations

from arbstream.feeds.protocols.base import Parsed, Protocol, Record
from arbstream.feeds.protocols.binance import Binance
from arbstream.feeds.protocols.hyperliquid import Hyperliquid
from arbstream.feeds.protocols.massive import Massive
from arbstream.feeds.protocols.native import Native
from arbstream.feeds.settings import FeedSettings

PROTOCOLS: dict[str, type[Protocol]] = {
    "native": Native,
    "binance": Binance,
    "hyperliquid": Hyperliquid,
    "massive": Massive,
}

__all__ = ["PROTOCOLS", "Parsed", "Protocol", "Record", "make_protocol"]


def make_protocol(settings: FeedSettings, api_key: str | None = None) -> Protocol:
    return PROTOCOLS[settings.protocol](settings, api_key)
