"""The worker's metrics as Prometheus reads them: names, label values, bounded sets."""

from __future__ import annotations

import random
import string
import time
import tomllib

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from arbstream.agents.metrics import (
    LATENCY_BUCKETS,
    LatencyHistogram,
    TransactionTimes,
    WorkerMetrics,
    WorkerView,
)
from arbstream.config import Config, parse_config
from arbstream.streams.engine import Engine
from arbstream.streams.validation import REASONS
from helpers.paths import SCENARIOS

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(metrics: WorkerMetrics) -> Samples:
    out: Samples = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _worker(config: Config, engines: list[Engine]) -> WorkerMetrics:
    view = WorkerView(
        ready=lambda: True, engines=lambda: engines, lag=lambda: {0: 5, 3: 0}, partitions=8
    )
    return WorkerMetrics(config, "arb.ticks", view)


def _config(instruments: list[str] | None = None) -> Config:
    """The scenario's config; it names no instrument, so XAG is "other" unless listed."""
    data = tomllib.loads((SCENARIO / "config.toml").read_text())
    if instruments is not None:
        data["metrics"] = {"instruments": instruments}
    return parse_config(data)


def _lines(first: int = 0, last: int | None = None) -> list[bytes]:
    return (SCENARIO / "ticks.jsonl").read_bytes().splitlines()[first:last]


def _process(engine: Engine, lines: list[bytes], first_line: int = 1) -> None:
    for i, line in enumerate(lines, first_line):
        engine.process(line, i)


def _commit(metrics: WorkerMetrics, engine: Engine) -> None:
    metrics.batches.committed(1, TransactionTimes(0.002, 0.0005, 0.0006, 0.0004), [], engine)


def test_every_metric_of_the_contract_is_exported_with_its_labels() -> None:
    config = _config(["XAG"])
    engine = Engine(config)
    metrics = _worker(config, [engine])
    _process(engine, _lines(0, 1500))
    accepted = engine.counters.quotes["COMEX", "XAG"]
    _commit(metrics, engine)
    samples = _scrape(metrics)
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
    phases = {lab["phase"]: v for lab, v in samples["arbstream_transaction_phase_seconds_sum"]}
    assert phases == pytest.approx(
        {"wait": 0.002, "engine": 0.0005, "flush": 0.0006, "commit": 0.0004}
    )
    assert "process_resident_memory_bytes" in samples

    def value(name: str, **want: str) -> float:
        (v,) = [v for lab, v in samples[name] if all(lab.get(k) == x for k, x in want.items())]
        return v

    assert value("arbstream_ticks_total", venue="COMEX", instrument="XAG") == accepted
    assert {lab["reason"] for lab, _ in samples["arbstream_rejected_total"]} == set(REASONS)
    assert value("arbstream_consumer_lag", partition="0") == 5
    assert value("arbstream_assigned_partitions") == 1
    assert value("arbstream_ticks_partitions") == 8
    assert value("arbstream_venue_stale_seconds", venue="SHUIBEI") == 60.0
    assert value("arbstream_quote_age_seconds", venue="COMEX", clock="wall") > 1e6  # Jan 2026
    assert {lab["window"] for lab, _ in samples["arbstream_spread_zscore"]} <= {"60000", "300000"}
    opened = sum(v for _, v in samples["arbstream_arb_open"])
    assert opened == sum(1 for _, v in samples["arbstream_arb_open_seconds"] if v > 0)


