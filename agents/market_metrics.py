"""The worker's market-structure gauges (README "Metrics"): trading sessions, basis and
lease rates, delivery stress. Read at scrape time from a view of the engines
(streams/observe.py), like the rest of agents/metrics.py, which yields these."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from arbstream.streams.config import EngineConfig
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
