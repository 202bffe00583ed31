"""Each row of the arbitrage and wide-market state machines (docs/evaluation.md)."""

from __future__ import annotations

import pytest

from arbstream.streams.config import ArbSettings, Route, WideSettings
from arbstream.streams.signals import (
    IDLE,
    OPEN,
    PENDING,
    ArbLimits,
    ArbRoute,
    RouteTerms,
    WideLimits,
    evaluate_route,
    wide_signal,
)

ARB_SETTINGS = ArbSettings(open_usd=0.5, close_usd=0.25, persist_ms=1000, update_usd=0.1)
ARB = ArbLimits(ARB_SETTINGS)
#: The same, without the persistence wait.
ARB_AT_ONCE = ArbLimits(ARB_SETTINGS.model_copy(update={"persist_ms": 0}))
ROUTE = Route("COMEX", "SGE", cost_usd=1.0, cost_bps=0.0)


def step(
    r: ArbRoute, net: float, t: int, eligible: bool = True, arb: ArbLimits = ARB
) -> dict | None:
    """Evaluate with prices chosen so that net comes out as given (no fees, 1 USD cost)."""
    buy_ask, sell_bid = 100.0, 101.0 + net
    computed = RouteTerms(ROUTE, 0.0).net(buy_ask, sell_bid)
    return evaluate_route(r, ROUTE, arb, buy_ask, sell_bid, computed, eligible, t)


def route_in(state: int, t0: int = 0, peak: float = 0.0, last: float = 0.0) -> ArbRoute:
    r = ArbRoute()
    r.state, r.opened_ts, r.peak, r.last_net = state, t0, peak, last
    return r


def test_idle_eligible_above_open_goes_pending_without_emitting() -> None:
    r = route_in(IDLE)
    assert step(r, 0.6, 5000) is None
    assert (r.state, r.opened_ts) == (PENDING, 5000)


@pytest.mark.parametrize(("net", "eligible"), [(0.49, True), (0.6, False)])
def test_idle_stays_idle(net: float, eligible: bool) -> None:
    r = route_in(IDLE)
    assert step(r, net, 5000, eligible) is None
    assert r.state == IDLE


def test_idle_with_zero_persist_opens_at_once() -> None:
    r = route_in(IDLE)
    rec = step(r, 0.6, 5000, arb=ARB_AT_ONCE)
    assert rec is not None and rec["event"] == "open" and rec["opened_ts"] == 5000
    assert r.state == OPEN


@pytest.mark.parametrize(("net", "eligible"), [(0.49, True), (0.9, False)])
def test_pending_falls_back_to_idle_silently(net: float, eligible: bool) -> None:
    r = route_in(PENDING, t0=1000)
    assert step(r, net, 5000, eligible) is None
    assert r.state == IDLE


def test_pending_waits_for_persist() -> None:
    r = route_in(PENDING, t0=1000)
    assert step(r, 0.6, 1999) is None
    assert r.state == PENDING and r.opened_ts == 1000


def test_pending_opens_after_persist() -> None:
    r = route_in(PENDING, t0=1000)
    rec = step(r, 0.7, 2000)
    assert rec is not None
    assert rec["event"] == "open" and rec["opened_ts"] == 1000 and rec["ts"] == 2000
    assert rec["net"] == pytest.approx(0.7) and rec["peak_net"] == pytest.approx(0.7)
    assert rec["reason"] is None and "duration_ms" not in rec
    assert rec["buy_px"] == 100.0 and rec["gross"] == pytest.approx(1.7)
    assert rec["net_bps"] == pytest.approx(70.0)
    assert r.state == OPEN and r.last_net == pytest.approx(0.7)


def test_open_not_eligible_closes_stale() -> None:
    r = route_in(OPEN, t0=1000, peak=0.9, last=0.8)
    rec = step(r, 0.85, 7000, eligible=False)
    assert rec is not None and rec["event"] == "close" and rec["reason"] == "stale"
    assert rec["duration_ms"] == 6000 and rec["net"] == pytest.approx(0.85)
    assert rec["peak_net"] == pytest.approx(0.9)
    assert r.state == IDLE


