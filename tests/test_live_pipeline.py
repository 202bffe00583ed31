"""End to end on the real broker, every component a real process as an operator runs it:
``arbstream simulate`` -> WebSockets (all four protocols) -> ``arbstream feed`` -> Kafka
-> ``arbstream worker`` -> the signals topic; and ``arbstream demo`` itself."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from helpers.kafka import consume, free_port, scaled
from helpers.paths import SCENARIOS
from helpers.pipeline import Worker, arbstream_process, demo_config, replay_by_key
from helpers.schemas import check_outputs

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
#: The first 345 s of the scenario: arbitrage opens at 10.7, 28.1, 322.3, 329.7 and 336 s.
LINES = 600
SPEED = 30.0

FEEDS = """
[feeds.comex]
protocol = "binance"
url = "ws://127.0.0.1:{comex}/public/ws"
venue = "COMEX"
symbols = {{ XAGUSD = "XAG" }}
sequence = "contiguous"

[feeds.lbma]
protocol = "hyperliquid"
url = "ws://127.0.0.1:{lbma}/ws"
venue = "LBMA"
symbols = {{ "xyz:LDNSILVER" = "XAG" }}
ping_interval_s = 1.0

[feeds.shfe]
protocol = "native"
url = "ws://127.0.0.1:{shfe}/shfe"
venue = "SHFE"
sequence = "contiguous"

[feeds.sge]
protocol = "native"
url = "ws://127.0.0.1:{sge}/sge"
venue = "SGE"

[feeds.shuibei]
protocol = "native"
url = "ws://127.0.0.1:{shuibei}/shuibei"
venue = "SHUIBEI"

