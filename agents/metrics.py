"""The worker's Prometheus metrics, served on ``/metrics`` (README "Operating arbstream").

Almost everything is read at scrape time, not counted per record: the engines' counters
(streams/counters.py) and a read-only view of their state (streams/observe.py), the
consumer's positions, and batch figures the partitions report once per transaction. A
scrape costs O(instruments x venues + routes); a record costs a dict increment.

Label values come from the config only. An instrument that is not one of
``config.metric_instruments`` is counted under ``instrument="other"`` and has no gauges;
venues the config does not know never get this far (the engine rejects them as
``unknown_venue``). So nothing on the ticks topic can grow a label set.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from arbstream.agents.market_metrics import (
    basis_families,
    delivery_families,
    halt_families,
    level_families,
    venues_open,
)
from arbstream.agents.settings import Deployment
from arbstream.streams.counters import EngineCounters
from arbstream.streams.engine import Engine
from arbstream.streams.observe import Observation, QuoteView, observe
from arbstream.streams.signals import SIGNAL_EVENTS
from arbstream.streams.validation import REASONS

#: Seconds from a tick's Kafka timestamp to the commit of its outputs: 0.5 ms to 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Records per transaction, up to the worker's batch_max.
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
#: Seconds to flush and commit one transaction.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds of one phase of a transaction: 0.1 ms to 2.5 s.
PHASE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: The phases of a transaction, in order (agents/partition.py times them).
PHASES = ("wait", "engine", "flush", "commit")


@dataclass(frozen=True, slots=True)
class TransactionTimes:
    """Seconds in each phase of one transaction: ``wait`` from the Kafka timestamp of the
    batch's oldest record to the batch's start (what a record waits before its
    transaction begins: fetching, and the transaction in flight); ``engine`` evaluates
    the batch and queues its records; ``flush`` waits until Kafka has acknowledged every
    record; ``commit`` commits (the coordinator writes the transaction's markers after
    it answers). The group's offset, when due, is committed after, off this path."""

    wait: float
    engine: float
    flush: float
    commit: float


class LatencyHistogram:
    """A histogram observed a batch at a time.

    ``prometheus_client.Histogram.observe`` costs about a microsecond per value under its
    lock; a batch of a few thousand records instead sorts its timestamps (nearly sorted
    already) and bisects once per bucket.
    """

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.bounds_s = bounds_s
        self._bounds_ms = [1000.0 * b for b in bounds_s]
        self.cumulative = [0] * len(bounds_s)  # values <= each bound
        self.count = 0
        self.sum_s = 0.0

    def observe_batch(self, now_ms: float, timestamps_ms: Sequence[float]) -> None:
        """Observe ``now_ms - t`` for every t (a latency <= b when t >= now - b)."""
        if not timestamps_ms:
            return
        ts = sorted(timestamps_ms)
        n = len(ts)
        for i, bound in enumerate(self._bounds_ms):
            self.cumulative[i] += n - bisect_left(ts, now_ms - bound)
        self.count += n
        # A producer clock ahead of ours gives negative latencies: they count as 0 (in
        # the lowest bucket above, and nothing in the sum).
        past = bisect_right(ts, now_ms)
        self.sum_s += (now_ms * past - sum(ts[:past])) / 1000.0

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        buckets = [(_bound(b), c) for b, c in zip(self.bounds_s, self.cumulative, strict=True)]
        buckets.append(("+Inf", self.count))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum_s)


class BatchStats:
    """Batches since the last report: records, time in the engine, time to commit."""

    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self.engine_s = 0.0
        self.commit_s = 0.0
        self.commit_max_s = 0.0

    def add(self, records: int, engine_s: float, commit_s: float) -> None:
        self.batches += 1
        self.records += records
        self.engine_s += engine_s
        self.commit_s += commit_s
        self.commit_max_s = max(self.commit_max_s, commit_s)

    def report(self) -> str:
        n = max(1, self.batches)
        return (
            f"{self.batches} batches, {self.records} records, "
            f"{self.records / n:.0f} per batch, engine {1000 * self.engine_s / n:.1f} ms, "
            f"commit {1000 * self.commit_s / n:.1f} ms (max {1000 * self.commit_max_s:.1f})"
        )


