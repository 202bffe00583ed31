"""Gateway benchmark: how fast ``arbstream gateway`` fans committed records out to many
WebSocket clients, and how long a record takes from its commit to a client.

On a local broker (``KAFKA_BOOTSTRAP``; ``make bench`` starts one), with the real
``arbstream gateway`` in its own process and ``--clients`` WebSocket clients (default
100, all subscribed to every spread) in this one:

* **fan-out**: ``--records`` spread records are committed in transactions of 1,000 (as a
  worker commits its batches); messages/s = clients x records / (time the last client
  has the last record - time the first transaction began).
* **latency** at ``--rate`` records/s for ``--seconds``: every 10 ms one transaction;
  for every record, the time it reaches a client minus the time its
  ``commit_transaction`` returned (the first ten clients measure; a record can arrive a
  little before its commit call returns, as the broker writes the markers first).

The clients share the machine with the gateway and the broker: on 2 cores the figures
are the three together, as a deployment on one small host would see them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from socket import socket
from typing import Any

import orjson
import websockets
from aiokafka import AIOKafkaProducer

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from arbstream.supervisor import ChildProcess, arbstream_command
from benchmarks.cleanup import drop_topics_now
from benchmarks.kafka import bench_kafka, ensure_led_topics
from benchmarks.stats import peak_rss_mib, percentiles
from benchmarks.workload import CONFIG_TOML

TS = re.compile(rb'"ts":(\d+)')
MEASURING_CLIENTS = 10
KEYS = [f"XAG|V{i:02d}|W{i:02d}" for i in range(20)]


def _spread(ts: int, i: int) -> bytes:
    a, b = KEYS[i % len(KEYS)].split("|")[1:]
    return orjson.dumps(
        {"type": "spread", "instrument": "XAG", "a": a, "b": b, "ts": ts, "a_mid": 78.5,
         "b_mid": 85.3, "spread": -6.8, "spread_bps": -795.3, "windows": {}}
    )  # fmt: skip


class Client:
    def __init__(self, measuring: bool) -> None:
        self.count = 0
        self.measuring = measuring
        self.arrivals: dict[int, float] = {}
        self.ready = asyncio.Event()

    async def run(self, url: str, stop: asyncio.Event) -> None:
        async with websockets.connect(url, max_size=None, max_queue=None) as ws:
            await ws.send('{"op": "subscribe", "filters": {"types": ["spread"]}}')
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(decode=False), 0.5)
                except TimeoutError:
                    continue
                if message.startswith(b'{"topic"'):
                    self.count += 1
                    if self.measuring:
                        found = TS.search(message)
                        if found:
                            self.arrivals[int(found.group(1))] = time.time()
                elif b'"phase":"end"' in message:
                    self.ready.set()


async def _transactions(
    producer: AIOKafkaProducer, topic: str, batches: list[list[int]], pace_s: float
) -> dict[int, float]:
    committed: dict[int, float] = {}
    start = time.monotonic()
    for n, batch in enumerate(batches):
        await producer.begin_transaction()
        for ts in batch:
            await producer.send(topic, _spread(ts, ts), key=KEYS[ts % len(KEYS)].encode())
        await producer.commit_transaction()
        now = time.time()
        committed.update(dict.fromkeys(batch, now))
        if pace_s:
            delay = start + (n + 1) * pace_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    return committed


async def run(bootstrap: str, url: str, topics: Topics, args: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    clients = [Client(i < MEASURING_CLIENTS) for i in range(args.clients)]
    tasks = [asyncio.create_task(c.run(url, stop)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    producer = bench_kafka(bootstrap).producer(
        transactional_id=f"gateway-bench-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True, acks="all", linger_ms=0,
    )  # fmt: skip
    await producer.start()
    try:
        # fan-out
        n = args.records
        t0 = time.time()
        await _transactions(
            producer,
            topics.spreads,
            [list(range(i, min(n, i + 1000))) for i in range(0, n, 1000)],
            0,
        )
        while min(c.count for c in clients) < n:
            await asyncio.sleep(0.01)
        fanout_s = time.time() - t0
        # latency
        base = 10_000_000
        per = max(1, args.rate // 100)
        slices = int(args.seconds * 100)
        batches = [list(range(base + i * per, base + (i + 1) * per)) for i in range(slices)]
        committed = await _transactions(producer, topics.spreads, batches, 0.01)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
    warm = base + per * 100  # the first second is warm-up
    samples = [
        arrival - committed[ts]
        for c in clients[:MEASURING_CLIENTS]
        for ts, arrival in c.arrivals.items()
        if ts >= warm and ts in committed
    ]
    expected = len([ts for ts in committed if ts >= warm]) * MEASURING_CLIENTS
    return {
        "clients": args.clients,
        "fanout": {
            "records": n,
            "seconds": round(fanout_s, 3),
            "messages_per_s": round(args.clients * n / fanout_s),
        },
        "latency": {
            "rate": args.rate,
            "samples": len(samples),
            "missing": expected - len(samples),
            **percentiles(samples),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("gateway_bench: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp_name:
        tmp = Path(tmp_name)
        prefix = f"gwbench{uuid.uuid4().hex[:8]}"
        config_path = tmp / "config.toml"
        config_path.write_text(
            re.sub(r"(?m)^topic_prefix = .*$", f'topic_prefix = "{prefix}"', CONFIG_TOML)
        )
        config = load_config(config_path)
        asyncio.run(ensure_led_topics(bootstrap, config))
        with socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
            "ARBSTREAM_GATEWAY_PORT": str(port),
            "ARBSTREAM_GATEWAY_HOST": "127.0.0.1",
            # the fan-out run commits every record at once: no client is slow here
            "ARBSTREAM_GATEWAY_QUEUE": str(max(10_000, args.records)),
        }
        gateway = ChildProcess(
            arbstream_command("gateway", "--config", str(config_path)),
            tmp / "gateway.log",
            env=env,
            name="gateway",
        )
        try:
            deadline = time.monotonic() + 60
            while b"arbstream gateway ready" not in (tmp / "gateway.log").read_bytes():
                if time.monotonic() > deadline or not gateway.alive():
                    sys.exit(f"gateway_bench: the gateway did not start:\n{gateway.tail(20)}")
                time.sleep(0.1)
            result = asyncio.run(run(bootstrap, f"ws://127.0.0.1:{port}/ws", Topics(prefix), args))
            result["gateway_peak_rss_mib"] = peak_rss_mib(gateway.pid)
        finally:
            gateway.stop(30)
            drop_topics_now(bootstrap, prefix)
    result["date"] = date.today().isoformat()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {python}"
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    f, lat = result["fanout"], result["latency"]
    print(f"gateway benchmark, {result['date']}, {result['machine']}")
    print(
        f"  fan-out to {result['clients']} WebSocket clients: {f['messages_per_s']:,} messages/s"
        f" ({f['records']:,} records in {f['seconds']} s)"
    )
    print(
        f"  commit to client at {lat['rate']:,} records/s: p50 {lat['p50_ms']} ms, p99"
        f" {lat['p99_ms']} ms over {lat['samples']:,} samples ({lat['missing']} missing)"
    )
    print(f"  gateway peak RSS {result['gateway_peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
