"""The metric names of the metrics contract (docs/operations.md, "Metrics"), as exposed on /metrics.

Counters carry their ``_total`` suffix as in the exposition; histograms are listed by their
base name (the exposition adds ``_bucket``, ``_sum`` and ``_count``). The default
``process_*`` / ``python_*`` collectors are not listed. Every ``arbstream_*`` name that
``deploy/prometheus/alerts.yml`` (or a dashboard) uses must be in one of these sets, and the
processes must export every name here.
"""

from __future__ import annotations

#: Worker metrics of market structure: exported only when the config and the data have
#: them (basis pairs, stock records, quote sizes).
MARKET_METRICS: frozenset[str] = frozenset(
    {
        "arbstream_basis_bps",
        "arbstream_basis_lease_rate",
        "arbstream_basis_days",
        "arbstream_basis_open",
        "arbstream_delivery_coverage",
        "arbstream_delivery_open",
        "arbstream_delivery_open_ratio",
        "arbstream_arb_size_oz",
    }
)

#: Worker metrics of price levels: exported only when the config has ``[[levels]]``.
LEVEL_METRICS: frozenset[str] = frozenset({"arbstream_level_side", "arbstream_level_crosses_total"})

#: Worker and feeds: their topics' partitions as the cluster's metadata says
#: (agents/kafka/health.py), once it has answered.
KAFKA_METRICS: frozenset[str] = frozenset(
    {
        "arbstream_kafka_offline_partitions",
        "arbstream_kafka_under_replicated_partitions",
    }
)

#: Worker: /metrics on ARBSTREAM_WEB_PORT (default 6066), Prometheus job "arbstream-worker".
WORKER_METRICS: frozenset[str] = (
    MARKET_METRICS
    | LEVEL_METRICS
    | KAFKA_METRICS
    | frozenset(
        {
            "arbstream_last_commit_timestamp_seconds",
            "arbstream_ticks_total",
            "arbstream_fx_total",
            "arbstream_rejected_total",
            "arbstream_quote_age_seconds",
            "arbstream_venue_stale_seconds",
            "arbstream_venue_open",
            "arbstream_venue_halted",
            "arbstream_spread_usd",
            "arbstream_spread_bps",
            "arbstream_spread_zscore",
            "arbstream_arb_open",
            "arbstream_arb_net_usd",
            "arbstream_arb_open_seconds",
            "arbstream_signals_total",
            "arbstream_processing_latency_seconds",
            "arbstream_consumer_lag",
            "arbstream_batch_records",
            "arbstream_batch_commit_seconds",
            "arbstream_transaction_phase_seconds",
            "arbstream_worker_ready",
            "arbstream_assigned_partitions",
            "arbstream_ticks_partitions",
        }
    )
)

#: Feeds: /metrics on ARBSTREAM_FEED_METRICS_PORT (default 9464), job "arbstream-feeds".
FEED_METRICS: frozenset[str] = KAFKA_METRICS | frozenset(
    {
        "arbstream_feed_connected",
        "arbstream_feed_frames_total",
        "arbstream_feed_records_total",
        "arbstream_feed_bad_frames_total",
        "arbstream_feed_duplicates_total",
        "arbstream_feed_reconnects_total",
        "arbstream_feed_seq_gaps_total",
        "arbstream_feed_last_frame_age_seconds",
        "arbstream_feed_idle_timeout_seconds",
        "arbstream_feed_kafka_connected",
        "arbstream_feed_kafka_sent_total",
        "arbstream_feed_kafka_send_errors_total",
        "arbstream_feed_kafka_dropped_total",
        "arbstream_feed_buffer_records",
        "arbstream_feed_buffer_capacity",
        "arbstream_feeds_ready",
    }
)

#: The histograms among them (exposed as ``<name>_bucket``, ``<name>_sum``, ``<name>_count``).
HISTOGRAMS: frozenset[str] = frozenset(
    {
        "arbstream_processing_latency_seconds",
        "arbstream_batch_records",
        "arbstream_batch_commit_seconds",
        "arbstream_transaction_phase_seconds",
    }
)
