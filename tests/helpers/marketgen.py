"""Seeded generators of version 2 (market structure) configs and input streams.

A case has venues with and without trading sessions (Shanghai's three sessions, London's
day, New York's Sunday-to-Thursday Globex week, a UTC half day), holidays, lots, futures
with an expiry and the basis pairs between them and a spot, and a stream over several
days: bursts of quotes with top-of-book sizes, quiet hours and days between them (so
venues open and close under the stream), FX, stock reports of the futures venues, and
the version 1 generator's garbage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from helpers.streamgen import FX0, GARBAGE, fx_line, local_price

#: (timezone, sessions, days or None for Mon-Fri); None: no sessions, always open.
SESSIONS: list[tuple[str, list[str], list[str] | None] | None] = [
    None,
    ("Asia/Shanghai", ["09:00-11:30", "13:30-15:00", "21:00-02:30"], None),
    ("Europe/London", ["08:00-16:30"], None),
    ("America/New_York", ["18:00-17:00"], ["Sun", "Mon", "Tue", "Wed", "Thu"]),
    ("UTC", ["00:00-12:00"], ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
]
START = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)  # a Thursday evening before NY's DST change


@dataclass(frozen=True)
class MarketVenue:
    name: str
    currency: str
    unit: str
    vat: float
    stale_ms: int
    lot: float
    session: tuple[str, list[str], list[str] | None] | None
    holidays: tuple[date, ...]
    expiry: date | None
    basis_premium: float  # the future's mid over the spot's, USD/oz, at the start

    def table(self) -> dict[str, Any]:
        """The venue's config table."""
        out: dict[str, Any] = {
            "currency": self.currency,
            "unit": self.unit,
            "vat": self.vat,
            "fee_bps": 1.0,
            "stale_ms": self.stale_ms,
            "lot": self.lot,
        }
        if self.session is not None:
            tz, sessions, days = self.session
            out |= {"timezone": tz, "sessions": sessions, "holidays": list(self.holidays)}
            if days is not None:
                out["days"] = days
        if self.expiry is not None:
            out["expiry"] = self.expiry
        return out


def market_venues(rng: random.Random) -> list[MarketVenue]:
    """Two to five venues, at least one spot and one future."""
    names = rng.sample(["COMEX", "LBMA", "SHFE", "SGE", "MCX", "SHUIBEI", "OSE"], rng.randint(2, 5))
    out = []
    for i, name in enumerate(names):
        currency = rng.choice(["USD", "USD", "CNY"])
        future = i == 1 or (i > 1 and rng.random() < 0.4)
        holidays = tuple(
            START.date() + timedelta(days=rng.randrange(6)) for _ in range(rng.choice([0, 0, 2]))
        )
        out.append(
            MarketVenue(
                name=name,
                currency=currency,
                unit=rng.choice(["oz", "kg", "g"]),
                vat=0.13 if currency == "CNY" and rng.random() < 0.5 else 0.0,
                stale_ms=rng.choice([5000, 20000, 60000]),
                lot=rng.choice([1.0, 5.0, 15.0, 1000.0]),
                session=rng.choice(SESSIONS),
                holidays=holidays,
                expiry=START.date() + timedelta(days=rng.choice([2, 4, 30, 90]))
                if future
                else None,
                basis_premium=rng.uniform(-3.0, 3.0) if future else 0.0,
            )
        )
    return out


def market_config(rng: random.Random, venues: list[MarketVenue]) -> dict[str, Any]:
    """A version 2 config for ``venues`` (parse it with arbstream.config.parse_config)."""
    spots = [v.name for v in venues if v.expiry is None]
    futures = [v.name for v in venues if v.expiry is not None]
    names = [v.name for v in venues]
    pairs = [(b, s) for b in names for s in names if b != s]
    routes = rng.sample(pairs, min(4, len(pairs)))
    basis = [{"spot": s, "future": f} for s in spots for f in futures][:3]
    return {
        "defaults": {"stale_ms": 5000, "fx_stale_ms": 600000, "windows_ms": [60000],
                     "spread_emit_ms": rng.choice([0, 1000])},
        "arb": {"open_usd": 1.0, "close_usd": 0.5, "persist_ms": rng.choice([0, 1000]),
                "update_usd": 0.5},
        "wide": {"open_bps": 500, "close_bps": 400},
        "basis": {"rate": 0.04, "open_bps": 20, "close_bps": 5, "emit_ms": rng.choice([0, 5000]),
                  "pairs": basis},
        "delivery": {"open_ratio": 0.5, "close_ratio": 0.6},
        "venues": {v.name: v.table() for v in venues},
        "routes": [{"buy": b, "sell": s, "cost_usd": 0.25, "cost_bps": 5} for b, s in routes],
    }  # fmt: skip


