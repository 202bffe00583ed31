"""What a feed says and hears on one connection, without the connection (sans-I/O).

A protocol object knows the frames to send after the handshake (authenticate,
subscribe), its keepalive frame if the venue wants an application-level ping, and how
to turn one received frame into input records (docs/records.md). It never touches a
socket or a clock, so every parser is unit-tested on recorded frames.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import orjson

from arbstream.feeds.errors import BadFrameError
from arbstream.feeds.settings import FeedSettings

Record = dict[str, Any]


@dataclass(slots=True)
class Parsed:
    """The records of one frame, and why any part of it could not be used."""

    records: list[Record] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


class Protocol(ABC):
    """Base of the protocol adapters; subclasses define ``parse`` and may override hooks."""

    #: An application-level ping sent every ``ping_interval_s`` (None: WebSocket pings).
    keepalive: str | None = None

    def __init__(self, settings: FeedSettings, api_key: str | None = None) -> None:
        self.settings = settings
        self.venue = settings.venue or ""
        self.symbols = settings.symbols
        self.api_key = api_key

    def on_connect(self) -> list[str]:
        """Frames to send, in order, right after the handshake."""
        return []

    @abstractmethod
    def parse(self, frame: str | bytes) -> Parsed:
        """Records from one frame. Raises BadFrameError when nothing of it is usable."""


def load_json(frame: str | bytes) -> Any:
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise BadFrameError(f"not JSON: {_excerpt(frame)}") from None


def price(value: Any, what: str) -> float:
    """A price or size from a JSON number or a decimal string (Binance, Hyperliquid)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadFrameError(f"{what}: expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise BadFrameError(f"{what}: not a number: {value!r}") from None
    if not math.isfinite(number):
        raise BadFrameError(f"{what}: not finite: {value!r}")
    return number


def millis(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFrameError(f"{what}: expected epoch milliseconds, got {value!r}")
    return value


def _excerpt(frame: str | bytes, limit: int = 120) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return repr(text if len(text) <= limit else text[:limit] + "...")
