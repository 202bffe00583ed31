"""Binance USD-M futures ``bookTicker`` (docs/venues.md): best bid and ask as decimal
strings; and ``!contractInfo``: a contract's status.

Frames arrive either bare or wrapped as ``{"stream": ..., "data": {...}}`` (combined
streams). ``u`` is the book's update id and becomes the record's ``seq``; ``T``, the
transaction time, is the event time (``E``, when the frame was pushed, if ``T`` is absent).

``!contractInfo`` pushes a contract's status (``cs``) whenever its info changes, for every
symbol: ``TRADING`` becomes a ``status`` record ``trading``, any other status
(``PENDING_TRADING``, ``SETTLING``, ``DELIVERING``, ``CLOSE``, ...) ``halted`` with the
status as its note; symbols outside the feed's map are no concern of this feed.
"""

from __future__ import annotations

from typing import Any

import orjson

from arbstream.feeds.errors import BadFrameError
from arbstream.feeds.protocols.base import Parsed, Protocol, load_json, millis, price

#: The stream of every contract's status changes, and the status of one that trades.
CONTRACT_INFO = "!contractInfo"
TRADING = "TRADING"


class Binance(Protocol):
    def on_connect(self) -> list[str]:
        streams = [f"{symbol.lower()}@bookTicker" for symbol in self.symbols]
        streams.append(CONTRACT_INFO)
        return [orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode()]

    def parse(self, frame: str | bytes) -> Parsed:
        msg = load_json(frame)
        if isinstance(msg, dict) and "data" in msg and "stream" in msg:
            msg = msg["data"]
        if not isinstance(msg, dict):
            raise BadFrameError(f"expected an object, got {type(msg).__name__}")
        if "result" in msg and "id" in msg:  # the reply to SUBSCRIBE
            if msg["result"] is not None:
                raise BadFrameError(f"subscription refused: {msg!r}")
            return Parsed()
        if "code" in msg and "msg" in msg:
            raise BadFrameError(f"venue error {msg['code']}: {msg['msg']}")
        event = msg.get("e")
        if event == "contractInfo":
            return Parsed(self._status(msg))
        if event != "bookTicker":
            raise BadFrameError(f"unexpected event {event!r}")
        return Parsed([self._quote(msg)])

    def _status(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        symbol, status = msg.get("s"), msg.get("cs")
        instrument = self.symbols.get(symbol) if isinstance(symbol, str) else None
        if instrument is None:
            return []  # (the stream covers every contract)
        if not isinstance(status, str) or not status:
            raise BadFrameError(f"cs: expected a contract status, got {status!r}")
        record: dict[str, Any] = {
            "type": "status",
            "venue": self.venue,
            "instrument": instrument,
            "status": "trading" if status == TRADING else "halted",
            "ts": millis(msg.get("E"), "E"),
        }
        if status != TRADING:
            record["note"] = f"contract status {status}"
        return [record]

    def _quote(self, msg: dict[str, Any]) -> dict[str, Any]:
        symbol = msg.get("s")
        instrument = self.symbols.get(symbol) if isinstance(symbol, str) else None
        if instrument is None:
            raise BadFrameError(f"unknown symbol {symbol!r}")
        update_id = msg.get("u")
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise BadFrameError(f"u: expected an integer, got {update_id!r}")
        ts = millis(msg["T"] if "T" in msg else msg.get("E"), "T")
        return {
            "type": "quote",
            "venue": self.venue,
            "instrument": instrument,
            "bid": price(msg.get("b"), "b"),
            "ask": price(msg.get("a"), "a"),
            "ts": ts,
            "bid_size": price(msg.get("B"), "B"),
            "ask_size": price(msg.get("A"), "A"),
            "seq": update_id,
        }
