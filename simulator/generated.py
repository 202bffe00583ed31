"""A generated, endless scenario for demos: input records (docs/records.md).

The recorded scenarios end; a demo should not. This module models just enough of the
silver market for every signal of the monitor to fire and clear on its own:

- a reference USD/oz price doing a geometric random walk (New York, ``COMEX``-like);
- USD venues near the reference, London-style venues a little above it (+0.2..1.2 USD/oz,
  the "rock beats paper" premium), so the cheap transatlantic route opens now and then;
- CNY exchange venues ("Shanghai") at a premium that jumps between regimes -- a Markov
  chain over a few levels with exponentially distributed durations -- because real
  dislocations come in episodes: calm, then days at +6% or +30% over London;
- dealer boards (unit ``g``, Shenzhen Shuibei) as a very wide market that sometimes
  narrows, like the 91.60/136.80 USD-equivalent board of the seed example;
- USD/C exchange rates drifting slowly around a typical level.

It is a pure function of (config, seed, start_ts, settings): no I/O, no clock, one
``random.Random``, O(venues) state, so a demo can be replayed and tested exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from arbstream.streams.config import EngineConfig

#: Where each USD/C rate starts and drifts around; any other currency starts at 1.0.
FX_START: dict[str, float] = {"CNY": 7.10, "INR": 84.0, "EUR": 0.92, "GBP": 0.79, "JPY": 152.0}
#: Price tick by quoting unit: COMEX's $0.005/oz, SHFE's 1 CNY/kg, a board's 0.01 CNY/g.
UNIT_TICK: dict[str, float] = {"oz": 0.005, "kg": 1.0, "g": 0.01}
ETF_TICK = 0.01  # a numeric unit is an ETF share, quoted in cents
FX_PIP = 0.0001


@dataclass(frozen=True)
class GeneratorSettings:
    """The model's knobs; the defaults make the example config's signals fire regularly."""

    instrument: str = "XAG"
    start_usd: float = 78.0  # USD/oz start of the reference random walk
    vol_bps_per_s: float = 8.0  # random-walk volatility of the reference price (per sqrt s)
    tick_ms: int = 250  # mean event-time interval between quotes of one venue (jittered)
    fx_every_ms: int = 5_000  # an fx record for each non-USD currency this often (FX drift)
    regime_mean_ms: int = 60_000  # mean duration of a Shanghai premium regime
    # Shanghai premium levels over the reference, ex-VAT fractions. With the example route
    # costs (3 USD + ~21 bps) an arb needs ~+4.7%, so calm never opens and every other
    # level does: each calm -> dislocated hop opens the Shanghai routes, the way back closes.
    premium_levels: tuple[float, ...] = (0.0, 0.06, 0.15, 0.30)
    premium_relax_ms: int = 5_000  # the premium moves to a new level over this time constant
    basis_sd: float = 0.002  # each Shanghai venue wobbles around the common premium (fraction)
    london_venues: tuple[str, ...] = ("LBMA", "LONDON", "LDN")  # venues priced as London
    london_premium_usd: tuple[float, float] = (0.2, 1.2)  # London over New York, USD/oz band
    usd_premium_sd: float = 0.03  # other venues wobble around the reference, USD/oz
    wobble_revert_ms: int = 30_000  # mean-reversion time of the per-venue wobbles
    quote_spread_bps: float = 1.5  # exchange bid/ask width before rounding out to the tick
    board_wide_bps: tuple[float, float] = (2_500.0, 4_500.0)  # a board's usual width range
    board_narrow_bps: tuple[float, float] = (150.0, 350.0)  # when dealers compete for once
    board_mean_ms: int = 90_000  # mean duration of a wide or narrow board regime
    fx_vol_bps: float = 1.5  # standard deviation of the log move between fx records
    fx_revert_ms: int = 3_600_000  # FX drifts back towards its start over about an hour
    fx_spread_bps: float = 0.8  # fx bid/ask width (a few pips on USDCNY)

    def __post_init__(self) -> None:
        for name in ("tick_ms", "fx_every_ms", "regime_mean_ms", "premium_relax_ms"):
            _require(getattr(self, name) > 0, f"{name} must be > 0")
        for name in ("wobble_revert_ms", "board_mean_ms", "fx_revert_ms"):
            _require(getattr(self, name) > 0, f"{name} must be > 0")
        _require(bool(self.instrument), "instrument must be a non-empty string")
        _require(math.isfinite(self.start_usd) and self.start_usd > 0, "start_usd must be > 0")
        for name in ("vol_bps_per_s", "basis_sd", "usd_premium_sd", "fx_vol_bps"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"{name} must be >= 0")
        for name in ("quote_spread_bps", "fx_spread_bps"):
            value = getattr(self, name)
            _require(math.isfinite(value) and 0 <= value < 10_000, f"{name} must be in [0, 1e4)")
        _require(len(self.premium_levels) > 0, "premium_levels must not be empty")
        # A premium near -100% would price Shanghai at zero; beyond +1000% is not a model.
        _require(all(-0.5 < p < 10 for p in self.premium_levels), "premium_levels out of range")
        lo, hi = self.london_premium_usd
        _require(0 <= lo <= hi < self.start_usd / 2, "london_premium_usd: need 0 <= lo <= hi")
        for name in ("board_wide_bps", "board_narrow_bps"):
            lo, hi = getattr(self, name)
            # A width of 2e4 bps or more would put the bid at or below zero.
            _require(0 < lo <= hi < 15_000, f"{name} must be 0 < lo <= hi < 15000")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(slots=True)
class _Venue:
    name: str
    kind: str  # "board", "shanghai", "london" or "flat"
    currency: str
    local_factor: float  # (1 + vat) * oz_per_unit: local price per (USD/oz * fx)
    tick: float
    decimals: int
    next_ts: int
    last_ts: int
    wobble: float  # premium noise: USD/oz for london/flat, a fraction for shanghai
    board_wide: bool = True
    board_until: int = 0
    board_bps: float = 0.0


def generate_ticks(
    config: EngineConfig,
    seed: int,
    start_ts: int,
    settings: GeneratorSettings = GeneratorSettings(),
) -> Iterator[dict[str, Any]]:
    """Endless quote and fx records for every venue of ``config``, ``ts`` non-decreasing."""
    if start_ts < 0:
        raise ValueError("start_ts must be >= 0")
    return _World(config, random.Random(seed), start_ts, settings).run()


class _World:
    """The model's state, O(venues): advanced to each event's time, then sampled."""

    def __init__(
        self, config: EngineConfig, rng: random.Random, start_ts: int, s: GeneratorSettings
    ) -> None:
        self.s, self.rng, self.now = s, rng, start_ts
        self.log_ref = math.log(s.start_usd)
        self.level = 0  # start calm: the first dislocation is then a visible event
        self.premium = s.premium_levels[0]
        self.regime_until = start_ts + self._duration(s.regime_mean_ms)
        self.fx_pairs = sorted({v.currency for v in config.venues.values()} - {"USD"})
        self.fx_dev = dict.fromkeys(self.fx_pairs, 0.0)  # log deviation from FX_START
        self.fx_mid: dict[str, float] = {"USD": 1.0}
        self.fx_next = start_ts  # first fx at start: before any quote (ties go to fx)
        self.venues = [self._venue(config, name, start_ts) for name in config.venue_names]

    def _venue(self, config: EngineConfig, name: str, start_ts: int) -> _Venue:
        s, v = self.s, config.venues[name]
        unit = v.units.get(s.instrument, v.unit)
        tick = UNIT_TICK[unit] if isinstance(unit, str) else ETF_TICK
        if unit == "g":
            kind = "board"
        elif v.currency == "CNY":
            kind = "shanghai"
        elif name.upper() in s.london_venues:
            kind = "london"
        else:
            kind = "flat"
        venue = _Venue(
            name=name,
            kind=kind,
            currency=v.currency,
            local_factor=(1.0 + v.vat) * config.oz_per_unit(name, s.instrument),
            tick=tick,
            decimals=max(0, math.ceil(-math.log10(tick) - 1e-9)),
            next_ts=start_ts + self.rng.randint(0, s.tick_ms),  # venues start out of step
            last_ts=start_ts,
            wobble=sum(s.london_premium_usd) / 2 if kind == "london" else 0.0,
        )
        if kind == "board":  # boards start wide, like the seed example
            venue.board_until = start_ts + self._duration(s.board_mean_ms)
            venue.board_bps = self.rng.uniform(*s.board_wide_bps)
        return venue

    def run(self) -> Iterator[dict[str, Any]]:
        while True:
            venue = min(self.venues, key=lambda v: v.next_ts)  # ties: first by name
            if self.fx_pairs and self.fx_next <= venue.next_ts:
                self._advance(self.fx_next)
                yield from self._fx_records()
                self.fx_next += self.s.fx_every_ms
            else:
                ts = venue.next_ts
                self._advance(ts)
                yield self._quote(venue, ts)
                jitter = self.rng.uniform(0.5, 1.5)
                venue.next_ts = ts + max(1, round(self.s.tick_ms * jitter))

    def _duration(self, mean_ms: int) -> int:
        return max(1, round(self.rng.expovariate(1.0 / mean_ms)))

    def _advance(self, ts: int) -> None:
        """Move the reference walk and the Shanghai premium regime to event time ``ts``."""
        s, rng = self.s, self.rng
        if ts > self.now:
            sigma = s.vol_bps_per_s / 1e4 * math.sqrt((ts - self.now) / 1000.0)
            self.log_ref += rng.gauss(0.0, sigma)
        while self.regime_until <= ts:  # regimes may end between two events
            self._relax(self.regime_until)
            if len(s.premium_levels) > 1:  # hop to any other level
                self.level = rng.choice(
                    [i for i in range(len(s.premium_levels)) if i != self.level]
                )
            self.regime_until += self._duration(s.regime_mean_ms)
        self._relax(ts)

    def _relax(self, ts: int) -> None:
        # Prices re-rate over seconds, not in one tick, so arbs pass through pending first.
        keep = math.exp(-max(0, ts - self.now) / self.s.premium_relax_ms)
        target = self.s.premium_levels[self.level]
        self.premium = target + (self.premium - target) * keep
        self.now = max(self.now, ts)

    def _ou(self, x: float, mu: float, sd: float, dt_ms: int) -> float:
        """Exact Ornstein-Uhlenbeck step: a wobble of stationary ``sd`` around ``mu``."""
        keep = math.exp(-dt_ms / self.s.wobble_revert_ms)
        return mu + (x - mu) * keep + sd * math.sqrt(1.0 - keep * keep) * self.rng.gauss(0, 1)

    def _quote(self, v: _Venue, ts: int) -> dict[str, Any]:
        s, ref = self.s, math.exp(self.log_ref)
        dt, v.last_ts = ts - v.last_ts, ts
        width = s.quote_spread_bps / 1e4
        if v.kind == "shanghai":
            v.wobble = self._ou(v.wobble, 0.0, s.basis_sd, dt)
            mid = ref * (1.0 + self.premium + v.wobble)
        elif v.kind == "london":
            lo, hi = s.london_premium_usd
            v.wobble = min(hi, max(lo, self._ou(v.wobble, (lo + hi) / 2, (hi - lo) / 4, dt)))
            mid = ref + v.wobble
        elif v.kind == "flat":
            v.wobble = self._ou(v.wobble, 0.0, s.usd_premium_sd, dt)
            mid = ref + v.wobble
        else:  # a board: at the Shanghai price if it is in China, wide or narrow by regime
            mid = ref * (1.0 + self.premium) if v.currency == "CNY" else ref
            while v.board_until <= ts:
                v.board_wide = not v.board_wide
                v.board_bps = self.rng.uniform(
                    *(s.board_wide_bps if v.board_wide else s.board_narrow_bps)
                )
                v.board_until += self._duration(s.board_mean_ms)
            width = v.board_bps * self.rng.uniform(0.97, 1.03) / 1e4  # dealers fidget
        # The inverse of the normalisation to USD/oz (docs/evaluation.md), at the fx mid
        # the engine will use.
        local = mid * v.local_factor * self.fx_mid[v.currency]
        bid_ticks = math.floor(local * (1.0 - width / 2) / v.tick)
        ask_ticks = math.ceil(local * (1.0 + width / 2) / v.tick)
        bid_ticks = max(1, bid_ticks)  # rounding out keeps the width; never a zero bid
        ask_ticks = max(bid_ticks + 1, ask_ticks)  # never crossed nor locked
        return {
            "type": "quote",
            "venue": v.name,
            "instrument": s.instrument,
            "bid": round(bid_ticks * v.tick, v.decimals),
            "ask": round(ask_ticks * v.tick, v.decimals),
            "ts": ts,
        }

    def _fx_records(self) -> Iterator[dict[str, Any]]:
        s, ts = self.s, self.now
        keep = math.exp(-s.fx_every_ms / s.fx_revert_ms)
        for cur in self.fx_pairs:
            if cur in self.fx_mid:  # the first record of a pair is at the start rate
                self.fx_dev[cur] = self.fx_dev[cur] * keep + self.rng.gauss(0, s.fx_vol_bps / 1e4)
            rate = FX_START.get(cur, 1.0) * math.exp(self.fx_dev[cur])
            bid = round(rate * (1.0 - s.fx_spread_bps / 2e4), 4)
            ask = round(max(rate * (1.0 + s.fx_spread_bps / 2e4), bid + FX_PIP), 4)
            self.fx_mid[cur] = (bid + ask) / 2.0  # what the engine's FX book will hold
            yield {"type": "fx", "pair": "USD" + cur, "bid": bid, "ask": ask, "ts": ts}