def test_open_below_close_closes_converged_with_peak_of_earlier_evaluations() -> None:
    r = route_in(OPEN, t0=1000, peak=0.9, last=0.8)
    rec = step(r, 0.2, 4000)
    assert rec is not None and rec["event"] == "close" and rec["reason"] == "converged"
    assert rec["peak_net"] == pytest.approx(0.9) and rec["duration_ms"] == 3000
    assert r.state == IDLE


def test_open_between_close_and_open_stays_open() -> None:
    r = route_in(OPEN, t0=1000, peak=0.9, last=0.35)
    assert step(r, 0.3, 4000) is None  # below open_usd but above close_usd: hysteresis
    assert r.state == OPEN


def test_open_moves_by_update_emits_update_with_new_peak() -> None:
    r = route_in(OPEN, t0=1000, peak=0.8, last=0.8)
    rec = step(r, 0.95, 4000)
    assert rec is not None and rec["event"] == "update"
    assert rec["peak_net"] == pytest.approx(0.95) and rec["opened_ts"] == 1000
    assert r.last_net == pytest.approx(0.95)
    rec = step(r, 0.85, 4100)  # down by exactly update_usd: abs(...) >= update_usd
    assert rec is not None and rec["event"] == "update" and rec["peak_net"] == pytest.approx(0.95)


def test_open_small_move_emits_nothing_but_tracks_peak() -> None:
    r = route_in(OPEN, t0=1000, peak=0.8, last=0.8)
    assert step(r, 0.85, 4000) is None
    assert r.peak == pytest.approx(0.85) and r.last_net == pytest.approx(0.8)


def test_costs_and_fees_enter_net() -> None:
    r = ArbRoute()
    route = Route("A", "B", cost_usd=1.5, cost_bps=10.0)
    arb = ARB_AT_ONCE
    terms = RouteTerms(route, fees_bps=1.5)
    rec = evaluate_route(r, route, arb, 78.0, 85.0, terms.net(78.0, 85.0), True, 1)
    assert rec is not None
    cost = 1.5 + (10.0 + 1.5) / 10000 * 78.0
    assert rec["net"] == pytest.approx(7.0 - cost)
    assert rec["net_bps"] == pytest.approx((7.0 - cost) / 78.0 * 10000)


WIDE = WideLimits(WideSettings(open_bps=500, close_bps=400))


def test_wide_market_opens_holds_and_closes_with_hysteresis() -> None:
    opened: set[str] = set()
    assert wide_signal(opened, WIDE, "SHUIBEI", 100.0, 104.0, 1) is None  # ~392 bps
    rec = wide_signal(opened, WIDE, "SHUIBEI", 91.6, 136.8, 2)
    assert rec is not None and rec["event"] == "open" and rec["venue"] == "SHUIBEI"
    # the first contract's example showed 3961.2 here; its own formula gives 45.2 / 114.2 * 1e4:
    assert rec["width_bps"] == pytest.approx(3957.968, abs=0.001) and rec["bid"] == 91.6
    assert wide_signal(opened, WIDE, "SHUIBEI", 100.0, 104.5, 3) is None  # 440 bps: stays open
    assert wide_signal(opened, WIDE, "SHUIBEI", 91.6, 136.8, 4) is None  # no repeated open
    rec = wide_signal(opened, WIDE, "SHUIBEI", 100.0, 104.0, 5)
    assert rec is not None and rec["event"] == "close" and rec["ts"] == 5
    assert opened == set()


def test_wide_open_at_exact_threshold() -> None:
    opened: set[str] = set()
    bid, ask = 97.5, 102.5  # exactly 500 bps
    rec = wide_signal(opened, WIDE, "X", bid, ask, 1)
    assert rec is not None and rec["event"] == "open"
