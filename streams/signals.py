"""The arbitrage route and wide-market state machines (docs/evaluation.md).

Both are pure functions of (state, inputs) that mutate the state and return the signal
record to emit, or None. The engine adds ``instrument`` and routes the record.
"""

from __future__ import annotations

from typing import Any, Final

from arbstream.streams.config import ArbSettings, Route, WideSettings

#: Every (kind, event) a signal record can have.
SIGNAL_EVENTS: Final = (
    ("arb", "open"),
    ("arb", "update"),
    ("arb", "close"),
    ("wide", "open"),
    ("wide", "close"),
    ("basis", "open"),
    ("basis", "close"),
    ("delivery", "open"),
    ("delivery", "close"),
    ("halt", "open"),
    ("halt", "close"),
    ("level", "cross"),
)

IDLE: Final = 0
PENDING: Final = 1
OPEN: Final = 2


class ArbRoute:
    """Lifecycle state of one route of one instrument."""

    __slots__ = ("last_net", "opened_ts", "peak", "state")

    def __init__(self) -> None:
        self.state = IDLE
        self.opened_ts = 0  # pending since / opened at (t0)
        self.peak = 0.0
        self.last_net = 0.0  # net of the last open or update emitted

    def to_state(self) -> list[Any]:
        return [self.state, self.opened_ts, self.peak, self.last_net]

    @classmethod
    def from_state(cls, data: list[Any]) -> ArbRoute:
        r = cls()
        state, opened, peak, last = data
        if state not in (IDLE, PENDING, OPEN):
            raise ValueError(f"bad route state {state!r}")
        r.state, r.opened_ts, r.peak, r.last_net = int(state), int(opened), float(peak), float(last)
        return r


class ArbLimits:
    """The ``[arb]`` settings, read per tick: a compiled class reads its own attributes
    natively, a pydantic model's through Python's attribute protocol."""

    __slots__ = ("close_usd", "open_usd", "persist_ms", "update_usd")

    def __init__(self, arb: ArbSettings) -> None:
        self.open_usd: float = arb.open_usd
        self.close_usd: float = arb.close_usd
        self.persist_ms: int = arb.persist_ms
        self.update_usd: float = arb.update_usd


class WideLimits:
    """The ``[wide]`` settings, read per tick (see :class:`ArbLimits`)."""

    __slots__ = ("close_bps", "open_bps")

    def __init__(self, wide: WideSettings) -> None:
        self.open_bps: float = wide.open_bps
        self.close_bps: float = wide.close_bps


class RouteTerms:
    """A route with its costs folded into two numbers: cost = cost_usd + cost_frac * ask_B."""

    __slots__ = ("buy", "buy_index", "cost_frac", "cost_usd", "route", "sell", "sell_index")

    def __init__(self, route: Route, fees_bps: float, buy_index: int = -1, sell_index: int = -1):
        self.route = route
        self.buy = route.buy
        self.sell = route.sell
        # the legs' positions in ``InstrumentState.slots`` (the engine's venue numbers)
        self.buy_index = buy_index
        self.sell_index = sell_index
        self.cost_usd = route.cost_usd
        self.cost_frac = (route.cost_bps + fees_bps) / 10000.0

    def net(self, buy_ask: float, sell_bid: float) -> float:
        """``gross - cost`` (docs/evaluation.md); the engine's hot loop inlines this."""
        return sell_bid - buy_ask - (self.cost_usd + self.cost_frac * buy_ask)


def evaluate_route(
    r: ArbRoute,
    route: Route,
    arb: ArbLimits,
    buy_ask: float,
    sell_bid: float,
    net: float,
    eligible: bool,
    t: int,
) -> dict[str, Any] | None:
    """Advance one route on one evaluation; return the signal to emit, if any.

    ``buy_ask`` and ``sell_bid`` are normalised (USD/oz) from the latest quotes, stale
    or not, ``net`` is :meth:`RouteTerms.net` of them; ``eligible`` says both legs are
    quoted and fresh at ``t``.
    """
    gross = sell_bid - buy_ask
    state = r.state
    if state == IDLE:
        if not eligible or net < arb.open_usd:
            return None
        r.state = state = PENDING
        r.opened_ts = t  # then the pending row applies at once
    if state == PENDING:
        if not eligible or net < arb.open_usd:
            r.state = IDLE
            return None
        if t - r.opened_ts < arb.persist_ms:
            return None
        r.state = OPEN
        r.peak = r.last_net = net
        return _arb_record("open", route, r, t, buy_ask, sell_bid, gross, net)
    # OPEN
    if not eligible or net < arb.close_usd:
        r.state = IDLE
        record = _arb_record("close", route, r, t, buy_ask, sell_bid, gross, net)
        record["reason"] = "converged" if eligible else "stale"
        record["duration_ms"] = t - r.opened_ts
        return record
    if net > r.peak:  # noqa: PLR1730 - a comparison is cheaper than max() on the hot path
        r.peak = net
    if abs(net - r.last_net) >= arb.update_usd:
        r.last_net = net
        return _arb_record("update", route, r, t, buy_ask, sell_bid, gross, net)
    return None


def _arb_record(
    event: str,
    route: Route,
    r: ArbRoute,
    t: int,
    buy_ask: float,
    sell_bid: float,
    gross: float,
    net: float,
) -> dict[str, Any]:
    return {
        "type": "signal",
        "kind": "arb",
        "event": event,
        "instrument": "",
        "buy": route.buy,
        "sell": route.sell,
        "ts": t,
        "opened_ts": r.opened_ts,
        "buy_px": buy_ask,
        "sell_px": sell_bid,
        "gross": gross,
        "net": net,
        "net_bps": net / buy_ask * 10000.0,
        "peak_net": r.peak,
        "reason": None,
    }


def wide_signal(
    wide_open: set[str], wide: WideLimits, venue: str, bid: float, ask: float, t: int
) -> dict[str, Any] | None:
    """Advance the wide-market state of ``venue``; return the signal to emit, if any."""
    width_bps = (ask - bid) / ((ask + bid) / 2.0) * 10000.0
    if venue in wide_open:
        if width_bps >= wide.close_bps:
            return None
        wide_open.discard(venue)
        event = "close"
    else:
        if width_bps < wide.open_bps:
            return None
        wide_open.add(venue)
        event = "open"
    return {
        "type": "signal",
        "kind": "wide",
        "event": event,
        "instrument": "",
        "venue": venue,
        "ts": t,
        "bid": bid,
        "ask": ask,
        "width_bps": width_bps,
    }
