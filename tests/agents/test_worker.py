"""The live pipeline on the real broker: ``arbstream produce`` → ``arbstream worker`` →
the output topics, compared per key with ``arbstream replay`` of the same input.

Every test uses its own topic prefix (so its own topics and consumer group) on a ticks
topic with 4 partitions, and real worker processes.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.produce import produce_lines
from arbstream.agents.worker import READY_MESSAGE
from helpers.deployment import (
    Deployment,
    DeploymentFactory,
    deployment_factory,
    generated,
    generated_v3,
    scenario,
)
from helpers.kafka import Record, consume, wait_group_at_end
from helpers.pipeline import replay_by_key
from helpers.streamgen import config_toml, random_stream, random_venues

#: The worker's log line for an engine rebuilt from a non-empty state.
RESTORED = re.compile(rb"partition \d+: [1-9]\d* state entries, resuming at offset [1-9]")


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> DeploymentFactory:
    return deployment_factory(kafka_bootstrap, tmp_path)


def run_to_end(dep: Deployment) -> None:
    worker = dep.worker()
    try:
        dep.check_equals_replay()
        # the group's offset, committed outside the transactions, reaches the end too
        wait_group_at_end(dep.kafka, dep.topics.group, dep.topics.ticks)
        assert worker.alive(), worker.log_tail()
        assert worker.get("/healthz") == (200, {"status": "ok"})
        assert worker.get("/readyz") == (200, {"ready": True, "partitions": [0, 1, 2, 3]})
    finally:
        status = worker.stop()
    assert status == 0, worker.log_tail()


@pytest.mark.parametrize(
    "name",
    ["dislocation-2026-01-30", "random-101", "random-202", "run-to-120-2026-01", "generated"],
)
def test_live_output_equals_replay_per_key(deployment: DeploymentFactory, name: str) -> None:
    text, lines = generated(7, 6000) if name == "generated" else scenario(name)
    dep = deployment(text, lines)
    dep.produce_cli()
    run_to_end(dep)


def test_worker_killed_with_sigkill_resumes_without_loss_or_duplicates(
    deployment: DeploymentFactory,
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    dep = deployment(*generated(11, 20_000))
    # somewhere in the middle of the stream
    log = dep.survive_sigkill(parts=20, pause_s=0.15, kill_after_s=rng.uniform(0.5, 2.5))
    assert RESTORED.search(log), f"seed {seed}: nothing restored"


def test_a_market_with_halts_and_levels_survives_a_sigkill_exactly_once(
    deployment: DeploymentFactory,
) -> None:
    """Version 3 state (halted venues, status times, level sides) resumes exactly: per
    key, output equals replay across a SIGKILL."""
    dep = deployment(*generated_v3(17, 8000))
    log = dep.survive_sigkill(parts=16, pause_s=0.2, kill_after_s=1.5)
    assert RESTORED.search(log), "nothing restored"


def test_the_cny_holiday_scenario_survives_a_sigkill_exactly_once(
    deployment: DeploymentFactory,
) -> None:
    """Market structure state (quote sizes, basis emission times, basis and delivery
    signal states, latest stock times) resumes exactly: per key, output equals replay."""
    dep = deployment(*scenario("cny-holiday-2026-02"))
    log = dep.survive_sigkill(parts=12, pause_s=0.4, kill_after_s=2.5)
    assert RESTORED.search(log), "nothing restored"


def test_two_workers_one_stopped_mid_stream_still_equal_replay(
    deployment: DeploymentFactory,
) -> None:
    dep = deployment(*generated(13, 16_000))
    log = dep.survive_a_stop(parts=16, pause_s=0.2, stop_after_s=1.5)
    # the survivor took over the stopped worker's partitions with their state
    assert RESTORED.search(log), log[-3000:]


def garbage(rng: random.Random, n: int) -> list[bytes]:
    """``n`` malformed messages of every kind the issue names, and some more."""
    quote = b'{"type": "quote", "venue": "COMEX", "instrument": "XAG", '
    makers: list[Callable[[], bytes]] = [
        lambda: rng.randbytes(rng.randint(1, 300)),
        lambda: b"\xff\xfe\xc3(" + rng.randbytes(20),  # invalid UTF-8
        lambda: quote + b'"bid": 80.0, "ask": 80.1, "ts": 1, "x": "\xc3\x28"}',
        lambda: b"[" * rng.randint(1000, 200_000) + b"]" * rng.randint(0, 10),
        lambda: b'{"a":' * 5000 + b"1" + b"}" * 5000,  # deep but valid, not a record
        lambda: quote + b'"bid": 1' + b"7" * 400 + b', "ask": 80.1, "ts": 1}',
        lambda: quote + b'"bid": 80.0, "ask": 80.1, "ts": 1' + b"0" * 400 + b"}",
        lambda: b'{"type": "fx", "pair": "USDCNY", "bid": 7.1, "ask": 7.0, "ts": 5}',
        lambda: b'{"type": "quote"}',
        lambda: b'{"type": "trade", "px": 1}',
        lambda: b"null",
        lambda: b'"just a string"',
        lambda: quote + b'"bid": NaN, "ask": 80.1, "ts": 1}',
        lambda: (
            b'{"type": "quote", "venue": "NOPE", "instrument": "XAG", '
            b'"bid": 80.0, "ask": 80.1, "ts": 1}'
        ),
    ]
    out = [makers[i % len(makers)]() for i in range(n - 3)]
    big = 3 * 1024 * 1024  # multi-megabyte values
    out += [b"x" * big, quote + b'"bid": 80.0, "pad": "' + b"y" * big + b'"}', b"{" * big]
    rng.shuffle(out)
    # produce skips blank lines and strips a trailing newline; keep every one a message
    return [
        g.rstrip(b"\r\n") + b"#" if not g.strip() or g.endswith((b"\r", b"\n")) else g for g in out
    ]


def test_garbage_goes_to_the_dlq_and_the_scenario_outputs_do_not_change(
    deployment: DeploymentFactory,
) -> None:
    rng = random.Random(2026)
    text, lines = scenario("dislocation-2026-01-30")
    junk = garbage(rng, 10_000)
    mixed: list[bytes] = []
    for i, line in enumerate(lines):
        mixed.append(line)
        mixed += junk[i * len(junk) // len(lines) : (i + 1) * len(junk) // len(lines)]
    assert len(mixed) == len(lines) + 10_000
    dep = deployment(text, mixed)
    asyncio.run(produce_lines(mixed, dep.topics, KafkaClients(dep.bootstrap)))
    run_to_end(dep)
    # and the scenario's own outputs are exactly those of the clean scenario
    clean, _ = replay_by_key(lines, dep.config)
    dirty, _ = replay_by_key(mixed, dep.config)
    assert {k: [orjson.dumps(r) for r in v] for k, v in clean.items()} == {
        k: [orjson.dumps(r) for r in v] for k, v in dirty.items()
    }


def test_a_state_topic_with_other_partitions_stops_the_worker_naming_it(
    deployment: DeploymentFactory, kafka_bootstrap: str
) -> None:
    """The engine of ticks partition p lives in state partition p: a state topic with
    another partition count is refused before anything is consumed."""
    dep = deployment(*scenario("random-101"))

    async def make_state_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(dep.topics.state, 2, 1)])
        finally:
            await admin.close()

    asyncio.run(make_state_topic())
    worker = dep.worker()
    status = worker.wait()
    assert status != 0
    log = worker.log_path.read_text()
    assert f"'{dep.topics.state}' has 2 partitions but '{dep.topics.ticks}' has 4" in log
    assert READY_MESSAGE not in log


def test_a_2_mib_instrument_is_rejected_and_the_stream_stays_exactly_once_across_sigkill(
    deployment: DeploymentFactory,
) -> None:
    """A quote whose instrument is 2 MiB long (its outputs and state entry would exceed
    the broker's 1 MiB message limit) goes to the dlq as bad_value; one at the 64-character
    limit is a normal instrument. Across a SIGKILL mid-stream, per key output equals
    replay: nothing lost, nothing duplicated."""
    rng = random.Random(12)
    venues = random_venues(rng, 4)
    long_name = "L" * 64
    lines = random_stream(rng, venues, 20_000, ("XAG", long_name))
    assert sum(long_name.encode() in line for line in lines) > 1000
    huge = orjson.dumps(
        {"type": "quote", "venue": venues[0].name, "instrument": "X" * 2_000_000}
        | {"bid": 80.0, "ask": 80.1, "ts": 1769990400000}
    )
    for at in (7, 5_000, 12_345):
        lines.insert(at, huge)
    dep = deployment(config_toml(venues, None), lines)
    # (the dlq check of the replay comparison covers the three bad_value records)
    dep.survive_sigkill(parts=20, pause_s=0.15, kill_after_s=1.5)
    _, rejected = replay_by_key(lines, dep.config)
    too_long = [r for r in rejected if '"instrument":"XXXX' in r["raw"]]
    assert [(r["reason"], len(r["raw"])) for r in too_long] == [("bad_value", 4096)] * 3


def _committed(bootstrap: str, topic: str, linger_s: float) -> list[Record]:
    return asyncio.run(
        consume(
            bootstrap, topic, 0, timeout_s=30, isolation_level="read_committed", linger_s=linger_s
        )
    )


def test_a_batch_kafka_refuses_is_aborted_and_the_worker_stops_saying_where_to_resume(
    deployment: DeploymentFactory, kafka_bootstrap: str
) -> None:
    """The spreads topic takes no record over 100 bytes, so Kafka refuses every spread:
    the batch's transaction is aborted (nothing of it is visible to a read_committed
    reader), and the worker stops with one clear line naming the partition and offset,
    instead of committing or retrying forever. With the limit lifted, a new worker resumes
    there and the output equals replay: nothing lost, nothing duplicated."""
    text, lines = scenario("dislocation-2026-01-30")
    dep = deployment(text, lines)
    spreads = dep.topics.spreads
    last = dep.refused_run(spreads, 100)
    assert re.search(
        rf"arbstream: worker stopped: partition \d: the outputs of ticks offsets \d+-\d+ "
        rf"were not accepted \({spreads}\[\d\]: MessageSizeTooLargeError.*\); nothing of "
        rf"those ticks was committed\. .* resumes at ticks offset \d+ of partition \d",
        last,
    ), last
    # Nothing of a failed batch is visible; every spread failed, so no spread at all.
    assert _committed(kafka_bootstrap, spreads, linger_s=2.0) == []
    dep.finish_with("again")
