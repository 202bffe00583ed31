"""arbstream native: a bridge sends ``quote``, ``stock``, ``status`` and ``fx`` records as
JSON text.

For venues with no public WebSocket (COMEX through a licensed vendor, SHFE and SGE
through CTP gateways, a Shuibei dealer bridge). A frame is one record or an array of
records. The feed stamps its configured venue on quotes and maps instrument names when
the config gives a symbol map. Beyond what routing needs (an object, its type, a key),
values are not checked here: the worker validates them and sends what it cannot use to
the DLQ with its offset, so a bridge's mistakes stay visible.
"""

from __future__ import annotations

from typing import Any

from arbstream.feeds.errors import BadFrameError
from arbstream.feeds.protocols.base import Parsed, Protocol, load_json


class Native(Protocol):
    def parse(self, frame: str | bytes) -> Parsed:
        msg = load_json(frame)
        items = msg if isinstance(msg, list) else [msg]
        parsed = Parsed()
        for item in items:
            try:
                parsed.records.append(self._record(item))
            except BadFrameError as exc:
                parsed.bad.append(str(exc))
        if parsed.bad and not parsed.records:
            raise BadFrameError("; ".join(parsed.bad))
        return parsed

    def _record(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise BadFrameError(f"expected a record object, got {item!r:.80}")
        kind = item.get("type")
        if kind == "fx":
            if not isinstance(item.get("pair"), str) or not item["pair"]:
                raise BadFrameError(f"fx without a pair: {item!r:.120}")
            return item
        if kind not in ("quote", "stock", "status"):
            raise BadFrameError(f"type {kind!r} is not quote, stock, status or fx")
        instrument = item.get("instrument")
        if not isinstance(instrument, str) or not instrument:
            raise BadFrameError(f"{kind} without an instrument: {item!r:.120}")
        if self.symbols:
            mapped = self.symbols.get(instrument)
            if mapped is None:
                raise BadFrameError(f"unknown instrument {instrument!r}")
            item["instrument"] = mapped
        item["venue"] = self.venue
        return item
