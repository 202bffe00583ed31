"""Live terminal view of ``make demo``: the rich rendering of the market view
(streams/market_view.py), with each venue's tick rate.

The picture (latest quotes, clocks, spreads, basis, open signals, FX, each venue's
status and the counts) is the market view's, the same one the gateway's page shows; this
module adds only what a terminal needs: quotes per second per venue on the wall clock,
the tables, a one-line status for logs and CI, and the end-of-run summary. Pure: no
Kafka, no asyncio, no I/O and no clock reads; what depends on time takes the wall-clock
``now_ms``.

Two clocks are shown. Event-time ages use the instrument clock (the newest ``ts`` seen
on the instrument, docs/evaluation.md), so a replayed or lagging stream still shows how
far each venue trails the others. Wall-clock figures (tick rate, ``recv_ts`` age) show
whether data arrives now.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from arbstream.dashboard_parts import (
    MAX_ROWS,
    Delivery,
    age,
    basis_table,
    delivery_table,
    footer,
    new_table,
    signed,
    window_label,
    z_style,
)
from arbstream.gateway.alerts import Alert, AlertsReport
from arbstream.streams.market_view import MarketView, TopicRecord, number

#: The signals the summary lists even before any is seen.
SIGNAL_KEYS = (
    "arb.open", "arb.close", "arb.update", "wide.open", "wide.close", "halt.open", "level.cross",
)  # fmt: skip
#: Level crosses the terminal lists, newest first.
CROSSES_SHOWN = 5
#: Alert names the status line gives.
NAMES_IN_STATUS = 3


class Dashboard:
    """A market view rendered with rich, and its venues' tick rates."""

    def __init__(
        self, view: MarketView, windows_ms: Sequence[int], rate_window_ms: int = 10_000
    ) -> None:
        if rate_window_ms <= 0:
            raise ValueError("rate_window_ms must be positive")
        self.view = view
        self._windows = tuple(int(w) for w in windows_ms)
        self._rate_window_ms = rate_window_ms
        # venue -> [wall ms, count] pairs, one per distinct ms: at most rate_window_ms + 1
        # entries per venue however fast quotes arrive, unlike one entry per quote
        self._arrivals: dict[str, deque[list[int]]] = {v: deque() for v in view.quote_counts}
        #: What the Alertmanager last said (None: the demo runs none, or not asked yet).
        self.alerts: AlertsReport | None = None
        #: Every alert name seen firing (not inhibited) while it was watched.
        self.alerts_seen: set[str] = set()
        #: The webhook's count of notifications, when the demo ran one.
        self.notified: dict[str, Any] | None = None

    @property
    def other(self) -> int:
        """Records the view could not use: malformed, unconfigured, beyond its bounds."""
        return self.view.other

    def observe(self, item: TopicRecord, now_ms: int) -> None:
        """Hand a record to the view, and count a quote it takes at wall-clock ``now_ms``."""
        if self.view.apply(item, now_ms / 1000) and item.record.get("type") == "quote":
            arrivals = self._arrivals[item.record["venue"]]
            if arrivals and now_ms <= arrivals[-1][0]:
                arrivals[-1][1] += 1  # same ms, or the wall clock stepped back: stays sorted
            else:
                arrivals.append([now_ms, 1])
            self._trim(arrivals, now_ms)

    def show_alerts(self, report: AlertsReport) -> None:
        """The Alertmanager's latest answer (gateway/alerts.py)."""
        self.alerts = report
        self.alerts_seen.update(a.name for a in report.firing)

    # -- reading the view ---------------------------------------------------------------

    def _signals(self, kind: str) -> list[dict[str, Any]]:
        return [i.record for i in self.view.open_signals.values() if i.record["kind"] == kind]

    def _clock_age(self, instrument: str, ts: int) -> int | None:
        clock = self.view.clocks.get(instrument)
        return None if clock is None else clock - ts

    def _trim(self, arrivals: deque[list[int]], now_ms: int) -> None:
        while arrivals and arrivals[0][0] <= now_ms - self._rate_window_ms:
            arrivals.popleft()

    def _rate(self, venue: str, now_ms: int) -> float:
        arrivals = self._arrivals[venue]
        self._trim(arrivals, now_ms)
        return sum(count for _, count in arrivals) * 1000 / self._rate_window_ms

    # -- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        view = self.view
        summary: dict[str, Any] = {
            "quotes": dict(view.quote_counts),
            "spreads": view.spread_count,
            "signals": dict.fromkeys(SIGNAL_KEYS, 0) | view.signal_counts,
        }
        if self.alerts is not None or self.notified is not None:
            summary["alerts"] = {
                "seen": sorted(self.alerts_seen),
                "firing_at_end": [a.title() for a in self.alerts.firing] if self.alerts else [],
                **(self.notified or {}),
            }
        return summary

    def status_line(self, now_ms: int) -> str:
        view = self.view
        quotes = " ".join(f"{v} {n}" for v, n in view.quote_counts.items())
        rate = sum(self._rate(v, now_ms) for v in self._arrivals)
        arbs = self._signals("arb")
        arb = f"arb open {len(arbs)}"
        if arbs:
            best = max(arbs, key=lambda r: r["net"])
            arb += f" (best {best['buy']}>{best['sell']} {best['net']:+.2f} USD/oz)"
        counts = self.summary()["signals"]
        signals = " ".join(f"{k} {n}" for k, n in counts.items() if n) or "none"
        parts = [
            f"quotes {quotes} ({rate:.1f}/s)",
            f"spreads {view.spread_count}",
            arb,
            f"wide open {len(self._signals('wide'))}",
            f"signals {signals}",
        ]
        # what the full view shows of halts and levels, for a log or a pipe
        halted = sorted({f"{r['venue']}/{r['instrument']}" for r in self._signals("halt")})
        if halted:
            parts.append(f"halted {' '.join(halted)}")
        if view.crosses:
            last = view.crosses[-1].record
            parts.append(f"last cross {last['name']} {last['direction']} ({last['venue']})")
        if view.other:
            parts.append(f"other {view.other}")
        if self.alerts is not None:
            parts.append(self._alerts_status(self.alerts))
        return " | ".join(parts)

    @staticmethod
    def _alerts_status(report: AlertsReport) -> str:
        def named(alerts: Sequence[Alert]) -> str:
            names = sorted({a.name.removeprefix("Arbstream") for a in alerts})
            more = " ..." if len(names) > NAMES_IN_STATUS else ""
            return f" ({' '.join(names[:NAMES_IN_STATUS])}{more})" if names else ""

        firing = report.firing
        if report.ok:
            words = f"alerts firing {len(firing)}{named(firing)}"
        else:
            words = f"alerts unknown (Alertmanager: {report.error}; {len(firing)} when last seen)"
        if report.resolved:
            words += f", resolved lately {len(report.resolved)}{named(report.resolved)}"
        return words

    def render(self, now_ms: int) -> RenderableType:
        view = self.view
        title = Text(
            f"arbstream live  quotes {sum(view.quote_counts.values())}  spreads "
            f"{view.spread_count}  signals {sum(view.signal_counts.values())}  other "
            f"{view.other}",
            style="bold",
        )
        parts: list[RenderableType] = [title]
        if self.alerts is not None:
            parts.append(self._alert_table(self.alerts))
        parts += [self._spread_table(), self._arb_table()]
        backwardation: dict[tuple[str, ...], int] = {
            (r["instrument"], r["spot"], r["future"]): r.get("opened_ts") or r["ts"]
            for r in self._signals("basis")
        }
        if view.basis or backwardation:  # market structure: only once it is seen
            basis: dict[tuple[str, ...], dict[str, Any]] = {
                (r["instrument"], r["spot"], r["future"]): {
                    f: number(r.get(f))
                    for f in ("basis", "basis_bps", "days", "carry", "lease_rate")
                }
                for r in (i.record for i in view.basis.values())
            }
            parts.append(basis_table(basis, backwardation, self._clock_age))
        if view.delivery:
            parts.append(delivery_table(self._delivery(), self._clock_age))
        if view.crosses:
            parts.append(self._cross_table())
        parts += [self._wide_table(), self._venue_table(now_ms)]
        if view.fx:
            mids = sorted((p, (i.record["bid"] + i.record["ask"]) / 2) for p, i in view.fx.items())
            parts.append(Text("FX mid  " + "  ".join(f"{p} {m:.4f}" for p, m in mids), style="dim"))
        return Group(*parts)

    def _delivery(self) -> dict[tuple[str, ...], Delivery]:
        out: dict[tuple[str, ...], Delivery] = {}
        for item in self.view.delivery.values():
            r = item.record
            opened = None if r["event"] == "close" else r.get("opened_ts") or r["ts"]
            coverage, registered, interest = (
                number(r.get(f)) or 0.0 for f in ("coverage", "registered", "open_interest")
            )
            out[r["instrument"], r["venue"]] = Delivery(coverage, registered, interest, opened)
        return out

    def _spread_table(self) -> Table:
        table = new_table("Spreads (a - b, USD/oz)")
        table.add_column("pair")
        for col in ("spread", "bps", *map(window_label, self._windows), "age"):
            table.add_column(col, justify="right")
        records = sorted(
            (i.record for i in self.view.spreads.values()),
            key=lambda r: (r["instrument"], r["a"], r["b"]),
        )
        for r in records[:MAX_ROWS]:
            windows = r.get("windows")
            zs = []
            for w in self._windows:
                stats = windows.get(str(w)) if isinstance(windows, dict) else None
                z = number(stats.get("z")) if isinstance(stats, dict) else None
                zs.append(Text("" if z is None else f"{z:+.2f}", style=z_style(z)))
            table.add_row(
                f"{r['instrument']} {r['a']}/{r['b']}",
                signed(r["spread"], "+.3f"),
                signed(r["spread_bps"], "+.1f"),
                *zs,
                age(self._clock_age(r["instrument"], r["ts"])),
            )
        footer(table, len(records), "none yet")
        return table

    def _arb_table(self) -> Table:
        table = new_table("Open arbitrage (net USD/oz)")
        table.add_column("route")
        table.add_column("instrument")
        for col in ("net", "net bps", "peak", "age"):
            table.add_column(col, justify="right")
        arbs = sorted(
            self._signals("arb"), key=lambda r: (-r["net"], r["instrument"], r["buy"], r["sell"])
        )
        for r in arbs[:MAX_ROWS]:
            opened = r.get("opened_ts")
            table.add_row(
                f"{r['buy']}>{r['sell']}",
                r["instrument"],
                signed(r["net"]),
                signed(number(r.get("net_bps")), "+.1f"),
                signed(number(r.get("peak_net"))),
                age(self._clock_age(r["instrument"], opened if type(opened) is int else r["ts"])),
            )
        footer(table, len(arbs), "none open")
        return table

    def _cross_table(self) -> Table:
        """The last level crosses, newest first."""
        table = new_table("Level crosses (mid USD/oz)")
        for col in ("level", "instrument", "venue", "direction"):
            table.add_column(col)
        for col in ("price", "mid", "age"):
            table.add_column(col, justify="right")
        crosses = list(self.view.crosses)[::-1]
        for r in (item.record for item in crosses[:CROSSES_SHOWN]):
            arrow = "↑ up" if r["direction"] == "up" else "↓ down"
            table.add_row(
                r["name"],
                r["instrument"],
                r["venue"],
                Text(arrow, style="green" if r["direction"] == "up" else "red"),
                f"{r['price']:.2f}",
                f"{r['mid']:.2f}",
                age(self._clock_age(r["instrument"], r["ts"])),
            )
        footer(table, min(len(crosses), CROSSES_SHOWN), "none yet")
        return table

    def _alert_table(self, report: AlertsReport) -> Table:
        """What the Alertmanager holds: critical first; inhibited ones dimmed."""
        title = f"Alerts (Alertmanager {report.source})"
        if not report.ok:
            title = f"Alerts: the Alertmanager does not answer ({report.error}); as last seen"
        table = new_table(title)
        for col in ("severity", "alert", "subject", "summary"):
            table.add_column(col)
        shown = [*report.alerts, *report.resolved]
        for alert in shown[:MAX_ROWS]:
            state = (
                "(resolved) " if alert.resolved_at is not None
                else "(inhibited) " if alert.inhibited_by
                else ""
            )  # fmt: skip
            style = "dim" if state else ""
            severity = "red bold" if alert.severity == "critical" else "yellow"
            table.add_row(
                Text(alert.severity, style=style or severity),
                Text(alert.name.removeprefix("Arbstream"), style=style),
                Text(" ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())), style=style),
                Text(state + alert.summary, style=style),
            )
        footer(table, len(shown), "none firing")
        return table

    def _wide_table(self) -> Table:
        table = new_table("Wide markets")
        table.add_column("venue")
        table.add_column("instrument")
        for col in ("bid", "ask", "width bps"):
            table.add_column(col, justify="right")
        wides = sorted(self._signals("wide"), key=lambda r: (r["instrument"], r["venue"]))
        for r in wides[:MAX_ROWS]:
            table.add_row(
                r["venue"], r["instrument"], repr(r["bid"]), repr(r["ask"]), f"{r['width_bps']:.0f}"
            )
        footer(table, len(wides), "none open")
        return table

    def _venue_table(self, now_ms: int) -> Table:
        """Each venue's count, rate, latest quote (of any instrument) and status: the
        engine's rule (live, stale, closed), as the gateway's page shows it."""
        window_s = self._rate_window_ms / 1000
        table = new_table("Venues (last quote as received)")
        table.add_column("venue")
        table.add_column("quotes", justify="right")
        table.add_column(f"ticks/s ({window_s:g}s)", justify="right")
        table.add_column("instrument")
        for col in ("bid", "ask", "clock age", "wall age"):
            table.add_column(col, justify="right")
        table.add_column("status")
        view = self.view
        latest: dict[str, dict[str, Any]] = {}
        for (_, venue), item in view.quotes.items():
            if venue not in latest or item.record["ts"] > latest[venue]["ts"]:
                latest[venue] = item.record
        status = {
            s["venue"]: s["status"]
            for s in view.venue_status(now_ms / 1000)
            if s["instrument"] in (None, (latest.get(s["venue"]) or {}).get("instrument"))
        }
        for venue, count in view.quote_counts.items():
            q = latest.get(venue)
            if q is None:
                table.add_row(venue, str(count), *["-"] * 6, status.get(venue, "-"))
                continue
            recv_ts = q.get("recv_ts")
            wall = age(now_ms - recv_ts) if type(recv_ts) is int else ""
            table.add_row(
                venue,
                str(count),
                f"{self._rate(venue, now_ms):.1f}/s",
                q["instrument"],
                repr(q["bid"]),
                repr(q["ask"]),
                age(self._clock_age(q["instrument"], q["ts"])),
                wall,
                status.get(venue, "-"),
            )
        return table