def test_market_structure_metrics_show_sessions_basis_delivery_and_size() -> None:
    """The Chinese New Year scenario up to the end of its first day (Friday 2026-02-13,
    08:45 London): Shanghai has closed for the day, London and New York trade, COMEX's
    registered stock covers less than half its open interest."""
    cny = SCENARIOS / "cny-holiday-2026-02"
    data = tomllib.loads((cny / "config.toml").read_text())
    config = parse_config({**data, "metrics": {"instruments": ["XAG"]}})
    engine = Engine(config)
    metrics = _worker(config, [engine])
    lines = (cny / "ticks.jsonl").read_bytes().splitlines()
    first_day = 1770964200000 + 3 * 3_600_000  # the first quiet gap starts before this
    stock: dict[str, dict[str, object]] = {}
    for i, line in enumerate(lines, 1):
        record = orjson.loads(line) if line.startswith(b"{") else {}
        if isinstance(record.get("ts"), int) and record["ts"] > first_day:
            break
        if not any(s == "dlq" for s, _, _ in engine.process(line, i)) and (
            record.get("type") == "stock"
        ):
            stock[str(record["venue"])] = record
    samples = _scrape(metrics)

    def values(name: str, label: str) -> dict[str, float]:
        return {lab[label]: v for lab, v in samples[name]}

    assert values("arbstream_venue_open", "venue") == {
        "COMEX_H6": 1.0, "LBMA": 1.0, "SGE": 0.0, "SHFE_AG2606": 0.0, "SHUIBEI": 1.0,
    }  # fmt: skip
    # Only the London/New York pair has fresh legs: Shanghai's figures are gone.
    pairs = {(lab["spot"], lab["future"]): v for lab, v in samples["arbstream_basis_bps"]}
    assert set(pairs) == {("LBMA", "COMEX_H6")}
    st = engine.instruments["XAG"]
    lbma, comex = st.quotes["LBMA"], st.quotes["COMEX_H6"]
    spot, future = (lbma.nbid + lbma.nask) / 2, (comex.nbid + comex.nask) / 2
    assert pairs["LBMA", "COMEX_H6"] == pytest.approx((future - spot) / spot * 1e4, rel=1e-12)
    days = (config.expiry_ms["COMEX_H6"] - st.clock) / 86_400_000
    assert values("arbstream_basis_days", "spot") == {"LBMA": pytest.approx(days, rel=1e-12)}
    lease = values("arbstream_basis_lease_rate", "spot")["LBMA"]
    rate = config.basis.rate
    assert lease == pytest.approx(((spot / future) * (1 + rate * days / 365) - 1) * 365 / days)
    # Both pairs keep their signal state, open or not.
    opened = {(lab["spot"], lab["future"]): v for lab, v in samples["arbstream_basis_open"]}
    assert set(opened) == {("LBMA", "COMEX_H6"), ("SGE", "SHFE_AG2606")}
    assert opened == {k: float(b.open) for k, b in zip(config.basis_pairs, st.basis, strict=True)}
    comex_stock = stock["COMEX_H6"]
    coverage = float(comex_stock["registered"]) / float(comex_stock["open_interest"])  # type: ignore[arg-type]
    assert values("arbstream_delivery_coverage", "venue") == {"COMEX_H6": coverage}
    assert coverage < 0.5
    assert values("arbstream_delivery_open", "venue") == {"COMEX_H6": 1.0}
    assert [v for _, v in samples["arbstream_delivery_open_ratio"]] == [0.5]
    # A size for every route whose legs are fresh and quote sizes, in oz.
    sizes = values("arbstream_arb_size_oz", "route")
    assert sizes, "routes with fresh legs quote sizes"
    for route, oz in sizes.items():
        buy, sell = route.split(">")
        qb, qs = st.quotes[buy], st.quotes[sell]
        assert oz == min(float(qb.ask_size) * qb.oz_per_lot, float(qs.bid_size) * qs.oz_per_lot)  # type: ignore[arg-type]
        assert "SGE" not in route and "SHFE_AG2606" not in route  # closed


def test_label_sets_stay_bounded_whatever_arrives_on_the_ticks_topic() -> None:
    rng = random.Random(7)
    junk = []
    for i in range(3000):  # unknown venues, unlisted instruments, unlisted fx pairs
        ts = 1769781600000 + 400_000 + i
        kind = rng.choice(["venue", "instrument", "fx"])
        if kind == "venue":
            record = {"type": "quote", "venue": f"V{i}", "instrument": "XAG", "bid": 1, "ask": 2}
        elif kind == "instrument":
            record = {"type": "quote", "venue": "COMEX", "instrument": f"I{i}", "bid": 1, "ask": 2}
        else:
            pair = "USD" + "".join(rng.choices(string.ascii_uppercase, k=3))
            record = {"type": "fx", "pair": pair, "bid": 1, "ask": 2}
        junk.append(orjson.dumps({**record, "ts": ts}))
    for config, instruments in ((_config(), {"other"}), (_config(["XAG"]), {"XAG", "other"})):
        engine = Engine(config)
        metrics = _worker(config, [engine])
        _process(engine, _lines(0, 400))
        _process(engine, junk, 10_000)
        assert len(engine.counters.fx) > 100  # the junk pairs were accepted as fx
        _commit(metrics, engine)
        samples = _scrape(metrics)
        values: dict[str, set[str]] = {}
        for name, series in samples.items():
            if name.startswith("arbstream_"):
                for labels, _ in series:
                    for key, v in labels.items():
                        values.setdefault(key, set()).add(v)
        assert values["venue"] == set(config.venue_names)
        assert values["instrument"] == instruments
        venues = config.venue_names
        assert values["pair"] <= {f"{a}|{b}" for a in venues for b in venues} | {"USDCNY", "other"}
        assert "other" in values["pair"]
        assert values.get("route", set()) <= {f"{r.buy}>{r.sell}" for r in config.routes}
        assert values["reason"] == set(REASONS)
        series = sum(len(s) for n, s in samples.items() if n.startswith("arbstream_"))
        assert series < 300, series  # fixed histograms are about 130 of them
        # the totals are keyed by label values too: junk does not grow them
        assert len(metrics.batches.totals.quotes) <= len(venues) * len(instruments)
        other = sum(
            v for lab, v in samples["arbstream_ticks_total"] if lab["instrument"] == "other"
        )
        assert other > 500


