"""``arbstream worker --guarantee at-least-once`` on the real broker: no transactions,
each batch's outputs acknowledged before its state and offset are written (in one record
batch), duplicates after a crash identified by ``(key, seq)`` (docs/guarantees.md).

The checks are the exactly-once worker's (tests/agents/test_worker.py), with the
subscriber's rule applied first: tests/helpers/pipeline.py ``drop_duplicates`` fails on
a duplicate that differs from the first record with its seq, and on a seq that skips.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch

from arbstream.agents import outputs
from arbstream.agents.batch_failures import failure_of
from arbstream.agents.commit_policy import Failure
from arbstream.agents.outputs import KeyPlacement, OutputBatches, WholeBatchError
from arbstream.agents.state_store import OFFSET_KEY
from arbstream.agents.worker import READY_MESSAGE
from helpers.deployment import (
    DeploymentFactory,
    deployment_factory,
    generated,
    generated_v3,
    scenario,
)
from helpers.kafka import consume, wait_group_at_end

AT_LEAST_ONCE = "at-least-once"


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> DeploymentFactory:
    return deployment_factory(kafka_bootstrap, tmp_path, guarantee=AT_LEAST_ONCE)


def test_a_clean_run_equals_replay_with_no_duplicate_and_no_transaction(
    deployment: DeploymentFactory, kafka_bootstrap: str
) -> None:
    text, lines = scenario("dislocation-2026-01-30")
    dep = deployment(text, lines)
    worker = dep.worker()
    try:
        worker.wait_ready()
        dep.produce_cli()
        dep.check_equals_replay()
        assert dep.duplicates == 0  # nothing crashed: nothing repeats
        wait_group_at_end(dep.kafka, dep.topics.group, dep.topics.ticks)
        assert worker.get("/readyz") == (200, {"ready": True, "partitions": [0, 1, 2, 3]})
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text()
    assert f"{READY_MESSAGE}: partitions [0, 1, 2, 3] ({AT_LEAST_ONCE})" in log
    # No transaction: a read_uncommitted reader of the state topic sees no control
    # record (aiokafka skips them, but each takes an offset: the offsets have no gaps).
    state = dep.topics.state
    records = asyncio.run(consume(kafka_bootstrap, state, 1, timeout_s=30, linger_s=1.0))
    by_partition: dict[int, list[int]] = {}
    resumes: dict[int, list[int]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record.offset)
        if record.key == OFFSET_KEY.encode():
            resumes.setdefault(record.partition, []).append(int(record.value))
    assert by_partition
    for offsets in by_partition.values():
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets
    # Each batch's state is acknowledged before the next batch's outputs are sent: the
    # states land in order, each resuming past the one before.
    assert sorted(resumes) == [0, 1, 2, 3]
    for partition, offsets in resumes.items():
        assert offsets == sorted(set(offsets)), (partition, offsets)


def test_workers_sigkilled_three_times_lose_nothing_and_every_duplicate_has_its_seq(
    deployment: DeploymentFactory,
) -> None:
    text, lines = generated(61, 6000)
    dep = deployment(text, lines)
    dep.sigkill_rounds(rounds=3, seed=11)


def test_a_market_with_halts_and_levels_survives_sigkills_at_least_once(
    deployment: DeploymentFactory,
) -> None:
    """The halted venues and the levels' sides are in the state, written whole."""
    dep = deployment(*generated_v3(29, 6000))
    dep.sigkill_rounds(rounds=3, seed=13)


def test_refused_outputs_stop_the_worker_and_its_successor_loses_nothing(
    deployment: DeploymentFactory,
) -> None:
    """Kafka refuses every spread (a spreads topic that takes no record over 100 bytes):
    the worker stops with a line saying where a worker resumes, and writes no state past
    the refused batch; once the topic takes them, a new worker resumes there."""
    text, lines = scenario("dislocation-2026-01-30")
    dep = deployment(text, lines)
    last = dep.refused_run(dep.topics.spreads, 100)
    assert "MessageSizeTooLargeError" in last and "resumes at ticks offset" in last, last
    dep.finish_with("again")
    assert_resumes_where_it_said(last, dep.tmp / "again.log")


def assert_resumes_where_it_said(last: str, successor_log: Path) -> None:
    """The stop line's "resumes at ticks offset N of partition P" is where the successor
    resumed partition P (its state may be a batch ahead of the refused outputs: the state
    sent with them)."""
    said = re.search(r"resumes at ticks offset (\d+) of partition (\d+)", last)
    assert said, last
    offset, partition = said.groups()
    log = successor_log.read_text()
    resumed = rf"partition {partition}: \d+ state entries, resuming at offset {offset}\b"
    assert re.search(resumed, log), (last, [x for x in log.splitlines() if "resuming at" in x])


