"""Quiet batches on the real broker: a partition whose ticks make no outputs commits its
state about once a second, not once a batch; a tick with outputs commits at once, with
everything held before it; nothing is lost across the worker's stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.produce import produce_lines
from arbstream.agents.state_store import OFFSET_KEY
from helpers.deployment import DeploymentFactory, deployment_factory, scenario
from helpers.http import get_text
from helpers.kafka import Record, consume, wait_for

QUIET = 40  # quotes of one venue: no pair, so no output
PAUSE_S = 0.05  # between them: one batch each


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> DeploymentFactory:
    return deployment_factory(kafka_bootstrap, tmp_path)


def quote(venue: str, i: int, price: float) -> bytes:
    return orjson.dumps(
        {
            "type": "quote",
            "venue": venue,
            "instrument": "XAG",
            "bid": price,
            "ask": price + 0.01,
            "ts": 1769781600000 + 100 * i,
        }
    )


def committed_offsets(bootstrap: str, state_topic: str) -> list[int]:
    """The ticks offsets the partitions' committed state entries say they resume from,
    in order (none yet: empty)."""
    try:
        records: list[Record] = asyncio.run(
            consume(bootstrap, state_topic, 1, 5.0, isolation_level="read_committed", linger_s=1.0)
        )
    except TimeoutError:
        return []
    return [int(r.value) for r in records if r.key == OFFSET_KEY.encode()]


def scrape(port: int) -> dict[str, float]:
    """The worker's processing latency count and sum, its lag summed, and how many
    transactions ran a batch of their own (``batches``: a commit of held batches only
    observes no phase)."""
    text = get_text(f"http://127.0.0.1:{port}/metrics")
    out = {"lag": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "arbstream_consumer_lag":
                out["lag"] += s.value
            elif s.name == "arbstream_transaction_phase_seconds_count":
                if s.labels["phase"] == "engine":
                    out["batches"] = s.value
            elif s.name.startswith("arbstream_processing_latency_seconds_"):
                out[s.name.removeprefix("arbstream_processing_latency_seconds_")] = s.value
    return out


def test_quiet_batches_commit_about_once_a_second_and_outputs_at_once(
    deployment: DeploymentFactory, kafka_bootstrap: str
) -> None:
    text, _ = scenario("dislocation-2026-01-30")
    quiet = [quote("COMEX", i, 75.0 + i / 100) for i in range(QUIET)]
    dep = deployment(text, quiet)
    worker = dep.worker()
    worker.wait_ready()
    try:
        began = time.monotonic()
        for line in quiet:
            asyncio.run(produce_lines([line], dep.topics, KafkaClients(kafka_bootstrap)))
            time.sleep(PAUSE_S)
        produced_s = time.monotonic() - began
        # Every quiet tick is committed within a second or so of the last one.
        wait_for(
            lambda: scrape(worker.web_port)["count"] == QUIET, 15.0, "commit of every quiet tick"
        )
        # A tick with an output, sent right after that commit, commits at once with its
        # state, in a transaction of its own batch (held, it would commit a second after
        # the last commit, in a transaction of held batches only, which has no phases).
        batches = scrape(worker.web_port)["batches"]
        asyncio.run(
            produce_lines([quote("LBMA", QUIET, 76.0)], dep.topics, KafkaClients(kafka_bootstrap))
        )
        wait_for(lambda: scrape(worker.web_port)["count"] == QUIET + 1, 15.0, "the output's commit")
        assert scrape(worker.web_port)["batches"] == batches + 1
        spreads = asyncio.run(
            consume(kafka_bootstrap, dep.topics.spreads, 1, isolation_level="read_committed")
        )
        assert len(spreads) == 1
        offsets = committed_offsets(kafka_bootstrap, dep.topics.state)
        assert offsets[-2:] == [QUIET, QUIET + 1], offsets
        # one commit per second or so, not one per batch (each tick was its own batch)
        assert len(offsets) <= produced_s + 4, (len(offsets), produced_s, offsets)
        assert len(offsets) < QUIET / 4

        # Each tick is observed once; a held tick's latency runs to its evaluation, not
        # to the commit it waited for (which would average about half a second).
        latency = scrape(worker.web_port)
        assert latency["count"] == QUIET + 1
        assert latency["sum"] / (QUIET + 1) < 0.2
    finally:
        status = worker.stop()
    assert status == 0, worker.log_tail()


def test_a_stop_commits_the_held_batches(
    deployment: DeploymentFactory, kafka_bootstrap: str
) -> None:
    text, _ = scenario("dislocation-2026-01-30")
    quiet = [quote("COMEX", i, 75.0 + i / 100) for i in range(5)]
    dep = deployment(text, quiet)
    worker = dep.worker()
    worker.wait_ready()
    try:
        asyncio.run(produce_lines(quiet[:1], dep.topics, KafkaClients(kafka_bootstrap)))
        wait_for(lambda: scrape(worker.web_port)["count"] == 1, 15.0, "first commit")
        asyncio.run(produce_lines(quiet[1:], dep.topics, KafkaClients(kafka_bootstrap)))
        # fetched and evaluated at once (lag 0 also before the fetch: a pause on top),
        # and held: the last commit is younger than a second
        time.sleep(0.3)
        wait_for(lambda: scrape(worker.web_port)["lag"] == 0, 15.0, "evaluation")
        assert scrape(worker.web_port)["count"] == 1
    finally:
        status = worker.stop()
    assert status == 0, worker.log_tail()
    assert committed_offsets(kafka_bootstrap, dep.topics.state)[-1] == len(quiet)
