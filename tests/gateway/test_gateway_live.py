"""The gateway on the real broker with a real worker: ``arbstream gateway`` in its own
process, real WebSocket clients, records compared with the topics themselves."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from gateway_helpers import (
    Clients,
    GatewayProcess,
    by_key,
    final_view,
    snapshot_view,
    topic_messages,
    wait_for,
)
from kafka_helpers import consume
from pipeline import Worker, arbstream_process, replay_by_key
from scenario_paths import SCENARIOS

from agents.topics import Topics
from arbstream.config import load_config
from gateway.subscription import Subscription

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
ARBS = {"types": ["signal"], "kinds": ["arb"]}
ONE_PAIR = {"types": ["spread"], "pairs": ["SHFE|COMEX"]}


def _config(tmp_path: Path, prefix: str) -> Path:
    text = (SCENARIO / "config.toml").read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    path = tmp_path / "gateway.toml"
    path.write_text(text + "\n[kafka]\npartitions = 3\n")
    return path


def _produce(tmp_path: Path, config: Path, bootstrap: str, lines: list[bytes], name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {"ARBSTREAM_BROKER": f"kafka://{bootstrap}"}
    proc = arbstream_process(
        ["produce", str(path), "--config", str(config)],
        {**os.environ, **env},
        tmp_path / f"{name}.log",
    )
    assert proc.wait(120) == 0, proc.tail(20)


def _topics_now(bootstrap: str, topics: Topics, counts: dict[str, int]) -> dict[str, list[Any]]:
    """Every committed record of the three output topics and the ticks topic, waiting for
    at least ``counts`` of each."""

    async def read() -> dict[str, list[Any]]:
        names = [topics.spreads, topics.signals, topics.basis, topics.ticks]
        got = await asyncio.gather(
            *(
                consume(
                    bootstrap,
                    n,
                    counts.get(n, 0),
                    120,
                    isolation_level="read_committed",
                    linger_s=1.0,
                )
                for n in names
            )
        )
        return dict(zip(names, got, strict=True))

    return asyncio.run(read())


def _expected_counts(lines: list[bytes], config_path: Path, topics: Topics) -> dict[str, int]:
    keyed, _ = replay_by_key(lines, load_config(config_path))
    counts = {topics.spreads: 0, topics.signals: 0, topics.basis: 0}
    for (stream, _key), records in keyed.items():
        counts[getattr(topics, stream)] += len(records)
    return counts


def _suffix_problems(
    got: list[dict[str, Any]], topic: list[dict[str, Any]], start: dict[str, Any] | None
) -> str:
    """``got`` must be exactly the topic's records after ``start`` (or a suffix of them
    when the key had nothing in the snapshot)."""
    if start is not None:
        if start not in topic:
            return "snapshot record is not one of the topic's"
        # the last occurrence that leaves a consistent tail
        for i in range(len(topic) - 1, -1, -1):
            if topic[i] == start and topic[i + 1 :] == got:
                return ""
        return f"after the snapshot: got {len(got)} records, not the topic's tail"
    if got and topic[len(topic) - len(got) :] != got:
        return f"{len(got)} records are not the topic's last {len(got)}"
    return ""


def test_filtered_streams_equal_the_topics_and_a_restarted_gateway_snapshots_correctly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"gw{uuid.uuid4().hex[:8]}"
    config_path = _config(tmp_path, prefix)
    config = load_config(config_path)
    topics = Topics(prefix)
    lines = [x for x in (SCENARIO / "ticks.jsonl").read_bytes().splitlines() if x.strip()]
    first, second, third = lines[:900], lines[900:1300], lines[1300:]
    worker = Worker(config_path, kafka_bootstrap, tmp_path / "worker.log")
    clients = Clients()
    try:
        worker.wait_ready()
        g1 = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "g1.log")
        g1.wait_ready()
        everything, _ = clients.subscribe(g1.url, {})
        arbs, _ = clients.subscribe(g1.url, ARBS)
        pair, _ = clients.subscribe(g1.url, ONE_PAIR)
        sse = clients.events(f"{g1.http}/events?types=signal&kinds=arb")
        readers = (everything, arbs, pair, sse)
        wait_for(lambda: all(r.snapshots_done for r in readers), 30, "snapshots")

        _produce(tmp_path, config_path, kafka_bootstrap, first, "first.jsonl")
        counts = _expected_counts(first, config_path, topics)
        committed = topic_messages(
            _topics_now(kafka_bootstrap, topics, counts), frozenset(config.venues)
        )
        wait_for(lambda: len(everything.live) >= len(committed), 60, "the first part at the client")
        # every record, per key, in topic order; and each filter's share of them
        assert by_key(everything.live) == by_key(committed)
        assert by_key(arbs.live) == by_key(committed, Subscription.model_validate(ARBS))
        assert by_key(pair.live) == by_key(committed, Subscription.model_validate(ONE_PAIR))
        wait_for(lambda: len(sse.live) >= len(arbs.live), 30, "the arb signals over SSE")
        assert by_key(sse.live) == by_key(arbs.live)
        assert any(m.get("type") == "venues" for m in sse.control)
        assert by_key(arbs.live), "the first part opens arbitrage"
        assert {m["topic"] for m in everything.live} == {
            topics.spreads,
            topics.signals,
            topics.ticks,
        }

        # a restart mid-stream: the gateway stops, records go on, a new gateway starts
        assert g1.stop() == 0
        _produce(tmp_path, config_path, kafka_bootstrap, second, "second.jsonl")
        g2 = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "g2.log")
        g2.wait_ready()
        during, _ = clients.subscribe(g2.url, {})
        wait_for(lambda: during.snapshots_done > 0, 30, "a snapshot from the restarted gateway")
        _produce(tmp_path, config_path, kafka_bootstrap, third, "third.jsonl")
        counts = _expected_counts(lines, config_path, topics)
        committed = topic_messages(
            _topics_now(kafka_bootstrap, topics, counts), frozenset(config.venues)
        )
        topic_by_key = by_key(committed)
        # what the worker had committed when the client subscribed, it got in the snapshot;
        # after that, every record of every key, in order
        starts = {
            (m["topic"], m["key"]): m["record"]
            for m in during.snapshot
            if m["record"]["type"] != "quote"
        }
        wait_for(
            lambda: len(during.live) >= 1 and _settled(during), 60, "the last part at the client"
        )
        problems = {}
        for key, got in by_key(during.live).items():
            if key[0] == topics.ticks:
                continue
            problem = _suffix_problems(got, topic_by_key[key], starts.get(key))
            if problem:
                problems[key] = problem
        assert problems == {}
        # snapshot + live = the topics' final state
        assert final_view(during.snapshot + during.live) == final_view(committed)
        # and a subscriber arriving now gets exactly the topics' final state
        after, _ = clients.subscribe(g2.url, {})
        wait_for(lambda: after.snapshots_done > 0, 30, "the final snapshot")
        assert snapshot_view(after.snapshot) == final_view(committed)
        assert any(m["record"]["type"] == "signal" for m in after.snapshot), (
            "open signals at the end"
        )
        assert g2.stop() == 0
    finally:
        clients.close()
        worker.stop()


def _settled(received: Any) -> bool:
    """No new live record for a second."""
    n = len(received.live)
    time.sleep(1.0)
    return len(received.live) == n
