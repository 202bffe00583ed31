"""Hyperliquid ``bbo`` (docs/venues.md): best bid and offer per coin; either side may be null.

Hyperliquid has no sequence numbers. It closes a connection that has been silent for
60 s, so the client sends ``{"method":"ping"}`` and the server answers ``pong``.
A book with a missing side is not a quote (docs/records.md: a quote has both), so it yields
nothing and is not a bad frame.
"""

from __future__ import annotations

from typing import Any

import orjson

from arbstream.feeds.errors import BadFrameError
from arbstream.feeds.protocols.base import Parsed, Protocol, load_json, millis, price

_QUIET_CHANNELS = frozenset({"pong", "subscriptionResponse"})


class Hyperliquid(Protocol):
    keepalive = '{"method":"ping"}'

    def on_connect(self) -> list[str]:
        return [
            orjson.dumps(
                {"method": "subscribe", "subscription": {"type": "bbo", "coin": coin}}
            ).decode()
            for coin in self.symbols
        ]

    def parse(self, frame: str | bytes) -> Parsed:
        msg = load_json(frame)
        if not isinstance(msg, dict):
            raise BadFrameError(f"expected an object, got {type(msg).__name__}")
        channel = msg.get("channel")
        if channel in _QUIET_CHANNELS:
            return Parsed()
        if channel == "error":
            raise BadFrameError(f"venue error: {msg.get('data')!r}")
        if channel != "bbo":
            raise BadFrameError(f"unexpected channel {channel!r}")
        data = msg.get("data")
        if not isinstance(data, dict):
            raise BadFrameError("bbo without data")
        coin = data.get("coin")
        instrument = self.symbols.get(coin) if isinstance(coin, str) else None
        if instrument is None:
            raise BadFrameError(f"unknown coin {coin!r}")
        book = data.get("bbo")
        if not isinstance(book, list) or len(book) != 2:
            raise BadFrameError(f"bbo: expected [bid, ask], got {book!r}")
        bid, ask = book
        if bid is None or ask is None:
            return Parsed()
        ts = millis(data.get("time"), "time")
        return Parsed(
            [
                {
                    "type": "quote",
                    "venue": self.venue,
                    "instrument": instrument,
                    "bid": price(_level(bid, "bid").get("px"), "bid px"),
                    "ask": price(_level(ask, "ask").get("px"), "ask px"),
                    "ts": ts,
                    "bid_size": price(_level(bid, "bid").get("sz"), "bid sz"),
                    "ask_size": price(_level(ask, "ask").get("sz"), "ask sz"),
                }
            ]
        )


def _level(level: Any, side: str) -> dict[str, Any]:
    if not isinstance(level, dict):
        raise BadFrameError(f"{side}: expected a level object, got {level!r}")
    return level
