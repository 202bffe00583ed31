"""One sans-I/O adapter per WebSocket protocol, chosen by a feed's ``protocol`` setting."""

from __future__ import annotations

from feeds.protocols.base import Parsed, Protocol, Record
from feeds.protocols.binance import Binance
from feeds.protocols.hyperliquid import Hyperliquid
from feeds.protocols.massive import Massive
from feeds.protocols.native import Native
from feeds.settings import FeedSettings

PROTOCOLS: dict[str, type[Protocol]] = {
    "native": Native,
    "binance": Binance,
    "hyperliquid": Hyperliquid,
    "massive": Massive,
}

__all__ = ["PROTOCOLS", "Parsed", "Protocol", "Record", "make_protocol"]


def make_protocol(settings: FeedSettings, api_key: str | None = None) -> Protocol:
    return PROTOCOLS[settings.protocol](settings, api_key)
