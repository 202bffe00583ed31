"""The standard benchmark workload (issue 3), shared by the replay and pipeline benchmarks.

Five venues quote XAG one millisecond apart in turn: COMEX, LBMA and BINANCE in USD/oz,
SHFE and SGE in CNY/kg with 13% VAT. USDCNY is updated every 1,000 ticks. Six routes,
windows of 60 s and 300 s, spread records at most once a second per pair.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

CONFIG_TOML = """\
topic_prefix = "bench"

[defaults]
stale_ms = 5000
fx_stale_ms = 60000
windows_ms = [60000, 300000]
spread_emit_ms = 1000

[arb]
open_usd = 0.50
close_usd = 0.25
persist_ms = 1000
update_usd = 0.10

[wide]
open_bps = 500
close_bps = 400

[venues.COMEX]
currency = "USD"
unit = "oz"
fee_bps = 0.5

[venues.LBMA]
currency = "USD"
unit = "oz"
fee_bps = 1.0

[venues.BINANCE]
currency = "USD"
unit = "oz"
fee_bps = 2.0

[venues.SHFE]
currency = "CNY"
unit = "kg"
vat = 0.13
fee_bps = 1.0

[venues.SGE]
currency = "CNY"
unit = "kg"
vat = 0.13
fee_bps = 1.5

[[routes]]
buy = "COMEX"
sell = "SHFE"
cost_usd = 3.0
cost_bps = 20

[[routes]]
buy = "COMEX"
sell = "SGE"
cost_usd = 3.0
cost_bps = 20

[[routes]]
buy = "LBMA"
sell = "SGE"
cost_usd = 2.5
cost_bps = 20

[[routes]]
buy = "LBMA"
sell = "SHFE"
cost_usd = 2.5
cost_bps = 20

[[routes]]
buy = "COMEX"
sell = "LBMA"
cost_usd = 0.4

[[routes]]
buy = "BINANCE"
sell = "COMEX"
cost_usd = 0.1
"""

START_TS = 1769990400000
KG = 32.1507466
VENUES = (
    ("COMEX", 0.0, False),
    ("LBMA", 0.9, False),
    ("BINANCE", 0.05, False),
    ("SHFE", 4.0, True),
    ("SGE", 3.6, True),
)


def fx_line(fx: float, ts: int) -> bytes:
    """A USDCNY record around ``fx``."""
    return b'{"type":"fx","pair":"USDCNY","bid":%.5f,"ask":%.5f,"ts":%d}' % (
        fx - 0.0003,
        fx + 0.0003,
        ts,
    )


def quote_line(
    venue: bytes, instrument: bytes, bid: float, ask: float, ts: int, cny_kg: float | None
) -> bytes:
    """A quote of ``bid`` / ``ask`` in USD/oz, or, with ``cny_kg`` (CNY per USD/oz, VAT
    included), in whole CNY/kg."""
    if cny_kg is not None:
        low, high = round(bid * cny_kg), round(ask * cny_kg) + 1
        return b'{"type":"quote","venue":"%s","instrument":"%s","bid":%d.0,"ask":%d.0,"ts":%d}' % (
            venue,
            instrument,
            low,
            high,
            ts,
        )
    return b'{"type":"quote","venue":"%s","instrument":"%s","bid":%.3f,"ask":%.3f,"ts":%d}' % (
        venue,
        instrument,
        bid,
        ask,
        ts,
    )


def ticks(n: int, seed: int = 7, instrument: str = "XAG") -> Iterator[bytes]:
    """``n`` ticks (quotes plus an FX record every 1,000) as JSON lines without newline."""
    rng = random.Random(seed)
    ref = 78.0
    fx = 7.10
    gauss = rng.gauss
    name = instrument.encode()
    for i in range(n):
        ts = START_TS + i
        if i % 1000 == 0:
            fx *= 1 + gauss(0, 0.0002)
            yield fx_line(fx, ts)
            continue
        ref *= 1 + gauss(0, 0.00002)
        venue, premium, cny = VENUES[i % 5]
        mid = ref + premium + gauss(0, 0.05)
        half = 0.005 + abs(gauss(0, 0.01))
        scale = 1.13 * fx * KG if cny else None
        yield quote_line(venue.encode(), name, mid - half, mid + half, ts, scale)