def test_a_batch_that_aborts_and_is_redone_counts_once() -> None:
    """After a failed or fenced transaction the worker rebuilds the engine from the
    committed state and processes the batch again; only committed work is counted."""
    config = _config(["XAG"])
    first, second = _lines(0, 1000), _lines(1000, 2000)
    reference = Engine(config)
    _process(reference, first + second)

    engine = Engine(config)
    metrics = _worker(config, [engine])
    _process(engine, first)
    _commit(metrics, engine)
    committed_state = engine.snapshot()
    _process(engine, second, 1001)  # this transaction aborts: no commit
    rebuilt = Engine(config)
    rebuilt.load(committed_state)
    _process(rebuilt, second, 1001)
    _commit(metrics, rebuilt)

    totals = metrics.batches.totals
    assert totals.quotes == reference.counters.quotes
    assert totals.signals == reference.counters.signals
    assert totals.rejected == reference.counters.rejected
    assert sum(totals.signals.values()) > 0


def test_latency_histogram_counts_each_record_in_its_bucket() -> None:
    hist = LatencyHistogram(LATENCY_BUCKETS)
    now = 1_000_000.0
    latencies_ms = [0.2, 0.5, 0.7, 3.0, 3.0, 40.0, 9_000.0, 20_000.0, -5.0]
    hist.observe_batch(now, [now - x for x in latencies_ms])
    expected = [sum(1 for x in latencies_ms if x <= 1000 * b) for b in LATENCY_BUCKETS]
    assert hist.cumulative == expected
    assert hist.count == len(latencies_ms)
    # a producer clock ahead of ours: -5 ms counts as 0, in the sum too
    assert hist.sum_s == pytest.approx(sum(x for x in latencies_ms if x > 0) / 1000.0)
    hist.observe_batch(now, [])
    assert hist.count == len(latencies_ms)


def test_held_quiet_batches_count_once_with_their_latency_to_evaluation() -> None:
    """A quiet batch (no outputs) commits with a later transaction: its records count
    then, once, and its latency runs to its evaluation, not to that commit. A
    transaction of held batches only observes no phase."""
    config = _config(["XAG"])
    engine = Engine(config)
    metrics = _worker(config, [engine])
    _process(engine, _lines(0, 50))
    evaluated = 1_000_000.0
    held = [(evaluated, [evaluated - 2.0, evaluated - 3.0]), (evaluated + 100, [evaluated + 97])]
    metrics.batches.committed(3, None, [], engine, held)
    assert metrics.batches.records == 3
    assert metrics.batches.latency.count == 3
    assert metrics.batches.latency.sum_s == pytest.approx(0.008)  # 2 + 3 + 3 ms
    samples = _scrape(metrics)
    phases = [v for lab, v in samples["arbstream_transaction_phase_seconds_count"]]
    assert phases and all(v == 0 for v in phases)
    assert sum(metrics.batches.totals.quotes.values()) > 0  # the engine's counts drained

    own_batch = [time.time() * 1000.0 - 5.0]
    times = TransactionTimes(0.002, 0.0005, 0.0006, 0.0004)
    metrics.batches.committed(4, times, own_batch, engine, held[:1])
    assert metrics.batches.records == 7
    assert metrics.batches.latency.count == 6
    samples = _scrape(metrics)
    assert all(v == 1 for lab, v in samples["arbstream_transaction_phase_seconds_count"])
