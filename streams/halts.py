"""Halts and price levels (docs/evaluation.md, "Halts" and "Price levels"): a venue's
halt signal from its status records, and the crosses of the price levels watched on a
venue's quotes. The engine (streams/engine.py) calls these and places their records in
the documented output order.
"""

from __future__ import annotations

from typing import Any, Final

from arbstream.streams import validation as v
from arbstream.streams.config import Level
from arbstream.streams.state import InstrumentState, VenueQuote

#: One output: (stream, key, record), as the engine's.
Output = tuple[str, str | None, dict[str, Any]]
#: The sides of a price level (``InstrumentState.level_sides``).
ABOVE: Final = "above"
BELOW: Final = "below"


def halt_signal(
    obj: dict[str, Any],
    state: InstrumentState,
    quote: VenueQuote | None,
    venue: str,
    instrument: str,
    ts: int,
) -> dict[str, Any] | None:
    """The halt signal of an accepted status record ``obj`` of ``venue`` (its latest
    ``quote``, if any, follows the halt), or None when the status repeats the venue's
    current one."""
    halted = obj["status"] == v.HALTED
    opened = state.halted.get(venue)
    if halted == (opened is not None):
        return None
    record: dict[str, Any] = {
        "type": "signal",
        "kind": "halt",
        "event": "open" if halted else "close",
        "instrument": instrument,
        "venue": venue,
        "ts": ts,
        "opened_ts": ts if opened is None else opened,
        "note": v.note(obj.get("note")),
    }
    if halted:
        state.halted[venue] = ts
    else:
        del state.halted[venue]
        record["duration_ms"] = ts - record["opened_ts"]
    if quote is not None:
        quote.halted = halted
    return record


def level_crosses(
    instrument: str,
    state: InstrumentState,
    venue: str,
    levels: tuple[Level, ...],
    quote: VenueQuote,
    t: int,
    out: list[Output],
) -> None:
    """The price levels watched on ``quote``'s venue, which is fresh at ``t``, in name
    order: a side for a level not seen yet, a cross when the mid leaves the band."""
    mid = (quote.nbid + quote.nask) / 2.0
    sides = state.level_sides
    for level in levels:
        side = sides.get(level.name)
        direction = None
        if side is None:
            sides[level.name] = ABOVE if mid >= level.price else BELOW
        elif side == BELOW and mid >= level.price + level.band_usd:
            direction, sides[level.name] = "up", ABOVE
        elif side == ABOVE and mid < level.price - level.band_usd:
            direction, sides[level.name] = "down", BELOW
        if direction is not None:
            record: dict[str, Any] = {
                "type": "signal",
                "kind": "level",
                "event": "cross",
                "instrument": instrument,
                "venue": venue,
                "name": level.name,
                "ts": t,
                "price": level.price,
                "direction": direction,
                "mid": mid,
            }
            out.append(("signals", f"{instrument}|level|{level.name}", record))
