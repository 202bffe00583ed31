"""The gateway on the real broker with a real worker: ``arbstream gateway`` in its own
process, real WebSocket clients, records compared with the topics themselves."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import orjson

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics, partition_counts
from arbstream.config import load_config
from arbstream.gateway.subscription import Subscription
from helpers.gateway import (
    Clients,
    GatewayProcess,
    by_key,
    final_view,
    produce_lines,
    snapshot_view,
    topic_messages,
)
from helpers.kafka import consume, wait_for
from helpers.paths import SCENARIOS
from helpers.pipeline import Worker, replay_by_key

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
ARBS = {"types": ["signal"], "kinds": ["arb"]}
ONE_PAIR = {"types": ["spread"], "pairs": ["SHFE|COMEX"]}


def _config(tmp_path: Path, prefix: str) -> Path:
    text = (SCENARIO / "config.toml").read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    path = tmp_path / "gateway.toml"
    path.write_text(text + "\n[kafka]\npartitions = 3\n")
    return path


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
    gateways: list[GatewayProcess] = []
    try:
        worker.wait_ready()
        g1 = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "g1.log")
        gateways.append(g1)
        g1.wait_ready()
        everything, _ = clients.subscribe(g1.url, {})
        arbs, _ = clients.subscribe(g1.url, ARBS)
        pair, _ = clients.subscribe(g1.url, ONE_PAIR)
        sse = clients.events(f"{g1.http}/events?types=signal&kinds=arb")
        readers = (everything, arbs, pair, sse)
        wait_for(lambda: all(r.snapshots_done for r in readers), 30, "snapshots")

        produce_lines(tmp_path, config_path, kafka_bootstrap, first, "first.jsonl")
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
        assert sse.control[0]["type"] == "subscribed"
        assert sse.control[0]["filters"]["kinds"] == ["arb"]
        assert by_key(arbs.live), "the first part opens arbitrage"
        assert {m["topic"] for m in everything.live} == {
            topics.spreads,
            topics.signals,
            topics.ticks,
        }

        # a restart mid-stream: the gateway stops, records go on, a new gateway starts
        assert g1.stop() == 0
        produce_lines(tmp_path, config_path, kafka_bootstrap, second, "second.jsonl")
        g2 = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "g2.log")
        gateways.append(g2)
        g2.wait_ready()
        during, _ = clients.subscribe(g2.url, {})
        wait_for(lambda: during.snapshots_done > 0, 30, "a snapshot from the restarted gateway")
        produce_lines(tmp_path, config_path, kafka_bootstrap, third, "third.jsonl")
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
        # until the client holds the topics' final state (snapshot + live)
        final = final_view(committed)
        with contextlib.suppress(AssertionError):  # the assert below says what differs
            wait_for(
                lambda: final_view(during.snapshot + during.live) == final,
                60,
                "the last part at the client",
            )
        got_final = final_view(during.snapshot + during.live)
        missing = set(final) - set(got_final)
        if missing:  # printed in full (an assertion message is cut short): a rare failure
            print("missing:", missing)
            print(
                "their records on the topics:",
                [m for m in committed if (m["topic"], m["key"], None) in missing],
            )
            print(
                "snapshot signals:",
                [
                    (m["key"], m["record"].get("event"), m["record"].get("seq"))
                    for m in during.snapshot
                    if m["record"]["type"] == "signal"
                ],
            )
            print(
                "live signals:",
                [
                    (m["key"], m["record"].get("event"), m["record"].get("seq"))
                    for m in during.live
                    if m["record"]["type"] == "signal"
                ],
            )
            print("g2 log:", g2.proc.log_path.read_text()[-3000:])
        assert not missing, (
            missing,
            [
                (m["key"], m["record"].get("event"), m["record"].get("seq"))
                for m in during.snapshot + during.live
                if (m["topic"], m["key"], None) in missing
            ],
            [
                (m["key"], m["record"].get("event"), m["record"].get("seq"))
                for m in during.snapshot
                if m["record"]["type"] == "signal"
            ],
            len(during.snapshot),
            len(during.live),
            during.control[:3],
        )
        assert {k: v for k, v in got_final.items() if final.get(k) != v} == {}
        assert got_final == final
        problems = {}
        for key, got in by_key(during.live).items():
            if key[0] == topics.ticks:
                continue
            problem = _suffix_problems(got, topic_by_key[key], starts.get(key))
            if problem:
                problems[key] = problem
        assert problems == {}
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
        for gateway in gateways:
            if gateway.proc.alive():
                gateway.stop()
        worker.stop()


def test_a_gateway_started_before_its_topics_waits_then_serves_and_resubscribes(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Started before the worker has created the topics: not ready, creates nothing
    itself, tells subscribers it is not ready; then snapshot and live records once the
    topics exist; a subscription changed mid-stream gets a new snapshot and from then on
    only what it asks for."""
    prefix = f"gwearly{uuid.uuid4().hex[:6]}"
    config_path = _config(tmp_path, prefix)
    config = load_config(config_path)
    topics = Topics(prefix)
    lines = [x for x in (SCENARIO / "ticks.jsonl").read_bytes().splitlines() if x.strip()]
    gateway = GatewayProcess(config_path, kafka_bootstrap, tmp_path / "gateway.log")
    clients = Clients()
    worker = None
    try:
        wait_for(lambda: gateway.status("/healthz") == 200, 60, "the gateway to listen")
        status, body = gateway.get("/readyz")
        assert status == 503 and orjson.loads(body)["assigned"] is False
        early, _ = clients.subscribe(gateway.url, {"types": ["signal"]})
        wait_for(lambda: early.control, 30, "the subscribed message")
        assert early.control[0] == {
            "type": "subscribed",
            "filters": {**Subscription().model_dump(), "types": ["signal"]},
            "ready": False,
        }
        worker = Worker(config_path, kafka_bootstrap, tmp_path / "worker.log")
        worker.wait_ready()
        gateway.wait_ready()
        wait_for(lambda: early.snapshots_done == 1, 30, "the snapshot once caught up")
        # the worker created the topics, with the config's partitions: not the gateway
        partitions = asyncio.run(partition_counts(KafkaClients(kafka_bootstrap), [topics.ticks]))
        assert partitions[topics.ticks] == 3
        produce_lines(tmp_path, config_path, kafka_bootstrap, lines[:900], "first.jsonl")
        counts = _expected_counts(lines[:900], config_path, topics)
        committed = topic_messages(
            _topics_now(kafka_bootstrap, topics, counts), frozenset(config.venues)
        )
        signals = Subscription(types=["signal"])
        want = by_key(committed, signals)
        wait_for(lambda: by_key(early.live) == want, 60, "the first part's signals")
        # a new subscription mid-stream: a new snapshot, then only that pair's spreads
        before = len(early.control)
        clients.send(early, {"op": "subscribe", "filters": ONE_PAIR})
        wait_for(lambda: early.snapshots_done == 2, 30, "the new snapshot")
        assert early.control[before]["filters"]["pairs"] == ONE_PAIR["pairs"]
        pair_key = (topics.spreads, "XAG|COMEX|SHFE")
        assert [
            (m["topic"], m["key"]) for m in early.snapshot if m["record"]["type"] != "quote"
        ] == [pair_key]
        mark = len(early.live)
        produce_lines(tmp_path, config_path, kafka_bootstrap, lines[900:], "rest.jsonl")
        counts = _expected_counts(lines, config_path, topics)
        committed = topic_messages(
            _topics_now(kafka_bootstrap, topics, counts), frozenset(config.venues)
        )
        expected_pair = by_key(committed)[pair_key]
        snapshot_record = next(m["record"] for m in early.snapshot if m["key"] == pair_key[1])

        def after_resubscribe() -> dict[tuple[str, str | None], list[dict[str, Any]]]:
            return by_key(early.live[mark:])

        wait_for(
            lambda: after_resubscribe().get(pair_key, [None])[-1] == expected_pair[-1],
            60,
            "the pair's last record after the new snapshot",
        )
        assert set(after_resubscribe()) == {pair_key}
        got = after_resubscribe()[pair_key]
        assert _suffix_problems(got, expected_pair, snapshot_record) == ""
        assert gateway.stop() == 0
    finally:
        clients.close()
        if worker is not None:
            worker.stop()
        if gateway.proc.alive():
            gateway.stop()
