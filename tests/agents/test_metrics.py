"""The worker's metrics as Prometheus reads them: names, label values, bounded sets."""

from __future__ import annotations

import random
import tomllib

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from shared_paths import SCENARIOS

from agents.metrics import LATENCY_BUCKETS, LatencyHistogram, WorkerMetrics, WorkerView
from streams.config import Config, parse_config
from streams.counters import EngineCounters
from streams.engine import Engine
from streams.validation import REASONS

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(metrics: WorkerMetrics) -> Samples:
    out: Samples = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _worker(config: Config, engines: list[Engine], counters: EngineCounters) -> WorkerMetrics:
    metrics = WorkerMetrics(config, counters, "arb.ticks")
    metrics.view = WorkerView(ready=lambda: True, engines=lambda: engines, lag=lambda: {0: 5, 3: 0})
    return metrics


def _config(instruments: list[str] | None = None) -> Config:
    """The scenario's config; it names no instrument, so XAG is "other" unless listed."""
    data = tomllib.loads((SCENARIO / "config.toml").read_text())
    if instruments is not None:
        data["metrics"] = {"instruments": instruments}
    return parse_config(data)


def _run_scenario(config: Config, counters: EngineCounters, lines: int | None = None) -> Engine:
    engine = Engine(config, counters=counters)
    for i, line in enumerate((SCENARIO / "ticks.jsonl").read_bytes().splitlines()[:lines], 1):
        engine.process(line, i)
    return engine


def test_every_metric_of_the_contract_is_exported_with_its_labels() -> None:
    config = _config(["XAG"])
    counters = EngineCounters()
    engine = _run_scenario(config, counters, 1500)
    samples = _scrape(_worker(config, [engine], counters))
    labels = {name: {tuple(sorted(lab)) for lab, _ in s} for name, s in samples.items()}
    assert labels["arbstream_ticks_total"] == {("instrument", "venue")}
    assert labels["arbstream_fx_total"] == {("pair",)}
    assert labels["arbstream_rejected_total"] == {("reason",)}
    assert labels["arbstream_quote_age_seconds"] == {("clock", "instrument", "venue")}
    assert labels["arbstream_venue_stale_seconds"] == {("venue",)}
    assert labels["arbstream_spread_usd"] == {("instrument", "pair")}
    assert labels["arbstream_spread_bps"] == {("instrument", "pair")}
    assert labels["arbstream_spread_zscore"] == {("instrument", "pair", "window")}
    for name in ("arb_open", "arb_net_usd", "arb_open_seconds"):
        assert labels[f"arbstream_{name}"] == {("instrument", "route")}
    assert labels["arbstream_signals_total"] == {("event", "kind")}
    assert labels["arbstream_consumer_lag"] == {("partition", "topic")}
    for name in ("worker_ready", "assigned_partitions", "processing_latency_seconds_count"):
        assert labels[f"arbstream_{name}"] == {()}
    assert ("le",) in labels["arbstream_processing_latency_seconds_bucket"]
    assert "arbstream_batch_records_bucket" in samples
    assert "arbstream_batch_commit_seconds_bucket" in samples
    assert "process_resident_memory_bytes" in samples

    def value(name: str, **want: str) -> float:
        (v,) = [v for lab, v in samples[name] if all(lab.get(k) == x for k, x in want.items())]
        return v

    assert (
        value("arbstream_ticks_total", venue="COMEX", instrument="XAG")
        == (counters.quotes["COMEX", "XAG"])
    )
    assert {lab["reason"] for lab, _ in samples["arbstream_rejected_total"]} == set(REASONS)
    assert value("arbstream_consumer_lag", partition="0") == 5
    assert value("arbstream_assigned_partitions") == 2
    assert value("arbstream_venue_stale_seconds", venue="SHUIBEI") == 60.0
    assert value("arbstream_quote_age_seconds", venue="COMEX", clock="wall") > 1e6  # Jan 2026
    assert {lab["window"] for lab, _ in samples["arbstream_spread_zscore"]} <= {"60000", "300000"}
    opened = sum(v for _, v in samples["arbstream_arb_open"])
    assert opened == sum(1 for _, v in samples["arbstream_arb_open_seconds"] if v > 0)


def test_label_sets_stay_bounded_whatever_arrives_on_the_ticks_topic() -> None:
    config = _config()
    counters = EngineCounters()
    engine = _run_scenario(config, counters, 400)
    rng = random.Random(7)
    for i in range(2000):  # unknown venues, unknown instruments, unknown fx pairs
        ts = 1769781600000 + 400_000 + i
        kind = rng.choice(["venue", "instrument", "fx"])
        if kind == "venue":
            record = {"type": "quote", "venue": f"V{i}", "instrument": "XAG", "bid": 1, "ask": 2}
        elif kind == "instrument":
            record = {"type": "quote", "venue": "COMEX", "instrument": f"I{i}", "bid": 1, "ask": 2}
        else:
            record = {"type": "fx", "pair": f"USDX{i}", "bid": 1, "ask": 2}
        engine.process(orjson.dumps({**record, "ts": ts}), 10_000 + i)
    for cfg, instruments in ((config, {"other"}), (_config(["XAG"]), {"XAG", "other"})):
        samples = _scrape(_worker(cfg, [engine], counters))
        values: dict[str, set[str]] = {}
        for name, series in samples.items():
            if name.startswith("arbstream_"):
                for labels, _ in series:
                    for key, v in labels.items():
                        values.setdefault(key, set()).add(v)
        assert values["venue"] == set(config.venue_names)
        assert values["instrument"] <= instruments
        venues = config.venue_names
        pairs = {f"{a}|{b}" for a in venues for b in venues} | {"USDCNY", "other"}
        assert values["pair"] <= pairs
        assert values.get("route", set()) <= {f"{r.buy}>{r.sell}" for r in config.routes}
        assert values["reason"] == set(REASONS)
        series = sum(len(s) for n, s in samples.items() if n.startswith("arbstream_"))
        assert series < 200, series
    assert sum(n for (_, i), n in counters.quotes.items() if i.startswith("I")) > 500


def test_latency_histogram_counts_each_record_in_its_bucket() -> None:
    hist = LatencyHistogram(LATENCY_BUCKETS)
    now = 1_000_000.0
    latencies_ms = [0.2, 0.5, 0.7, 3.0, 3.0, 40.0, 9_000.0, 20_000.0, -5.0]
    hist.observe_batch(now, [now - x for x in latencies_ms])
    expected = [sum(1 for x in latencies_ms if x <= 1000 * b) for b in LATENCY_BUCKETS]
    assert hist.cumulative == expected
    assert hist.count == len(latencies_ms)
    assert hist.sum_s == pytest.approx(sum(latencies_ms) / 1000.0)
    hist.observe_batch(now, [])
    assert hist.count == len(latencies_ms)
