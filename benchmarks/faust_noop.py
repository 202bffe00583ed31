"""How fast Faust's stream delivers events to an agent that does nothing with them.

The ceiling of any worker built as a Faust agent on this machine: 100,000 small records
preloaded into a 4-partition topic, one worker, an agent taking ``take_events`` batches
of 2,000 (2 ms) and only counting them. Prints events/s from the first batch to the
last, for ``at_least_once`` and ``exactly_once``. Needs ``KAFKA_BOOTSTRAP``.

Run: ``python -m benchmarks.faust_noop`` (``make bench`` does).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from socket import socket

from aiokafka.admin import NewTopic

from benchmarks.cleanup import drop_topics_now
from benchmarks.kafka import bench_kafka, wait_for_leaders

N = 100_000

APP_CODE = """
import os, sys, time
import faust
bootstrap, topic, guarantee, port, n, result, datadir = sys.argv[1:8]
n = int(n)
app = faust.App(f"noop-{topic}-{guarantee}", broker=f"kafka://{bootstrap}", store="memory://",
                datadir=datadir,
                processing_guarantee=guarantee, key_serializer="raw", value_serializer="raw",
                consumer_auto_offset_reset="earliest", web_port=int(port), web_host="127.0.0.1")
source = app.topic(topic, key_type=bytes, value_type=bytes)
seen = {"n": 0, "t0": 0.0}

@app.agent(source)
async def count(stream):
    async for events in stream.take_events(2000, within=0.002):
        if not seen["n"]:
            seen["t0"] = time.perf_counter()
        seen["n"] += len(events)
        if seen["n"] >= n:
            with open(result, "w") as out:
                out.write(str(n / (time.perf_counter() - seen["t0"])))
            os._exit(0)

sys.argv = [sys.argv[0], "worker", "-l", "warn"]
app.main()
"""


async def load(bootstrap: str, topic: str) -> None:
    admin = bench_kafka(bootstrap).admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
        await wait_for_leaders(admin, {topic: 4})
    finally:
        await admin.close()
    producer = bench_kafka(bootstrap).producer(linger_ms=5, max_batch_size=262144)
    await producer.start()
    try:
        futures = [await producer.send(topic, b'{"x": 1}', key=b"%d" % (i % 4)) for i in range(N)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if not bootstrap:
        sys.exit("faust_noop: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    topic = f"noop{uuid.uuid4().hex[:8]}"
    try:
        run_both(bootstrap, topic)
    finally:
        drop_topics_now(bootstrap, topic)  # the apps' own topics carry its name too


def run_both(bootstrap: str, topic: str) -> None:
    asyncio.run(load(bootstrap, topic))
    for guarantee in ("at_least_once", "exactly_once"):
        with socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="faust-noop-") as tmp:
            result = Path(tmp) / "rate"
            args = [bootstrap, topic, guarantee, str(port), str(N), str(result), tmp]
            out = subprocess.run(
                [sys.executable, "-c", APP_CODE, *args],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            rate = result.read_text() if result.exists() else None
        if rate is None:
            sys.exit(
                f"faust_noop: {guarantee} run failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
            )
        print(
            f"faust no-op agent, {guarantee}: {float(rate):,.0f} events/s "
            f"({N:,} events; run took {time.monotonic() - started:.1f} s)"
        )


if __name__ == "__main__":
    main()
