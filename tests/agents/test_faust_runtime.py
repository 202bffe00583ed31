"""The Faust runtime (``arbstream worker --runtime faust``, agents/faust_app.py) on the
real broker, with real Faust worker processes: at least once, never lose, duplicates
identifiable. After a subscriber drops every record whose ``seq`` it has already seen
for its key (tests/helpers/pipeline.py ``drop_duplicates``, which also fails on a duplicate that
is not the same record, or a ``seq`` that skips), the outputs equal replay's per key."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.deployment import (
    PARTITIONS,
    Deployment,
    DeploymentFactory,
    deployment_factory,
    generated,
    generated_v3,
)
from helpers.deployment import scenario as scenario_input
from helpers.http import get_text
from helpers.pipeline import Worker, replay_by_key

#: Metrics the default worker serves, which the Faust runtime serves under the same names.
SHARED_METRICS = (
    "arbstream_ticks_total",
    "arbstream_signals_total",
    "arbstream_processing_latency_seconds",
    "arbstream_transaction_phase_seconds",
    "arbstream_worker_ready",
    "arbstream_assigned_partitions",
    "arbstream_consumer_lag",
    "arbstream_venue_stale_seconds",
    "arbstream_rejected_total",
)


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> DeploymentFactory:
    return deployment_factory(kafka_bootstrap, tmp_path, runtime="faust")


def open_signals(dep: Deployment) -> dict[str, object]:
    """The signals replay leaves open at the end, by key: their last record."""
    expected, _ = replay_by_key(dep.lines, dep.config)
    out: dict[str, object] = {}
    for (stream, key), records in expected.items():
        if stream == "signals" and records[-1]["event"] != "close":
            assert key is not None
            out[key] = records[-1]
    return out


@pytest.mark.parametrize(
    "name", ["dislocation-2026-01-30", "cny-holiday-2026-02", "generated-two-instruments"]
)
def test_faust_runtime_output_equals_replay_per_key(
    deployment: DeploymentFactory, name: str
) -> None:
    text, lines = generated(31, 4000) if name.startswith("generated") else scenario_input(name)
    dep = deployment(text, lines)
    worker = dep.worker()
    try:
        worker.wait_ready()
        dep.produce_cli()
        dep.check_equals_replay()
        assert worker.get("/healthz") == (200, {"status": "ok"})
        assert worker.get("/readyz") == (200, {"ready": True, "partitions": [0, 1, 2, 3]})
        status, body = worker.get("/signals/open/")
        assert status == 200
        served = {_signal_key(r): r for r in body}
        assert served == open_signals(dep)
        metrics = _metrics(worker.web_port)
        for name_ in SHARED_METRICS:
            assert f"\n{name_}" in metrics, name_
        assert "\nfaust_messages_received_total" in metrics  # Faust's own sensors too
    finally:
        status = worker.stop()
    assert status == 0, worker.log_tail()


def test_faust_workers_sigkilled_five_times_lose_nothing(deployment: DeploymentFactory) -> None:
    text, lines = generated(47, 6000)
    deployment(text, lines).sigkill_rounds(rounds=5, seed=5)


def test_faust_workers_sigkilled_on_a_market_with_halts_and_levels_lose_nothing(
    deployment: DeploymentFactory,
) -> None:
    """Version 3 (halts, levels) on the Faust runtime: the halted venues and the levels'
    sides are in the table's state, and resume with it."""
    text, lines = generated_v3(23, 6000)
    deployment(text, lines).sigkill_rounds(rounds=3, seed=7)


def test_two_faust_workers_one_stopped_mid_stream_equal_replay(
    deployment: DeploymentFactory,
) -> None:
    dep = deployment(*generated(53, 6000))

    def holds_every_partition(survivor: Worker) -> None:
        status, body = survivor.get("/readyz")
        assert (status, body["partitions"]) == (200, list(range(PARTITIONS)))

    dep.survive_a_stop(
        parts=30, pause_s=0.25, stop_after_s=2.0, check_survivor=holds_every_partition
    )


def test_a_batch_kafka_refuses_ends_the_faust_worker_and_its_successor_loses_nothing(
    deployment: DeploymentFactory,
) -> None:
    """Outputs Kafka refuses (a spreads topic that takes no record over 100 bytes) end
    the worker with an error status: Faust's default would restart the agent and count
    the batch's ticks as done. Once the topic takes them, a new worker resumes from the
    committed state and nothing is missing."""
    text, lines = scenario_input("dislocation-2026-01-30")
    dep = deployment(text, lines)
    dep.limit_spreads(100)
    worker = dep.worker("refused")
    worker.wait_ready()
    dep.produce_cli()
    status = worker.wait()
    assert status != 0, worker.log_tail()
    assert "MessageSizeTooLarge" in worker.log_path.read_text()
    dep.limit_spreads(1048588)
    dep.finish_with("again")


def _signal_key(record: dict[str, object]) -> str:
    kind = record["kind"]
    if kind == "arb":
        return f"{record['instrument']}|arb|{record['buy']}>{record['sell']}"
    if kind in ("wide", "delivery"):
        return f"{record['instrument']}|{kind}|{record['venue']}"
    return f"{record['instrument']}|{kind}|{record['spot']}>{record['future']}"


def _metrics(port: int) -> str:
    return "\n" + get_text(f"http://127.0.0.1:{port}/metrics")