class BatchMetrics:
    """What each committed transaction reports (agents/partition.py calls ``committed``):
    its size, engine and commit times and latencies, and the engine's counts of the work
    it committed. The same report feeds the Prometheus histograms and the batch figures
    the worker logs (``window``, which the worker takes and replaces)."""

    def __init__(self, config: Deployment, registry: CollectorRegistry) -> None:
        self.latency = LatencyHistogram(LATENCY_BUCKETS)
        #: Counts of committed work, keyed by label values (streams/counters.py).
        self.totals = EngineCounters()
        self._instruments = config.metric_instruments
        self._fx_pairs = config.fx_pairs
        self.window = BatchStats()  # since the worker last logged them
        self.records = 0  # committed since the start
        #: When the last transaction committed (epoch seconds; the start before the
        #: first): how long commits have stalled, for an operator's alert.
        self.last_commit_s = time.time()
        self._records = Histogram(
            "arbstream_batch_records",
            "Records (quotes, fx and rejected) per transaction.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._commit = Histogram(
            "arbstream_batch_commit_seconds",
            "Time to flush and commit one transaction.",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        phases = Histogram(
            "arbstream_transaction_phase_seconds",
            "Time in each phase of a committed transaction: wait (the batch's oldest record, "
            "from its Kafka timestamp to the batch's start), engine (evaluate the batch, "
            "queue its records), flush (until Kafka acknowledged every record), commit "
            "(until the coordinator logged it).",
            labelnames=["phase"],
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self._phases = [phases.labels(phase) for phase in PHASES]

    def committed(
        self,
        records: int,
        times: TransactionTimes | None,
        timestamps_ms: Sequence[float],
        engine: Engine,
        held: Sequence[tuple[float, Sequence[float]]] = (),
    ) -> None:
        """A transaction of ``records`` records committed: only now do the engine's
        counts of it become totals (a batch that aborts is redone by a rebuilt engine
        and counted then, once).

        ``timestamps_ms``: the Kafka timestamps of its own batch's records, whose latency
        runs to now; ``times``: that batch's phases (None: the transaction held no batch
        of its own). ``held``: quiet batches committed with it, each as (when it was
        evaluated, its timestamps): having no outputs, their latency runs to their
        evaluation, not to this commit, which they only waited for.
        """
        self.records += records
        self.last_commit_s = time.time()
        if times is None:
            self.window.records += records
        else:
            commit_s = times.flush + times.commit
            self.window.add(records, times.engine, commit_s)
            self._records.observe(records)
            self._commit.observe(commit_s)
            phases = (times.wait, times.engine, times.flush, times.commit)
            for phase, seconds in zip(self._phases, phases, strict=True):
                phase.observe(seconds)
        self.latency.observe_batch(time.time() * 1000.0, timestamps_ms)
        for evaluated_ms, held_ms in held:
            self.latency.observe_batch(evaluated_ms, held_ms)
        engine.counters.drain_into(self.totals, self._instruments, self._fx_pairs)


@dataclass(frozen=True)
class WorkerView:
    """What the collector reads from the worker at scrape time."""

    ready: Callable[[], bool]
    engines: Callable[[], Iterable[Engine]]
    lag: Callable[[], Mapping[int, int]]  # ticks partition -> records behind
    partitions: int  # of the ticks topic


def process_registry(collector: Collector) -> CollectorRegistry:
    """A registry with a process's own collector and prometheus-client's process, platform
    and GC collectors (``process_*``, ``python_*``): what every arbstream process serves
    on ``/metrics``."""
    registry = CollectorRegistry()
    for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, collector):
        registry.register(c)
    return registry


class WorkerMetrics(Collector):
    """The registry of one worker process: its own metrics and the process collectors."""

    def __init__(self, config: Deployment, ticks_topic: str, view: WorkerView) -> None:
        self.config = config
        self.ticks_topic = ticks_topic
        self.view = view
        self._instruments = sorted(config.metric_instruments)
        self.registry = process_registry(self)
        self.batches = BatchMetrics(config, self.registry)

    def describe(self) -> Iterable[Metric]:
        return []  # names are only known at collect time; skip the registry's dry run

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield self.batches.latency.family(
            "arbstream_processing_latency_seconds",
            "From a tick's Kafka timestamp to the commit of the transaction with its outputs.",
        )
        stale = GaugeMetricFamily(
            "arbstream_venue_stale_seconds",
            "The config's staleness threshold of each venue.",
            labels=["venue"],
        )
        for venue in self.config.venue_names:
            stale.add_metric([venue], self.config.stale_ms[venue] / 1000.0)
        yield stale
        view = self.view
        yield _gauge("arbstream_worker_ready", "1 once partitions are loaded.", float(view.ready()))
        yield _gauge(
            "arbstream_last_commit_timestamp_seconds",
            "When the worker's last transaction committed (its start, before the first).",
            self.batches.last_commit_s,
        )
        lag = view.lag()
        engines = list(view.engines())
        yield _gauge("arbstream_assigned_partitions", "Ticks partitions owned.", len(engines))
        yield _gauge(
            "arbstream_ticks_partitions", "Partitions of the ticks topic.", view.partitions
        )
        lag_family = GaugeMetricFamily(
            "arbstream_consumer_lag",
            "Records in an assigned ticks partition not yet evaluated.",
            labels=["topic", "partition"],
        )
        for partition, behind in sorted(lag.items()):
            lag_family.add_metric([self.ticks_topic, str(partition)], float(behind))
        yield lag_family
        observed = Observation()
        for engine in engines:
            observed.add(observe(engine, self._instruments))
        yield from self._quote_ages(observed.quotes)
        yield from venues_open(self.config, observed.clock)
        yield from self._spreads(observed)
        yield from self._routes(observed)
        yield from basis_families(observed)
        yield from delivery_families(self.config, observed)
        yield from halt_families(observed)
        levels = [lv for per_venue in self.config.levels.values() for lv in per_venue]
        yield from level_families(observed, self.batches.totals.crosses, levels)

    # -- families -------------------------------------------------------------------------

    def _counters(self) -> Iterator[Metric]:
        totals = self.batches.totals
        ticks = dict.fromkeys(
            ((v, i) for v in self.config.venue_names for i in self._instruments), 0
        )
        ticks.update(totals.quotes)  # already keyed by label values
        family = CounterMetricFamily(
            "arbstream_ticks", "Accepted quotes.", labels=["venue", "instrument"]
        )
        for labels, n in sorted(ticks.items()):
            family.add_metric(list(labels), n)
        yield family

        fx = dict.fromkeys(sorted(self.config.fx_pairs), 0)
        fx.update(totals.fx)
        family = CounterMetricFamily(
            "arbstream_fx",
            "FX records applied; every ticks partition carries every FX record, so each "
            "counts once per partition.",
            labels=["pair"],
        )
        for pair, n in fx.items():
            family.add_metric([pair], n)
        yield family

        family = CounterMetricFamily(
            "arbstream_rejected", "Records sent to the dlq.", labels=["reason"]
        )
        for reason in REASONS:
            family.add_metric([reason], totals.rejected.get(reason, 0))
        yield family

        family = CounterMetricFamily(
            "arbstream_signals", "Signal records published.", labels=["kind", "event"]
        )
        for kind_event in SIGNAL_EVENTS:
            family.add_metric(list(kind_event), totals.signals.get(kind_event, 0))
        yield family

    def _quote_ages(self, quotes: list[QuoteView]) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "arbstream_quote_age_seconds",
            "Age of a venue's latest quote: behind the instrument's clock (its newest tick "
            'from any venue), clock="instrument", or behind the wall clock, clock="wall".',
            labels=["venue", "instrument", "clock"],
        )
        newest: dict[tuple[str, str], QuoteView] = {}
        for q in quotes:  # an instrument lives in one partition; keep the newest anyway
            seen = newest.get((q.venue, q.instrument))
            if seen is None or q.ts > seen.ts:
                newest[q.venue, q.instrument] = q
        now_ms = time.time() * 1000.0
        for (venue, instrument), q in sorted(newest.items()):
            family.add_metric([venue, instrument, "instrument"], q.behind_ms / 1000.0)
            family.add_metric([venue, instrument, "wall"], (now_ms - q.ts) / 1000.0)
        yield family

    def _spreads(self, observed: Observation) -> Iterator[Metric]:
        usd = GaugeMetricFamily(
            "arbstream_spread_usd",
            "Mid spread A - B in USD/oz (while both legs are fresh).",
            labels=["instrument", "pair"],
        )
        bps = GaugeMetricFamily(
            "arbstream_spread_bps",
            "Mid spread A - B in bps of B's mid (while both legs are fresh).",
            labels=["instrument", "pair"],
        )
        zscore = GaugeMetricFamily(
            "arbstream_spread_zscore",
            "z-score of the spread in each rolling window (window length in ms).",
            labels=["instrument", "pair", "window"],
        )
        for s in observed.spreads:
            usd.add_metric([s.instrument, s.pair], s.spread)
            bps.add_metric([s.instrument, s.pair], s.spread_bps)
            for window, z in s.z.items():
                zscore.add_metric([s.instrument, s.pair, window], z)
        yield from (usd, bps, zscore)

    def _routes(self, observed: Observation) -> Iterator[Metric]:
        is_open = GaugeMetricFamily(
            "arbstream_arb_open",
            "1 while the route's arbitrage is open.",
            labels=["instrument", "route"],
        )
        net = GaugeMetricFamily(
            "arbstream_arb_net_usd",
            "Net USD/oz of the route now: sell bid - buy ask - costs (fresh legs only).",
            labels=["instrument", "route"],
        )
        open_s = GaugeMetricFamily(
            "arbstream_arb_open_seconds",
            "How long the route's arbitrage has been open, on the instrument clock.",
            labels=["instrument", "route"],
        )
        size = GaugeMetricFamily(
            "arbstream_arb_size_oz",
            "Troy ounces the route can move now at the quoted sizes: min(buy venue's ask "
            "size, sell venue's bid size) in oz (fresh legs that quote sizes only).",
            labels=["instrument", "route"],
        )
        for r in observed.routes:
            labels = [r.instrument, r.route]
            is_open.add_metric(labels, 1.0 if r.open else 0.0)
            open_s.add_metric(labels, r.open_ms / 1000.0)
            if r.net is not None:
                net.add_metric(labels, r.net)
            if r.size_oz is not None:
                size.add_metric(labels, r.size_oz)
        yield from (is_open, net, open_s, size)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _bound(b: float) -> str:
    return repr(float(b))
