"""Market structure (docs/evaluation.md): basis and the backwardation signal of each
basis pair, delivery stress from registered stocks against open interest, and the size
an arbitrage route is good for.

Basis pairs are evaluated on every accepted quote of an instrument, after its spreads;
delivery stress on every accepted ``stock`` record. The engine (streams/engine.py) calls
these and places their records in the documented output order.
"""

from __future__ import annotations

from typing import Any, Final

from arbstream.streams import validation as v
from arbstream.streams.config import EngineConfig
from arbstream.streams.state import InstrumentState, VenueQuote

_DAY_MS: Final = 86_400_000.0


def basis_figures(spot_mid: float, future_mid: float, days: float, rate: float) -> dict[str, Any]:
    """The fields a basis record and a basis signal share."""
    basis = future_mid - spot_mid
    long_enough = days >= 1.0
    return {
        "spot_mid": spot_mid,
        "future_mid": future_mid,
        "basis": basis,
        "basis_bps": basis / spot_mid * 10000.0,
        "days": days,
        "carry": (future_mid / spot_mid - 1.0) * 365.0 / days if long_enough else None,
        "lease_rate": (
            ((spot_mid / future_mid) * (1.0 + rate * days / 365.0) - 1.0) * 365.0 / days
            if long_enough
            else None
        ),
    }


def basis_now(
    config: EngineConfig, qs: VenueQuote, qf: VenueQuote, future: str, t: int
) -> tuple[bool, float]:
    """Whether a basis pair can be evaluated at ``t`` (both legs fresh, the future not
    expired) and the days to the future's expiry: the rule for the engine and metrics."""
    days = (config.expiry_ms[future] - t) / _DAY_MS
    return qs.fresh and qf.fresh and days > 0, days


def pair_figures(
    config: EngineConfig, qs: VenueQuote, qf: VenueQuote, days: float
) -> dict[str, Any]:
    """``basis_figures`` of a spot and a future quote (normalised mids)."""
    spot_mid, future_mid = (qs.nbid + qs.nask) / 2.0, (qf.nbid + qf.nask) / 2.0
    return basis_figures(spot_mid, future_mid, days, config.basis.rate)


def _unavailable(config: EngineConfig, state: InstrumentState, t: int, *venues: str) -> str:
    """Why a signal of ``venues`` is no longer eligible: ``halted`` when one of them is
    halted, ``closed`` when one is outside its sessions, else ``stale``."""
    if any(venue in state.halted for venue in venues):
        return "halted"
    return "closed" if venues_closed(config, t, *venues) else "stale"


def evaluate_basis(
    config: EngineConfig,
    instrument: str,
    state: InstrumentState,
    venue: str,
    t: int,
    records: list[tuple[str, str | None, dict[str, Any]]],
    signals: list[tuple[str, str | None, dict[str, Any]]],
) -> None:
    """Append the basis records (for pairs of the quoting ``venue``) and the basis
    signals of every pair to ``records`` and ``signals``, in pair order."""
    settings = config.basis
    quotes = state.quotes
    for (spot, future), bs in zip(config.basis_pairs, state.basis, strict=True):
        qs, qf = quotes.get(spot), quotes.get(future)
        if qs is None or qf is None or qs.book is None or qf.book is None:
            continue  # never both normalised: nothing to say, and never opened
        eligible, days = basis_now(config, qs, qf, future, t)
        if not (eligible or bs.open):
            continue
        figures = pair_figures(config, qs, qf, days)
        key = f"{instrument}|{spot}|{future}"
        if (
            eligible
            and venue in (spot, future)
            and (bs.last_emit is None or t - bs.last_emit >= settings.emit_ms)
        ):
            bs.last_emit = t
            record: dict[str, Any] = {
                "type": "basis",
                "instrument": instrument,
                "spot": spot,
                "future": future,
                "ts": t,
            }
            records.append(("basis", key, record | figures))
        event, reason = None, None
        if not bs.open:
            if eligible and figures["basis_bps"] <= -settings.open_bps:
                event, bs.open, bs.opened_ts = "open", True, t
        elif days <= 0:
            event, reason = "close", "expired"
        elif not eligible:
            event, reason = "close", _unavailable(config, state, t, spot, future)
        elif figures["basis_bps"] > -settings.close_bps:
            event, reason = "close", "converged"
        if event is None:
            continue
        signal: dict[str, Any] = {
            "type": "signal",
            "kind": "basis",
            "instrument": instrument,
            "spot": spot,
            "future": future,
            "ts": t,
            "event": event,
            "opened_ts": bs.opened_ts,
            **figures,
            "reason": reason,
        }
        if event == "close":
            bs.open = False
            signal["duration_ms"] = t - bs.opened_ts
        signals.append(("signals", f"{instrument}|basis|{spot}>{future}", signal))


def route_size_oz(buy: VenueQuote, sell: VenueQuote) -> float | None:
    """Troy ounces an arbitrage can move at the quoted sizes (buy at B's ask, sell at S's
    bid), or None when either size is absent or unusable."""
    ask_size, bid_size = v.size(buy.ask_size), v.size(sell.bid_size)
    if ask_size is None or bid_size is None:
        return None
    return min(ask_size * buy.oz_per_lot, bid_size * sell.oz_per_lot)


def venues_closed(config: EngineConfig, t: int, *venues: str) -> bool:
    """Whether any of ``venues`` is outside its trading sessions at ``t``."""
    calendars = config.calendars
    for venue in venues:
        calendar = calendars[venue]
        if calendar is not None and not calendar.is_open(t):
            return True
    return False


def delivery_signal(
    config: EngineConfig,
    instrument: str,
    state: InstrumentState,
    venue: str,
    registered: Any,
    open_interest: Any,
    ts: int,
) -> dict[str, Any] | None:
    """Advance the delivery-stress state of (``instrument``, ``venue``) on an accepted
    stock record; return the signal to emit, if any. ``registered`` and
    ``open_interest`` are the record's own values."""
    coverage = float(registered) / float(open_interest)
    state.coverage[venue] = coverage
    settings = config.delivery
    if venue in state.delivery_open:
        if coverage < settings.close_ratio:
            return None
        state.delivery_open.discard(venue)
        event = "close"
    else:
        if coverage >= settings.open_ratio:
            return None
        state.delivery_open.add(venue)
        event = "open"
    return {
        "type": "signal",
        "kind": "delivery",
        "event": event,
        "instrument": instrument,
        "venue": venue,
        "ts": ts,
        "registered": registered,
        "open_interest": open_interest,
        "coverage": coverage,
    }
