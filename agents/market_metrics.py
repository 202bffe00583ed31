"""The worker's market-structure gauges (docs/operations.md, "Metrics"): trading sessions,
basis and lease rates, delivery stress, halted venues and price levels. Read at scrape
time from a view of the engines (streams/observe.py), like the rest of agents/metrics.py,
which yields these."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from arbstream.streams.config import EngineConfig, Level
from arbstream.streams.observe import Observation


def venues_open(engine: EngineConfig, clock: int) -> Iterator[Metric]:
    """``arbstream_venue_open``: each venue's calendar at ``clock`` (1 without one)."""
    family = GaugeMetricFamily(
        "arbstream_venue_open",
        "1 while the venue is inside its trading sessions (always, without sessions), "
        "on the newest instrument clock.",
        labels=["venue"],
    )
    if clock >= 0:  # no quote yet: no clock to ask at
        for venue, calendar in sorted(engine.calendars.items()):
            is_open = calendar is None or calendar.is_open(clock)
            family.add_metric([venue], 1.0 if is_open else 0.0)
    yield family


def basis_families(observed: Observation) -> Iterator[Metric]:
    """The basis gauges: figures while both legs are fresh, the signal always."""
    labels = ["instrument", "spot", "future"]
    is_open = GaugeMetricFamily(
        "arbstream_basis_open",
        "1 while the pair's backwardation signal is open (future below spot).",
        labels=labels,
    )
    figures = {
        "basis_bps": GaugeMetricFamily(
            "arbstream_basis_bps",
            "Basis (future mid - spot mid) in bps of the spot mid (fresh, open legs only).",
            labels=labels,
        ),
        "lease_rate": GaugeMetricFamily(
            "arbstream_basis_lease_rate",
            "Implied lease rate, annualised (0.35 = 35%), from the basis and the "
            "config's basis.rate (fresh, open legs, at least a day to expiry).",
            labels=labels,
        ),
        "days": GaugeMetricFamily(
            "arbstream_basis_days",
            "Days from the instrument clock to the future's expiry (fresh, open legs).",
            labels=labels,
        ),
    }
    for b in observed.basis:
        values = [b.instrument, b.spot, b.future]
        is_open.add_metric(values, 1.0 if b.open else 0.0)
        for field, family in figures.items():
            value = None if b.figures is None else b.figures[field]
            if value is not None:
                family.add_metric(values, value)
    yield is_open
    yield from figures.values()


def delivery_families(engine: EngineConfig, observed: Observation) -> Iterator[Metric]:
    """Delivery coverage and stress per venue, and the config's open ratio."""
    yield GaugeMetricFamily(
        "arbstream_delivery_open_ratio",
        "The config's delivery.open_ratio: coverage below it opens delivery stress.",
        value=engine.delivery.open_ratio,
    )
    coverage = GaugeMetricFamily(
        "arbstream_delivery_coverage",
        "Registered stock / open interest, from the venue's latest stock record.",
        labels=["instrument", "venue"],
    )
    is_open = GaugeMetricFamily(
        "arbstream_delivery_open",
        "1 while the venue's delivery stress signal is open.",
        labels=["instrument", "venue"],
    )
    for d in observed.delivery:
        coverage.add_metric([d.instrument, d.venue], d.coverage)
        is_open.add_metric([d.instrument, d.venue], 1.0 if d.open else 0.0)
    yield from (coverage, is_open)


def halt_families(observed: Observation) -> Iterator[Metric]:
    """``arbstream_venue_halted``: 1 while a venue is halted for an instrument."""
    family = GaugeMetricFamily(
        "arbstream_venue_halted",
        "1 while the venue is halted for the instrument (its latest status record), else 0.",
        labels=["venue", "instrument"],
    )
    for h in observed.halts:
        family.add_metric([h.venue, h.instrument], 1.0 if h.halted else 0.0)
    yield family


def level_families(
    observed: Observation, crosses: dict[tuple[str, str, str], int], levels: Iterable[Level]
) -> Iterator[Metric]:
    """Each level's side and its crosses by direction (every configured level, from 0)."""
    side = GaugeMetricFamily(
        "arbstream_level_side",
        "1 while the watched mid is above the level, -1 below (once it is known).",
        labels=["instrument", "name"],
    )
    for lv in observed.levels:
        side.add_metric([lv.instrument, lv.name], 1.0 if lv.side == "above" else -1.0)
    yield side
    counts = {(lv.instrument, lv.name, d): 0 for lv in levels for d in ("up", "down")}
    counts.update(crosses)
    family = CounterMetricFamily(
        "arbstream_level_crosses",
        "Level signals published, by level and direction.",
        labels=["instrument", "name", "direction"],
    )
    for labels, n in sorted(counts.items()):
        family.add_metric(list(labels), n)
    yield family