def test_a_state_write_refused_after_its_outputs_repeats_them_with_their_seq(
    deployment: DeploymentFactory,
) -> None:
    """The state topic refuses the state (record batches over 200 bytes): the batch's
    outputs were acknowledged first, so they are in the topics, and the worker stops
    without writing their state. Its successor evaluates them again from the state before
    and produces them again, identical, with the same seq: the subscriber's rule drops
    exactly those, and what is left equals replay."""
    text, lines = scenario("dislocation-2026-01-30")
    dep = deployment(text, lines)
    last = dep.refused_run(dep.topics.state, 200)
    assert re.search(
        rf"partition \d: the state of ticks offsets \d+-\d+ was not accepted "
        rf"\({dep.topics.state}\[\d\]: MessageSizeTooLargeError.*\); their outputs were, and "
        r"are produced again, with the same seq, from the state before them\. .* resumes at "
        r"ticks offset \d+ of partition \d",
        last,
    ), last
    dep.finish_with("again")
    assert dep.duplicates > 0  # the refused batches' outputs, dropped by (key, seq)
    assert_resumes_where_it_said(last, dep.tmp / "again.log")


def test_the_config_key_chooses_the_guarantee(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``[worker] guarantee`` chooses it when ``--guarantee`` is not given."""
    text, lines = generated(67, 1500)
    dep = deployment_factory(kafka_bootstrap, tmp_path, guarantee=None)(
        f'{text}\n[worker]\nguarantee = "{AT_LEAST_ONCE}"\n', lines
    )
    assert dep.config.worker.guarantee == AT_LEAST_ONCE
    worker = dep.worker()  # the default runtime, with no --guarantee
    try:
        worker.wait_ready()
        dep.produce_cli()
        assert dep.at_least_once  # so the check applies the subscriber's rule
        dep.check_equals_replay()
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert f"({AT_LEAST_ONCE})" in worker.log_path.read_text()


def _worker_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbstream.cli", "worker", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_guarantee_the_runtime_cannot_keep_or_an_unknown_one_is_a_config_error(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(scenario("dislocation-2026-01-30")[0])
    faust = _worker_command(
        "--config", str(config), "--runtime", "faust", "--guarantee", "exactly-once"
    )
    assert faust.returncode == 2
    assert faust.stderr.strip() == (
        "arbstream: --guarantee exactly-once: the Faust runtime is at least once"
    )
    config.write_text(f'{config.read_text()}\n[worker]\nguarantee = "at-most-once"\n')
    bad = _worker_command("--config", str(config))
    assert bad.returncode == 2
    assert "worker.guarantee" in bad.stderr, bad.stderr


def test_a_state_that_does_not_fit_one_record_batch_is_refused_for_what_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At least once, a batch's state is written as one record batch (appended whole);
    state that would not fit stops the worker instead of being written in pieces."""
    monkeypatch.setattr(outputs, "WHOLE_BATCH_BYTES", 1024)  # (16 MiB in earnest)

    async def fill() -> None:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
        out = OutputBatches(producer, placement=KeyPlacement({}))
        entries = [(f"entry-{i}".encode(), b"x" * 100) for i in range(50)]
        with pytest.raises(WholeBatchError, match=r"50 state entries do not fit one record"):
            out.whole("arb.worker-state", 3, entries)
        out.whole("arb.worker-state", 3, entries[:5])  # what fits goes as one batch

    asyncio.run(fill())
    error = WholeBatchError("arb.worker-state", 3, 50)
    assert failure_of(error, refused=False) is Failure.REJECTED  # the worker stops


def test_a_small_state_batch_goes_raw_and_a_large_one_lz4_compressed() -> None:
    """lz4 costs ten times the build of a small state batch, on the path of every batch;
    a large one is compressed, to fit a state topic that takes 1 MiB batches."""

    def codec_of(entries: list[tuple[bytes, bytes | None]]) -> int:
        async def build() -> int:
            producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
            out = OutputBatches(producer, placement=KeyPlacement({}))
            out.whole("arb.worker-state", 3, entries)
            ((_, batch),) = out._full
            built = DefaultRecordBatch(bytes(batch._build()))
            assert [r.key for r in built] == [key for key, _ in entries]  # all, in order
            return int(built.compression_type)

        return asyncio.run(build())

    value = b'{"w":[1.5,2.5]}' * 100  # 1.5 KB of state per entry
    limit = outputs.UNCOMPRESSED_WHOLE_BYTES
    small = [(f"pair-{i:04}".encode(), value) for i in range(limit // (len(value) + 9))]
    large = [(f"pair-{i:04}".encode(), value) for i in range(limit // (len(value) + 9) + 1)]
    assert codec_of(small) == DefaultRecordBatch.CODEC_NONE
    assert codec_of(large) == DefaultRecordBatch.CODEC_LZ4
