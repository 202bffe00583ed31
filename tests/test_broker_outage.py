"""A broker that goes away and comes back: the feed process and the worker stay calm
(bounded CPU and log lines, not ready while it is away) and carry on when it returns,
with every record the feeds buffered delivered once and the worker's output equal to
replay of what reached the ticks topic.

The test runs its own broker (the session's must stay up for the other tests), stops it
with SIGTERM as ``make kafka-down`` does, keeps its data, and starts it again on the
same port 20 s later.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from helpers.compare import diff_streams
from helpers.http import get
from helpers.kafka import Record, consume, free_port, kafka_sh, scaled
from helpers.kafka import wait_for as _wait_for
from helpers.pipeline import Worker, arbstream_process, group_by_key, replay_by_key
from helpers.venue_server import VenueServer

# (it starts and stops a broker of its own)
pytestmark = pytest.mark.kafka

OUTAGE_S = 20.0
#: Bounds over the outage, per process. The feed still takes 2 x 25 quotes/s from its
#: venues meanwhile (and buffers them), which costs a little CPU of its own.
CPU_BOUND_S = 2.0
LOG_LINES_BOUND = 40


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lines_of(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body), or (0, b"") while nothing answers."""
    try:
        return get(f"http://127.0.0.1:{port}{path}", 5)
    except OSError:
        return 0, b""


