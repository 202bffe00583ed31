"""faust-streaming against the real broker: a worker process keeps Table state across restarts.

The app (``faust_ground_app.py``) counts records per key in a changelog-backed Table with
the in-memory store, emitting ``key:count``. After a graceful stop and a restart with the
same app id the counts must continue (state restored from the changelog topic), with no
record lost or processed twice. Runs with both processing guarantees.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from arbstream.supervisor import ChildProcess
from helpers.kafka import Record, consume, free_port, produce, scaled

APP_MODULE = Path(__file__).resolve().parent / "faust_ground_app.py"


class Worker(ChildProcess):
    """One faust worker process; output and logs go to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        args = [sys.executable, str(APP_MODULE), "worker", "--web-host", "127.0.0.1"]
        args += ["--web-port", str(free_port()), "--loglevel", "info"]
        super().__init__(args, log_path, env=env, name="faust", own_session=True, truncate=True)

    def stop(self, timeout_s: float) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL + error after ``timeout_s``)."""
        self.terminate()
        status = self.wait_until(time.monotonic() + timeout_s)
        if status is None:
            self.kill()
            raise AssertionError(f"faust worker ignored SIGTERM for {timeout_s:.0f}s")
        return self.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float) -> None:
        """Block until faust logs ``[^Worker]: Ready`` (recovery done, streams seeked).

        Records produced before that race faust's recovery: it resumes the fetcher
        ("Resuming flow...") before it seeks the stream partitions to their committed
        offsets, and records fetched in between can be dropped with the queues it clears
        (the pattern of faust-streaming#216). Under at-least-once this lost one record in
        CI (10 of 11 outputs); that is faust's behaviour, not what this test is about.
        """
        deadline = time.monotonic() + timeout_s
        while "[^Worker]: Ready" not in self.log_text():
            if not self.alive():
                raise AssertionError(f"faust worker exited with {self.status()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"faust worker not ready within {timeout_s:.0f}s")
            time.sleep(0.1)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers started by a test; any still running are killed at teardown."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def _outputs_by_key(records: list[Record]) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = defaultdict(list)
    for record in records:
        key, count = record.value.decode().split(":")
        assert record.key == key.encode(), record
        counts[key].append(int(count))
    return dict(counts)


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_table_state_survives_worker_restart(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    workers: list[Worker],
    tmp_path: Path,
    guarantee: str,
) -> None:
    partitions = 2
    in_topic = topic_factory(partitions, prefix="fg-in")
    out_topic = topic_factory(1, prefix="fg-out")
    env = {
        **os.environ,
        "FG_APP_ID": f"fg-{uuid.uuid4().hex[:12]}",
        "FG_BROKER": kafka_bootstrap,
        "FG_IN_TOPIC": in_topic,
        "FG_OUT_TOPIC": out_topic,
        "FG_PARTITIONS": str(partitions),
        "FG_DATADIR": str(tmp_path / "faust-data"),
        "FG_GUARANTEE": guarantee,
        "PYTHONUNBUFFERED": "1",
    }

    def start(n: int) -> Worker:
        worker = Worker(env, tmp_path / f"worker-{n}.log")
        workers.append(worker)
        return worker

    def send(keys: str) -> None:
        records = [(k.encode(), b"x", None) for k in keys]
        asyncio.run(produce(kafka_bootstrap, in_topic, records))

    def outputs(expected: int) -> dict[str, list[int]]:
        records = asyncio.run(
            consume(
                kafka_bootstrap,
                out_topic,
                expected,
                timeout_s=90,
                isolation_level="read_committed",
                linger_s=1.0,
            )
        )
        return _outputs_by_key(records)

    try:
        first = start(1)
        first.wait_ready(scaled(60))
        t0 = time.monotonic()
        send("aabaaba")  # a x5, b x2
        assert outputs(7) == {"a": [1, 2, 3, 4, 5], "b": [1, 2]}
        print(f"first worker: outputs after {time.monotonic() - t0:.1f}s")
        assert first.stop(scaled(60)) == 0, "first worker did not exit cleanly"

        second = start(2)
        second.wait_ready(scaled(60))
        t0 = time.monotonic()
        send("abaa")  # a x3, b x1
        after = outputs(11)
        if guarantee == "exactly_once":
            assert after == {"a": [1, 2, 3, 4, 5, 6, 7, 8], "b": [1, 2, 3]}
        else:
            # At-least-once may redeliver records whose offsets the first worker had not
            # committed when it stopped; they count again. What must hold is that the
            # counts continue from the restored table instead of starting over at 1.
            n = 11
            while n < 13 and (after["a"][-1] < 8 or after.get("b", [0])[-1] < 3):
                n += 1  # redelivered duplicates came first: wait for the new records too
                after = outputs(n)
            for key, total in (("a", 8), ("b", 3)):
                seen = after[key]
                assert seen == list(range(1, len(seen) + 1)), (key, seen)
                assert total <= len(seen) <= total + 2, (key, seen)
        print(f"restarted worker: outputs after {time.monotonic() - t0:.1f}s")
        assert second.stop(scaled(60)) == 0, "second worker did not exit cleanly"
    except BaseException:
        for worker in workers:
            worker.kill()
            print(f"===== {worker.log_path.name} =====\n{worker.log_text()}")
        raise
