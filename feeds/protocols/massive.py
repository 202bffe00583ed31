"""Massive (formerly Polygon) forex quotes (docs/venues.md): JSON arrays of events.

The client authenticates with its key, then subscribes ``C.USD/CNY``; quote events
``{"ev":"C","p":"USD/CNY","a":ask,"b":bid,"t":ms}`` become contract fx records with the
pair the config maps the venue's name to (``USD/CNY`` -> ``USDCNY``). Status events are
control traffic; ``auth_failed`` is fatal, since retrying the same key cannot succeed.
"""

from __future__ import annotations

from typing import Any

import orjson

from arbstream.feeds.errors import BadFrameError, FeedAuthError
from arbstream.feeds.protocols.base import Parsed, Protocol, load_json, millis, price

_QUIET_STATUSES = frozenset({"connected", "auth_success", "success"})


class Massive(Protocol):
    def on_connect(self) -> list[str]:
        params = ",".join(f"C.{symbol}" for symbol in self.symbols)
        return [
            orjson.dumps({"action": "auth", "params": self.api_key or ""}).decode(),
            orjson.dumps({"action": "subscribe", "params": params}).decode(),
        ]

    def parse(self, frame: str | bytes) -> Parsed:
        events = load_json(frame)
        if isinstance(events, dict):  # single events are sent bare at times
            events = [events]
        if not isinstance(events, list):
            raise BadFrameError(f"expected an array of events, got {type(events).__name__}")
        parsed = Parsed()
        for event in events:
            try:
                record = self._event(event)
            except BadFrameError as exc:
                parsed.bad.append(str(exc))
            else:
                if record is not None:
                    parsed.records.append(record)
        if parsed.bad and not parsed.records and len(parsed.bad) == len(events):
            raise BadFrameError("; ".join(parsed.bad))
        return parsed

    def _event(self, event: Any) -> dict[str, Any] | None:
        if not isinstance(event, dict):
            raise BadFrameError(f"event: expected an object, got {event!r}")
        kind = event.get("ev")
        if kind == "status":
            status = event.get("status")
            if status == "auth_failed":
                raise FeedAuthError(f"authentication failed: {event.get('message')!r}")
            if status in _QUIET_STATUSES:
                return None
            # e.g. "max_connections" or "error": not data, but an operator must see it
            raise BadFrameError(f"status {status!r}: {event.get('message')!r}")
        if kind != "C":
            raise BadFrameError(f"unexpected event {kind!r}")
        symbol = event.get("p")
        pair = self.symbols.get(symbol) if isinstance(symbol, str) else None
        if pair is None:
            raise BadFrameError(f"unknown pair {symbol!r}")
        return {
            "type": "fx",
            "pair": pair,
            "bid": price(event.get("b"), "b"),
            "ask": price(event.get("a"), "a"),
            "ts": millis(event.get("t"), "t"),
        }