def market_stream(
    rng: random.Random,
    venues: list[MarketVenue],
    n: int,
    *,
    ref: float | None = None,
    halts: bool = False,
) -> list[bytes]:
    """``n`` input lines over several days (see the module docstring); with ``halts``
    (version 3), venues halt and resume too. ``ref``: the starting USD/oz price."""
    fx = dict(FX0)
    if ref is None:
        ref = rng.uniform(60, 110)
    premium = {v.name: v.basis_premium for v in venues}
    t = int(START.timestamp() * 1000)
    out: list[bytes] = [fx_line("CNY", fx["CNY"], t)]
    halted: set[str] = set()
    while len(out) < n:
        if halts and rng.random() < 0.006:
            out.append(_status(rng, rng.choice(venues).name, halted, t))
            continue
        if rng.random() < 0.006:
            t += rng.randrange(600_000, 12 * 3_600_000)  # a quiet stretch: sessions turn
            out.append(fx_line("CNY", fx["CNY"], t))
            continue
        t += rng.choice([50, 200, 700, 2500])
        r = rng.random()
        if r < 0.01:
            out.append(rng.choice(GARBAGE))
            continue
        if r < 0.04:
            fx["CNY"] *= 1 + rng.gauss(0, 0.001)
            out.append(fx_line("CNY", fx["CNY"], t))
            continue
        v = rng.choice(venues)
        if r < 0.05 and v.expiry is not None:
            interest = rng.uniform(1e5, 4e5)
            stock = {"type": "stock", "venue": v.name, "instrument": "XAG",
                     "registered": round(interest * rng.uniform(0.2, 0.9)),
                     "open_interest": round(interest), "ts": t}  # fmt: skip
            out.append(orjson.dumps(stock))
            continue
        ref *= 1 + rng.gauss(0, 0.0005)
        if rng.random() < 0.03:
            premium[v.name] = rng.choice([0.0, 2.5, -2.5, 6.0, -1.5])
        mid = ref + premium[v.name]
        k = local_price(1.0, v.currency, v.unit, v.vat, fx)
        quote: dict[str, Any] = {
            "type": "quote",
            "venue": v.name,
            "instrument": "XAG",
            "bid": round(mid * 0.9995 * k, 6),
            "ask": round(mid * 1.0005 * k, 6),
            "ts": t - rng.choice([0, 0, 0, 400]),
        }
        if rng.random() < 0.85:
            quote["bid_size"] = rng.choice([1, 2, 5, 10, 40, 0.5])
            quote["ask_size"] = rng.choice([1, 3, 5, 20, 0.25])
        out.append(orjson.dumps(quote))
    return out


def _status(rng: random.Random, venue: str, halted: set[str], t: int) -> bytes:
    """A status record of ``venue``: mostly a change, sometimes a repeat, a late one or
    a note too long to carry."""
    if venue in halted and rng.random() < 0.8:
        status = "trading"
        halted.discard(venue)
    else:
        status = "halted"
        halted.add(venue)
    ts = t - rng.choice([0, 0, 0, 0, 3000])  # (sometimes late: out of order)
    record: dict[str, Any] = {
        "type": "status", "venue": venue, "instrument": "XAG", "status": status, "ts": ts
    }  # fmt: skip
    note = rng.choice([None, "circuit breaker", "creations suspended", "x" * 201, 7])
    if note is not None:
        record["note"] = note
    return orjson.dumps(record)


def market_levels(rng: random.Random, venues: list[MarketVenue], ref: float) -> list[Any]:
    """Two to four ``[[levels]]`` near ``ref``, on random venues, with and without a band."""
    return [
        {"name": f"L{i}-{rng.randrange(1000)}", "instrument": "XAG",
         "venue": rng.choice(venues).name, "price": round(ref + rng.uniform(-3.0, 3.0), 2),
         "band_usd": rng.choice([0.0, 0.25, 0.5])}
        for i in range(rng.randint(2, 4))
    ]  # fmt: skip


def market_case(
    seed: int, n: int = 3000, *, v3: bool = False
) -> tuple[dict[str, Any], list[MarketVenue], list[bytes]]:
    """A config, its venues and a stream; ``v3``: with halts and price levels."""
    rng = random.Random(seed)
    venues = market_venues(rng)
    config = market_config(rng, venues)
    if not v3:
        return config, venues, market_stream(rng, venues, n)
    ref = rng.uniform(60, 110)
    config["levels"] = market_levels(rng, venues, ref)
    return config, venues, market_stream(rng, venues, n, ref=ref, halts=True)


def toml_text(config: dict[str, Any]) -> str:
    """``config`` (tables, arrays of tables, strings, numbers, dates, lists of them) as
    TOML, for a test that runs a command on a config file."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, date):
            return v.isoformat()
        return repr(v)

    def table(prefix: str, data: dict[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list) or
                   (isinstance(v, list) and not (v and isinstance(v[0], dict)))}  # fmt: skip
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f'"{k}" = {value(v)}' for k, v in scalars.items())
        for k, v in data.items():
            if k in scalars:
                continue
            name = f'{prefix}."{k}"' if prefix else f'"{k}"'
            if isinstance(v, dict):
                table(name, v)
            else:
                for item in v:
                    lines.append(f"[[{name}]]")
                    lines.extend(f'"{ik}" = {value(iv)}' for ik, iv in item.items())

    table("", config)
    return "\n".join(lines) + "\n"


def rescaled(lines: list[bytes], venue: str, price: float, size: float) -> list[bytes]:
    """``lines`` with ``venue``'s quote prices times ``price`` and sizes times ``size``."""
    out = []
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)
            continue
        if isinstance(rec, dict) and rec.get("type") == "quote" and rec.get("venue") == venue:
            for field, k in (
                ("bid", price),
                ("ask", price),
                ("bid_size", size),
                ("ask_size", size),
            ):
                value = rec.get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    rec[field] = value * k  # garbage lines keep their garbage
        out.append(orjson.dumps(rec))
    return out
