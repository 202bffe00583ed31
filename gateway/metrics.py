"""The gateway's Prometheus metrics, read from its hub and reader at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from arbstream.agents.topic_reader import TopicReader
from arbstream.gateway.auth import RequestAuth
from arbstream.gateway.clients import Hub


class GatewayCollector(Collector):
    """``arbstream_gateway_*``: clients, messages, evictions, queues, records read."""

    def __init__(self, hub: Hub, reader: TopicReader, auth: RequestAuth) -> None:
        self._hub = hub
        self._reader = reader
        self._auth = auth

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        clients = GaugeMetricFamily(
            "arbstream_gateway_clients", "Connected clients.", labels=["transport"]
        )
        for transport in ("websocket", "sse"):
            n = sum(1 for c in hub.clients if c.transport == transport)
            clients.add_metric([transport], n)
        yield clients
        yield CounterMetricFamily(
            "arbstream_gateway_messages_sent", "Messages written to clients.", value=hub.sent
        )
        yield CounterMetricFamily(
            "arbstream_gateway_messages_dropped",
            "Messages queued for clients that were evicted before they were written.",
            value=hub.dropped,
        )
        yield CounterMetricFamily(
            "arbstream_gateway_clients_evicted",
            "Clients disconnected for not keeping up (WebSocket close 1013).",
            value=hub.evictions,
        )
        yield GaugeMetricFamily(
            "arbstream_gateway_queue_depth",
            "Messages waiting in the fullest client queue.",
            value=hub.queue_depth(),
        )
        yield GaugeMetricFamily(
            "arbstream_gateway_queue_size", "Per-client queue bound.", value=hub.queue_size
        )
        yield CounterMetricFamily(
            "arbstream_gateway_records",
            "Committed records read from Kafka and applied.",
            value=self._reader.records,
        )
        refused = CounterMetricFamily(
            "arbstream_gateway_refused",
            "Requests to /ws, /events and /session refused, by reason: origin, "
            "no_credentials, bad_token, bad_session, rate_limited, full, client_full.",
            labels=["reason"],
        )
        for reason, n in sorted(self._auth.refused.items()):
            refused.add_metric([reason], n)
        yield refused
        yield GaugeMetricFamily(
            "arbstream_gateway_caught_up",
            "1 once the topics were read to their ends at start.",
            value=1.0 if self._reader.caught_up else 0.0,
        )


def gateway_registry(hub: Hub, reader: TopicReader, auth: RequestAuth) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(hub, reader, auth))
    return registry
