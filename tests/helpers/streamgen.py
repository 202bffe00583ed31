"""Seeded generators of configs and input streams for property and equivalence tests:
version 1 streams here, version 2 (market structure) in helpers/marketgen.py, from the same
prices, FX records and garbage.

A stream mixes venues in USD, CNY and INR with oz, kg, g and ETF-share units, FX drift,
late and out-of-order ticks, malformed lines of every rejection reason, premium jumps
and wide-market episodes: the shapes the contract has rules for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

OZ_PER = {"oz": 1.0, "kg": 32.1507466, "g": 0.0321507466}
FX0 = {"USD": 1.0, "CNY": 7.1, "INR": 86.0}


@dataclass(frozen=True)
class VenueSpec:
    name: str
    currency: str
    unit: str | float
    vat: float
    fee_bps: float
    stale_ms: int


def random_venues(rng: random.Random, n: int) -> list[VenueSpec]:
    names = rng.sample(["COMEX", "LBMA", "SHFE", "SGE", "MCX", "SHUIBEI", "SLV", "BINANCE"], n)
    out = []
    for name in names:
        currency = rng.choice(["USD", "USD", "CNY", "INR"])
        unit: str | float = rng.choice(["oz", "kg", "g", round(rng.uniform(0.5, 1.5), 4)])
        vat = rng.choice([0.0, 0.13]) if currency != "USD" else 0.0
        out.append(
            VenueSpec(
                name,
                currency,
                unit,
                vat,
                rng.choice([0.0, 0.5, 1.0, 2.0]),
                rng.choice([2000, 5000, 20000]),
            )
        )
    return out


def config_toml(
    venues: list[VenueSpec],
    routes: list[tuple[str, str, float, float]] | None,
    *,
    windows_ms: tuple[int, ...] = (10000, 60000),
    spread_emit_ms: int = 0,
    persist_ms: int = 500,
    open_usd: float = 1.0,
    close_usd: float = 0.5,
    update_usd: float = 0.1,
    fx_stale_ms: int = 60000,
    topic_prefix: str = "arb",
) -> str:
    lines = [
        f'topic_prefix = "{topic_prefix}"',
        "[defaults]",
        "stale_ms = 3000",
        f"fx_stale_ms = {fx_stale_ms}",
        f"windows_ms = [{', '.join(map(str, windows_ms))}]",
        f"spread_emit_ms = {spread_emit_ms}",
        "[arb]",
        f"open_usd = {open_usd}",
        f"close_usd = {close_usd}",
        f"persist_ms = {persist_ms}",
        f"update_usd = {update_usd}",
        "[wide]",
        "open_bps = 500",
        "close_bps = 400",
    ]
    for v in venues:
        unit = f'"{v.unit}"' if isinstance(v.unit, str) else repr(v.unit)
        lines += [
            f"[venues.{v.name}]",
            f'currency = "{v.currency}"',
            f"unit = {unit}",
            f"vat = {v.vat}",
            f"fee_bps = {v.fee_bps}",
            f"stale_ms = {v.stale_ms}",
        ]
    for buy, sell, cost_usd, cost_bps in routes or []:
        lines += ["[[routes]]", f'buy = "{buy}"', f'sell = "{sell}"']
        lines += [f"cost_usd = {cost_usd}", f"cost_bps = {cost_bps}"]
    return "\n".join(lines) + "\n"


def local_price(
    usd_per_oz: float, currency: str, unit: str | float, vat: float, fx: dict[str, float]
) -> float:
    """A USD/oz price as a venue quotes it: with its VAT, in its currency and unit (a
    number: troy ounces per unit)."""
    oz = OZ_PER[unit] if isinstance(unit, str) else unit
    return usd_per_oz * (1 + vat) * fx[currency] * oz


def _px(usd_per_oz: float, v: VenueSpec, fx: dict[str, float]) -> float:
    return local_price(usd_per_oz, v.currency, v.unit, v.vat, fx)


def fx_line(currency: str, rate: float, ts: int) -> bytes:
    """An fx record of USD<currency> around ``rate``."""
    record = {"type": "fx", "pair": "USD" + currency, "bid": rate * 0.9999, "ask": rate * 1.0001}
    return orjson.dumps({**record, "ts": ts})


GARBAGE = [
    b"{not json",
    b"[1,2,3]",
    b'"just a string"',
    b'{"type": "trade", "venue": "X"}',
    b'{"venue": "COMEX"}',
    b'{"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 1.0, "ts": 5}',
    b'{"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": true, "ask": 2.0, "ts": 5}',
    b'{"type": "quote", "venue": "", "instrument": "XAG", "bid": 1.0, "ask": 2.0, "ts": 5}',
    b'{"type": "quote", "venue": "COMEX", "instrument": "XAG", "bid": 1.0, "ask": 2.0, "ts": 5.5}',
    b'{"type": "fx", "pair": "usdcny", "bid": 7.0, "ask": 7.1, "ts": 5}',
    b'{"type": "quote", "venue": "NOWHERE", "instrument": "XAG", "bid": 1.0, "ask": 2.0, "ts": 5}',
    b"\xff\xfe garbage",
]


def random_stream(
    rng: random.Random,
    venues: list[VenueSpec],
    n: int,
    instruments: tuple[str, ...] = ("XAG",),
    *,
    start_ts: int = 1769990400000,
    garbage_rate: float = 0.02,
) -> list[bytes]:
    """``n`` input lines: quotes of every venue and instrument, FX, late ticks, garbage."""
    fx = dict(FX0)
    ref = {inst: rng.uniform(60, 110) for inst in instruments}
    premium = {(v.name, inst): 0.0 for v in venues for inst in instruments}
    width = {(v.name, inst): 0.0005 for v in venues for inst in instruments}
    last_ts: dict[tuple[str, str], int] = {}
    t = start_ts
    out: list[bytes] = []
    dumps = orjson.dumps
    for cur in ("CNY", "INR"):
        out.append(fx_line(cur, fx[cur], t))
    while len(out) < n:
        t += rng.choice([1, 5, 50, 200, 700, 2500])
        r = rng.random()
        if r < garbage_rate:
            out.append(rng.choice(GARBAGE))
            continue
        if r < garbage_rate + 0.03:
            cur = rng.choice(["CNY", "INR"])
            fx[cur] *= 1 + rng.gauss(0, 0.001)
            ts = t - rng.choice([0, 0, 0, 3000])  # sometimes late: out_of_order
            out.append(fx_line(cur, fx[cur], ts))
            continue
        inst = rng.choice(instruments)
        v = rng.choice(venues)
        ref[inst] *= 1 + rng.gauss(0, 0.0005)
        key = (v.name, inst)
        if rng.random() < 0.02:
            premium[key] = rng.choice([0.0, 0.0, 2.5, -2.5, 6.0])  # premium jumps
        if rng.random() < 0.01:
            width[key] = rng.choice([0.0005, 0.0005, 0.08])  # wide-market episodes
        mid = ref[inst] + premium[key]
        bid = _px(mid * (1 - width[key]), v, fx)
        ask = _px(mid * (1 + width[key]), v, fx)
        ts = t - rng.choice([0, 0, 0, 0, 0, 400, 4000])  # venues out of step, some late
        if rng.random() < 0.005:
            bid, ask = ask, bid * 0.99  # crossed
        rec = {
            "type": "quote",
            "venue": v.name,
            "instrument": inst,
            "bid": round(bid, 6),
            "ask": round(ask, 6),
            "ts": ts,
        }
        if rng.random() < 0.1:
            rec["seq"] = len(out)
        last_ts[key] = max(last_ts.get(key, 0), ts)
        out.append(dumps(rec))
    return out