[feeds.usdcny]
protocol = "massive"
url = "ws://127.0.0.1:{fx}/forex"
symbols = {{ "USD/CNY" = "USDCNY" }}
api_key_env = "TEST_MASSIVE_KEY"
idle_timeout_s = 120.0
"""


def _write_config(tmp_path: Path, prefix: str) -> Path:
    text = (SCENARIO / "config.toml").read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    ports = {name: free_port() for name in ("comex", "lbma", "shfe", "sge", "shuibei", "fx")}
    path = tmp_path / "live.toml"
    path.write_text(text + "\n[kafka]\npartitions = 4\n" + FEEDS.format(**ports))
    return path


def _arb_opens(signals: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (s["instrument"], s["buy"], s["sell"], s["opened_ts"], s["ts"])
        for s in signals
        if s["kind"] == "arb" and s["event"] == "open"
    )


def test_simulator_to_feeds_to_worker_gives_the_replay_arbitrage_opens(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"live-{uuid.uuid4().hex[:8]}"
    config_path = _write_config(tmp_path, prefix)
    config = load_config(config_path)
    lines = (SCENARIO / "ticks.jsonl").read_bytes().splitlines(keepends=True)[:LINES]
    scenario = tmp_path / "ticks.jsonl"
    scenario.write_bytes(b"".join(lines))
    expected, _ = replay_by_key(lines, config)
    want = _arb_opens(
        [r for (stream, _), rs in expected.items() if stream == "signals" for r in rs]
    )
    assert sum(want.values()) == 6

    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
        "TEST_MASSIVE_KEY": "test-key",
    }
    worker = Worker(config_path, kafka_bootstrap, tmp_path / "worker.log")
    feed = ["feed", "--config", str(config_path)]
    feeds = arbstream_process(feed, env, tmp_path / "feeds.log")
    simulate = ["simulate", "--config", str(config_path), "--scenario", str(scenario)]
    simulate += ["--speed", str(SPEED)]
    simulator = arbstream_process(simulate, env, tmp_path / "simulator.log")
    try:
        worker.wait_ready()
        assert simulator.wait(scaled(90)) == 0, (tmp_path / "simulator.log").read_text()
        signals = asyncio.run(
            consume(
                kafka_bootstrap,
                Topics(prefix).signals,
                sum(len(rs) for (s, _), rs in expected.items() if s == "signals"),
                timeout_s=60,
                isolation_level="read_committed",
                linger_s=2,
            )
        )
    finally:
        for proc in (simulator, feeds):
            if proc.alive():
                proc.terminate()
        feeds_status = feeds.wait(scaled(30))
        worker_status = worker.stop()
    feeds_log = (tmp_path / "feeds.log").read_text()
    assert feeds_status == 0 and worker_status == 0, feeds_log[-3000:]
    check_outputs(orjson.loads(r.value) for r in signals)
    got = _arb_opens([orjson.loads(r.value) for r in signals])
    assert got == want, f"live {sorted(got)} != replay {sorted(want)}"

    # Every quote and fx of the scenario reached the ticks topic once, stamped recv_ts.
    sent = Counter(
        (r["type"], r.get("venue") or r.get("pair")) for r in (orjson.loads(line) for line in lines)
    )
    n_ticks = sent.total() + 3 * sent[("fx", "USDCNY")]  # fx to each of 4 partitions
    ticks = asyncio.run(consume(kafka_bootstrap, Topics(prefix).ticks, n_ticks, linger_s=1))
    values = [orjson.loads(r.value) for r in ticks]
    assert len(values) == n_ticks
    assert all(type(v["recv_ts"]) is int for v in values)
    fx_per_partition = Counter(r.partition for r in ticks if orjson.loads(r.value)["type"] == "fx")
    assert set(fx_per_partition.values()) == {sent[("fx", "USDCNY")]}
    quotes = Counter(v["venue"] for v in values if v["type"] == "quote")
    assert quotes == Counter({venue: n for (kind, venue), n in sent.items() if kind == "quote"})
    # no frame was bad, duplicated or missing on any connection: the final counters
    report = re.findall(
        r"feed (\w+): (?:connected|DISCONNECTED), \d+ frames, \d+ records, (\d+) bad, "
        r"(\d+) duplicates, (\d+) gaps",
        feeds_log,
    )
    final = {feed: counts for feed, *counts in report}
    assert set(final) == {"comex", "lbma", "shfe", "sge", "shuibei", "usdcny"}, feeds_log[-2000:]
    assert all(counts == ["0", "0", "0"] for counts in final.values()), final


def test_demo_runs_the_live_system_and_writes_its_summary(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = demo_config(tmp_path, f"demo-{uuid.uuid4().hex[:8]}")
    summary = tmp_path / "summary.json"
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
        "ARBSTREAM_GATEWAY_PORT": str(free_port()),
    }
    env.pop("MASSIVE_API_KEY", None)  # the demo supplies a placeholder for the simulator
    demo = [sys.executable, "-m", "arbstream.cli", "demo", "--config", str(config)]
    run = ["--scenario", str(SCENARIO / "ticks.jsonl"), "--speed", "20", "--seconds", "20"]
    proc = subprocess.run(
        [*demo, *run, "--summary", str(summary), "--log-dir", str(tmp_path / "logs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = orjson.loads(summary.read_bytes())
    assert set(result) == {"quotes", "spreads", "signals"}
    assert set(result["quotes"]) == {"COMEX", "LBMA", "SHFE", "SGE", "SHUIBEI"}
    assert all(n > 0 for n in result["quotes"].values()), result
    # 20 s at speed 20 is the scenario's first 400 s: the Shuibei board opens wide at
    # 1.2 s, COMEX>LBMA opens at 10.7 s and closes at 21.9 s
    assert result["spreads"] > 100, result
    signals = result["signals"]
    assert signals["arb.open"] >= 2 and signals["arb.close"] >= 1, result
    assert signals["wide.open"] == 1 and signals["wide.close"] == 0, result
    # everything it started has stopped: its logs end with the components' stop lines
    logs = tmp_path / "logs"
    assert "worker stopped" in (logs / "worker.log").read_text()
    assert "simulator stopped" in (logs / "simulator.log").read_text()
    assert "gateway stopped" in (logs / "gateway.log").read_text()
    page = f"the live page is at http://127.0.0.1:{env['ARBSTREAM_GATEWAY_PORT']}/"
    assert page in proc.stdout, proc.stdout[-2000:]
