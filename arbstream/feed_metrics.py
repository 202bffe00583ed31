"""The feed process's Prometheus metrics, served on ``/metrics`` (README "Operating
arbstream"). Read at scrape time from the counters the connections and the sink keep
(``FeedStats``, ``SinkStats``), so a frame costs nothing more. The only label is the
feed's name from the config: a venue sending symbols the config does not map produces
bad frames of that feed, never new series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from arbstream.agents.metrics import process_registry
from arbstream.agents.sink import KafkaSink
from arbstream.feeds.connection import FeedConnection

#: (metric, help, FeedStats attribute) of the per-feed counters.
_FEED_COUNTERS = (
    ("arbstream_feed_frames", "WebSocket frames received.", "frames"),
    ("arbstream_feed_records", "Records parsed and handed to the Kafka sink.", "records"),
    ("arbstream_feed_bad_frames", "Frames that could not be parsed (unknown symbols too).",
     "bad_frames"),
    ("arbstream_feed_duplicates", "Duplicate records dropped (replays after a reconnect).",
     "duplicates"),
    ("arbstream_feed_reconnects", "Connection attempts after the first, failed ones too.",
     "reconnects"),
    ("arbstream_feed_seq_gaps", "Sequence gaps (protocols with sequence numbers).", "seq_gaps"),
)  # fmt: skip


class FeedMetrics(Collector):
    """The registry of one feed process."""

    def __init__(
        self,
        connections: Sequence[FeedConnection],
        sink: KafkaSink,
        feeds_connected: Callable[[], bool],
    ) -> None:
        self._connections = connections
        self._sink = sink
        self._started = time.time()
        self._feeds_connected = feeds_connected
        self.registry = process_registry(self)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "arbstream_feed_connected", "1 while the feed's WebSocket is open.", labels=["feed"]
        )
        age = GaugeMetricFamily(
            "arbstream_feed_last_frame_age_seconds",
            "Wall-clock seconds since the feed's last frame (since start if none yet).",
            labels=["feed"],
        )
        idle = GaugeMetricFamily(
            "arbstream_feed_idle_timeout_seconds",
            "The feed's idle_timeout_s: silent this long, it reconnects.",
            labels=["feed"],
        )
        now = time.time()
        for c in self._connections:
            stats = c.stats
            connected.add_metric([c.name], 1.0 if stats.connected else 0.0)
            last = stats.last_frame_at if stats.last_frame_at is not None else self._started
            age.add_metric([c.name], max(0.0, now - last))
            idle.add_metric([c.name], c.settings.idle_timeout_s)
        yield from (connected, age, idle)
        for metric, documentation, attribute in _FEED_COUNTERS:
            family = CounterMetricFamily(metric, documentation, labels=["feed"])
            for c in self._connections:
                family.add_metric([c.name], getattr(c.stats, attribute))
            yield family
        ready = self._feeds_connected()
        yield GaugeMetricFamily(
            "arbstream_feeds_ready", "1 while every feed is connected.", value=float(ready)
        )
        sink = self._sink.stats
        yield GaugeMetricFamily(
            "arbstream_feed_kafka_connected",
            "1 while the Kafka producer is up and the broker answers.",
            value=1.0 if sink.connected else 0.0,
        )
        yield CounterMetricFamily(
            "arbstream_feed_kafka_sent", "Records acknowledged by Kafka.", value=sink.sent
        )
        yield CounterMetricFamily(
            "arbstream_feed_kafka_send_errors",
            "Failed sends of a chunk of records (each is retried).",
            value=sink.send_errors,
        )
        yield CounterMetricFamily(
            "arbstream_feed_kafka_dropped",
            "Oldest records dropped from the full buffer while Kafka was unreachable.",
            value=sink.dropped,
        )
        yield GaugeMetricFamily(
            "arbstream_feed_buffer_records",
            "Records waiting in the buffer for Kafka.",
            value=float(len(self._sink.buffer)),
        )
        yield GaugeMetricFamily(
            "arbstream_feed_buffer_capacity",
            "The buffer's bound (producer.buffer_max_records).",
            value=float(self._sink.buffer.capacity),
        )