def metric(port: int, name: str) -> float | None:
    """The sum of a metric's samples (over its labels), None if it cannot be read."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    values = re.findall(rb"^" + name.encode() + rb"(?:\{[^}]*\})? (\S+)$", body, re.M)
    return sum(float(v) for v in values) if values else None


def delivered(port: int) -> bool:
    """Every record the feeds parsed is acknowledged by Kafka (none buffered or in flight)."""
    sent = metric(port, "arbstream_feed_kafka_sent_total")
    return sent is not None and sent == metric(port, "arbstream_feed_records_total")


#: Poll every 0.1 s: each check scrapes a process's metrics.
wait_for = functools.partial(_wait_for, every_s=0.1)


def test_feed_and_worker_stay_calm_without_a_broker_and_resume_when_it_returns(
    tmp_path: Path,
) -> None:
    kafka_port = free_port()
    broker_env = {
        **os.environ,
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
        "KAFKA_KEEP_DATA": "1",
    }
    broker_env.pop("KAFKA_CONTROLLER_PORT", None)
    bootstrap = f"127.0.0.1:{kafka_port}"
    kafka_sh("up", broker_env, scaled(120))
    loop = asyncio.new_event_loop()  # the venues' own, in a thread: they never pause
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def on_loop(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(scaled(30))

    venues = [VenueServer(free_port(), 0.04, "X"), VenueServer(free_port(), 0.04, "Y")]
    prefix = f"o{uuid.uuid4().hex[:8]}"
    config_path = tmp_path / "outage.toml"
    config_path.write_text(
        f'topic_prefix = "{prefix}"\n[defaults]\nstale_ms = 600000\n'
        '[venues.X]\ncurrency = "USD"\nunit = "oz"\n[venues.Y]\ncurrency = "USD"\nunit = "oz"\n'
        + "".join(
            f'[feeds.{v.venue.lower()}]\nprotocol = "native"\nurl = "{v.url}"\n'
            f'venue = "{v.venue}"\nidle_timeout_s = 60.0\n'
            for v in venues
        )
        + "[kafka]\npartitions = 2\n"
    )
    feed_port = free_port()
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
        "ARBSTREAM_FEED_METRICS_PORT": str(feed_port),
    }
    feed_log = tmp_path / "feed.log"
    feed = None
    worker = None
    try:
        for v in venues:
            on_loop(v.start())
        worker = Worker(config_path, bootstrap, tmp_path / "worker.log")
        worker.wait_ready()
        feed = arbstream_process(["feed", "--config", str(config_path)], env, feed_log)

        def feed_ready() -> bool:
            return http_get(feed_port, "/readyz")[0] == 200

        wait_for(feed_ready, 30, "the feed to be ready")
        # (a venue's frames before its feed subscribed went to nobody)
        first = {v.venue: v.seq + 1 for v in venues}
        time.sleep(3.0)
        # Quiet venues while the broker stops: no chunk is in flight at the stop, so
        # none can land unacknowledged (which would be delivered again: at-least-once).
        for v in venues:
            v.stalled = True
        wait_for(lambda: delivered(feed_port), 10, "every record to be delivered")
        kafka_sh("down", broker_env, scaled(60))
        for v in venues:
            v.stalled = False
        cpu = {"feed": cpu_seconds(feed.pid), "worker": cpu_seconds(worker.pid)}
        lines = {"feed": lines_of(feed_log), "worker": lines_of(worker.log_path)}
        outage_start = time.monotonic()

        def disconnected() -> bool:
            return metric(feed_port, "arbstream_feed_kafka_connected") == 0.0

        try:
            gauge_s: float | None = wait_for(disconnected, 10, "the connected gauge to read 0")
        except AssertionError:
            gauge_s = None  # reported with the other figures below
        time.sleep(max(0.0, outage_start + 5 - time.monotonic()))
        readyz = {
            "feed": http_get(feed_port, "/readyz")[0],
            "worker": http_get(worker.web_port, "/readyz")[0],
        }
        time.sleep(max(0.0, outage_start + OUTAGE_S - time.monotonic()))
        used = {
            "feed": cpu_seconds(feed.pid) - cpu["feed"],
            "worker": cpu_seconds(worker.pid) - cpu["worker"],
        }
        logged = {
            "feed": lines_of(feed_log) - lines["feed"],
            "worker": lines_of(worker.log_path) - lines["worker"],
        }
        buffered = metric(feed_port, "arbstream_feed_buffer_records")
        print(
            f"over {OUTAGE_S:.0f} s without a broker: CPU s {used}, log lines {logged}, "
            f"connected gauge 0 after {gauge_s} s, /readyz {readyz}, {buffered} buffered"
        )
        assert feed.alive() and worker.alive()
        assert gauge_s is not None and gauge_s <= 5.0
        assert readyz == {"feed": 503, "worker": 503}
        assert buffered is not None and buffered > 100  # the feeds went on taking quotes
        for name in ("feed", "worker"):
            assert used[name] <= CPU_BOUND_S, (name, used[name])
            assert logged[name] <= LOG_LINES_BOUND, (name, logged[name])

        kafka_sh("up", broker_env, scaled(120))
        wait_for(feed_ready, 60, "the feed to be ready again")
        for v in venues:
            v.stalled = True
        wait_for(lambda: delivered(feed_port), 60, "the feed to deliver what it buffered")
        wait_for(lambda: http_get(worker.web_port, "/readyz")[0] == 200, 60, "the worker")
        published = {v.venue: v.seq for v in venues}
    except BaseException:
        if worker is not None:
            worker.stop()
        kafka_sh("down", {**broker_env, "KAFKA_KEEP_DATA": ""}, scaled(60))
        raise
    finally:
        if feed is not None and feed.alive():
            feed.terminate()
            feed.wait(scaled(30))
        for v in venues:
            on_loop(v.close())
        loop.call_soon_threadsafe(loop.stop)

    try:
        topics = Topics(prefix)
        ticks = asyncio.run(consume(bootstrap, topics.ticks, 0, linger_s=3.0))
        # Every quote the venues published reached the ticks topic exactly once (the
        # feeds were connected to their venues throughout).
        seqs = Counter((r["venue"], r["seq"]) for r in map(_value, ticks))
        assert {k: n for k, n in seqs.items() if n != 1} == {}
        for venue, last in published.items():
            missing = set(range(first[venue], last + 1)) - {s for (v, s) in seqs if v == venue}
            assert not missing, (venue, last, sorted(missing))
        assert all(last - first[venue] > 500 for venue, last in published.items())
        # The worker resumed: its committed output equals replay of the ticks topic.
        ordered = [r.value for r in sorted(ticks, key=lambda r: (r.partition, r.offset))]
        expected, _ = replay_by_key(ordered, load_config(config_path))
        n_spreads = sum(len(v) for v in expected.values())
        spreads = asyncio.run(
            consume(
                bootstrap,
                topics.spreads,
                n_spreads,
                timeout_s=60,
                isolation_level="read_committed",
                linger_s=1.0,
            )
        )
        actual = group_by_key(spreads, "spreads")
        problems = [
            f"{key}: {line}"
            for key in set(actual) | set(expected)
            for line in diff_streams(actual.get(key, []), expected.get(key, []), limit=3)
        ]
        assert not problems, problems
        assert worker.stop() == 0, worker.log_tail()
    finally:
        if worker is not None:
            worker.stop()
        kafka_sh("down", {**broker_env, "KAFKA_KEEP_DATA": ""}, scaled(60))


def _value(record: Record) -> Any:
    return orjson.loads(record.value)
