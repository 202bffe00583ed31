"""Show a replay's output as tables: arbitrage lifecycles, wide markets, spreads.

python -m arbstream.show OUT.jsonl
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


def arb_table(records: list[dict[str, Any]]) -> Table:
    table = Table(title="Arbitrage signals (USD/oz, net of FX, VAT, units, fees and route costs)")
    for col in (
        "time (UTC)",
        "route",
        "event",
        "buy px",
        "sell px",
        "net",
        "net bps",
        "peak",
        "held",
    ):
        table.add_column(col, justify="left" if col in ("route", "event") else "right")
    for r in records:
        held = f"{r['duration_ms'] / 1000:.1f}s" if "duration_ms" in r else ""
        event = r["event"] + (f" ({r['reason']})" if r.get("reason") else "")
        table.add_row(
            _time(r["ts"]),
            f"{r['instrument']} {r['buy']}>{r['sell']}",
            event,
            f"{r['buy_px']:.3f}",
            f"{r['sell_px']:.3f}",
            f"{r['net']:.3f}",
            f"{r['net_bps']:.1f}",
            f"{r['peak_net']:.3f}",
            held,
        )
    return table


def spread_table(latest: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="Latest spread per pair (a - b, USD/oz) with z-scores per window")
    windows = sorted({w for r in latest.values() for w in r["windows"]}, key=int)
    for col in (
        "pair",
        "time (UTC)",
        "a mid",
        "b mid",
        "spread",
        "bps",
        *[f"z {int(w) // 1000}s" for w in windows],
    ):
        table.add_column(col, justify="left" if col == "pair" else "right")
    for key in sorted(latest):
        r = latest[key]
        zs = []
        for w in windows:
            z = r["windows"].get(w, {}).get("z")
            zs.append("-" if z is None else f"{z:+.2f}")
        table.add_row(
            key,
            _time(r["ts"]),
            f"{r['a_mid']:.3f}",
            f"{r['b_mid']:.3f}",
            f"{r['spread']:+.3f}",
            f"{r['spread_bps']:+.1f}",
            *zs,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    arbs: list[dict[str, Any]] = []
    wides: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    with Path(args[0]).open("rb") as f:
        for line in f:
            r = orjson.loads(line)
            counts[r["type"]] += 1
            if r["type"] == "spread":
                latest[f"{r['instrument']} {r['a']}-{r['b']}"] = r
            elif r["type"] == "signal":
                counts[f"{r['kind']}.{r['event']}"] += 1
                if r["kind"] == "arb" and r["event"] != "update":
                    arbs.append(r)
                elif r["kind"] == "wide":
                    wides.append(
                        f"wide market {r['event']:5} {r['instrument']} {r['venue']} at "
                        f"{_time(r['ts'])}: {r['bid']} / {r['ask']} ({r['width_bps']:.0f} bps)"
                    )
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(arb_table(arbs))
    for wide in wides:
        console.print(wide)
    console.print(spread_table(latest))
    console.print(", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
