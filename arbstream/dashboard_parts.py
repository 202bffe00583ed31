"""The pieces of the demo's terminal view (arbstream.dashboard): its basis and
delivery tables and the formatting of cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

#: Rows per table, so the view fits a 100x40 terminal.
MAX_ROWS = 12


def age(ms: int | None) -> str:
    # a negative age only means the two topics are consumed slightly out of step
    return "-" if ms is None else f"{max(ms, 0) / 1000:.1f}s"


def signed(value: float | None, fmt: str = "+.2f") -> Text:
    if value is None:
        return Text("")
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(format(value, fmt), style=style)


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}%"


def window_label(ms: int) -> str:
    if ms % 60_000 == 0:
        return f"z {ms // 60_000}m"
    return f"z {ms / 1000:g}s"


def new_table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )


@dataclass
class Delivery:
    """The latest delivery signal of one venue: its figures, and since when it is open."""

    coverage: float
    registered: float
    open_interest: float
    opened_ts: int | None  # None: closed


#: How many ms behind its instrument's clock an event time is (None: unknown).
ClockAge = Callable[[str, int], int | None]


def basis_table(
    basis: dict[tuple[str, ...], dict[str, Any]],
    backwardation: dict[tuple[str, ...], int],
    clock_age: ClockAge,
) -> Table:
    """The latest basis per pair, with its backwardation signal and since when."""
    table = new_table("Basis (future - spot, USD/oz)")
    table.add_column("pair")
    for col in ("basis", "bps", "days", "carry", "lease", "backwardation"):
        table.add_column(col, justify="right")
    keys = sorted(set(basis) | set(backwardation))
    for instrument, spot, future in keys[:MAX_ROWS]:
        b = basis.get((instrument, spot, future), {})
        opened = backwardation.get((instrument, spot, future))
        table.add_row(
            f"{instrument} {spot}/{future}",
            signed(b.get("basis"), "+.3f"),
            signed(b.get("basis_bps"), "+.1f"),
            "" if b.get("days") is None else f"{b['days']:.1f}",
            percent(b.get("carry")),
            percent(b.get("lease_rate")),
            "" if opened is None else "open " + age(clock_age(instrument, opened)),
        )
    footer(table, len(keys), "none yet")
    return table


def delivery_table(delivery: dict[tuple[str, ...], Delivery], clock_age: ClockAge) -> Table:
    """Delivery stress per venue: registered stock against open interest at its latest
    signal, and since when it is open."""
    table = new_table("Delivery stress (registered / open interest)")
    table.add_column("venue")
    for col in ("coverage", "registered", "open interest", "stress"):
        table.add_column(col, justify="right")
    keys = sorted(delivery)
    for instrument, venue in keys[:MAX_ROWS]:
        d = delivery[instrument, venue]
        opened = d.opened_ts
        table.add_row(
            f"{instrument} {venue}",
            f"{d.coverage * 100:.1f}%",
            f"{d.registered:,.0f}",
            f"{d.open_interest:,.0f}",
            "closed" if opened is None else "open " + age(clock_age(instrument, opened)),
        )
    footer(table, len(keys), "none yet")
    return table


def z_style(z: float | None) -> str:
    return "bold yellow" if z is not None and abs(z) >= 2 else ""


def footer(table: Table, total: int, empty: str) -> None:
    """A dim row saying the table is empty, or how many rows did not fit."""
    if total == 0:
        table.add_row(Text(empty, style="dim"))
    elif total > MAX_ROWS:
        table.add_row(Text(f"... {total - MAX_ROWS} more", style="dim"))
