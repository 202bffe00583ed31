"""One isolated live deployment for a test: its config (own topic prefix, so its own
topics and consumer group, on a ticks topic with 4 partitions), its input, its workers
(``arbstream worker``, of either runtime), and the check that what they published equals
``arbstream replay`` of the input, per key."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics, ensure_topics
from arbstream.agents.produce import produce_lines
from arbstream.agents.routing import route
from arbstream.config import Config, load_config
from helpers.kafka import Record, Where, alter_topic_config, clients, scaled
from helpers.marketgen import market_case, toml_text
from helpers.paths import SCENARIOS
from helpers.pipeline import (
    Worker,
    compare_with_replay,
    drop_duplicates,
    expected_dlq,
    read_outputs,
    read_ticks,
    replay_by_key,
)
from helpers.streamgen import config_toml, random_stream, random_venues

PARTITIONS = 4
#: Kafka's default max.message.bytes.
KAFKA_MAX_MESSAGE_BYTES = 1048588


@dataclass
class Deployment:
    """One isolated deployment: config file, topics and its input lines."""

    config_path: Path
    config: Config
    lines: list[bytes]
    bootstrap: str
    tmp: Path
    runtime: str = "default"  # arbstream worker --runtime
    guarantee: str | None = None  # and --guarantee (the default runtime's; None: the config's)
    duplicates: int = 0  # dropped by check_equals_replay (when at least once)
    #: On a secured broker: how the test itself reads and writes (an admin's clients),
    #: and each role's ("worker", "feed") variables for the processes it runs.
    admin: Where | None = None
    role_env: Callable[[str], dict[str, str]] = lambda role: {}

    @property
    def topics(self) -> Topics:
        return Topics(self.config.topic_prefix)

    @property
    def kafka(self) -> Where:
        """Where the test's own clients connect."""
        return self.bootstrap if self.admin is None else self.admin

    @property
    def at_least_once(self) -> bool:
        """Whether its workers may repeat outputs after a crash (then with their seq)."""
        guarantee = self.guarantee or self.config.worker.guarantee
        return self.runtime == "faust" or guarantee == "at-least-once"

    def worker(self, name: str = "worker") -> Worker:
        """A worker of this deployment's runtime, logging to ``<name>.log``."""
        role = "faust" if self.runtime == "faust" else "worker"
        return Worker(
            self.config_path,
            self.bootstrap,
            self.tmp / f"{name}.log",
            self.runtime,
            self.role_env(role),
            None if self.runtime == "faust" else self.guarantee,
        )

    def produce_cli(self) -> None:
        """``arbstream produce`` of the whole input, as an operator would run it."""
        path = self.tmp / "ticks.jsonl"
        path.write_bytes(b"\n".join(self.lines) + b"\n")
        env = {
            **os.environ,
            "ARBSTREAM_BROKER": f"kafka://{self.bootstrap}",
            **self.role_env("feed"),
        }
        cmd = [sys.executable, "-m", "arbstream.cli", "produce", str(path)]
        subprocess.run(
            [*cmd, "--config", str(self.config_path)],
            env=env,
            check=True,
            capture_output=True,
            timeout=scaled(120),
        )

    def produce_paced(
        self,
        parts: int,
        pause_s: float,
        lines: list[bytes] | None = None,
        hold_last: threading.Event | None = None,
    ) -> threading.Thread:
        """Produce the input (or ``lines`` of it) in ``parts`` slices with pauses, in a
        background thread, so that workers can be killed or stopped while the stream is
        still arriving. With ``hold_last``, the last slice waits until it is set: input
        still arrives after a failure however long the failure takes on a busy machine."""
        todo = self.lines if lines is None else lines

        def run() -> None:
            size = -(-len(todo) // parts)
            starts = range(0, len(todo), size)
            for i in starts:
                if hold_last is not None and i == starts[-1]:
                    hold_last.wait(scaled(300))
                asyncio.run(produce_lines(todo[i : i + size], self.topics, clients(self.kafka)))
                time.sleep(pause_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def survive_sigkill(self, parts: int, pause_s: float, kill_after_s: float) -> bytes:
        """A worker SIGKILLed while the input is still arriving (``parts`` slices with
        pauses), a second one taking over: the output must equal replay, per key. Returns
        the second worker's log."""
        first = self.worker("first")
        first.wait_ready()
        producer = self.produce_paced(parts, pause_s)
        time.sleep(kill_after_s)
        assert producer.is_alive(), "the stream ended before the kill"
        first.kill()
        second = self.worker("second")
        try:
            producer.join(scaled(120))
            self.check_equals_replay()
            assert second.alive(), second.log_tail()
        finally:
            assert second.stop() == 0, second.log_tail()
        return second.log_path.read_bytes()

    def survive_a_stop(
        self,
        parts: int,
        pause_s: float,
        stop_after_s: float,
        check_survivor: Callable[[Worker], None] | None = None,
    ) -> bytes:
        """Two workers share the partitions; one is stopped (SIGTERM) while the input is
        still arriving, so its partitions move to the other mid-stream: the output must
        equal replay, per key. ``check_survivor`` looks at the survivor before it stops.
        Returns the survivor's log."""
        first, second = self.worker("first"), self.worker("second")
        try:
            first.wait_ready()
            second.wait_ready()
            producer = self.produce_paced(parts, pause_s)
            time.sleep(stop_after_s)
            assert producer.is_alive(), "the stream ended before the stop"
            assert first.stop() == 0, first.log_tail()
            producer.join(scaled(120))
            self.check_equals_replay()
            assert second.alive(), second.log_tail()
            if check_survivor is not None:
                check_survivor(second)
        finally:
            first.stop()
            assert second.stop() == 0, second.log_tail()
        return second.log_path.read_bytes()

    def sigkill_rounds(self, rounds: int, seed: int) -> None:
        """``rounds`` rounds: a worker takes a slice of the input as it arrives and is
        SIGKILLed at a random point of it; a new worker replaces it. Then the last runs to
        the end, and the output (duplicates dropped by (key, seq) when at least once) must
        equal replay."""
        rng = random.Random(seed)
        lines = self.lines
        size = -(-len(lines) // (rounds + 1))
        slices = [lines[i : i + size] for i in range(0, len(lines), size)]
        for n, part in enumerate(slices[:-1]):
            worker = self.worker(f"worker-{n}")
            try:
                worker.wait_ready()
                producer = self.produce_paced(parts=4, pause_s=0.1, lines=part)
                time.sleep(rng.uniform(0.05, 0.6))
            finally:
                worker.kill()
            producer.join(scaled(60))
        worker = self.worker("worker-last")
        try:
            worker.wait_ready()
            self.produce_paced(parts=1, pause_s=0.0, lines=slices[-1]).join(scaled(60))
            self.check_equals_replay()
        finally:
            assert worker.stop() == 0, worker.log_tail()
        print(f"{self.duplicates} duplicates dropped")

    def refused_run(self, topic: str, max_bytes: int) -> str:
        """A worker takes the whole input while Kafka refuses record batches over
        ``max_bytes`` on ``topic`` (set once the worker is ready, so that the state topic
        exists): it must stop with status 1 and no traceback. The limit is lifted after;
        returns the worker's last log line."""
        worker = self.worker("refused")
        worker.wait_ready()
        self.limit_records(topic, max_bytes)
        self.produce_cli()
        status = worker.wait()
        log = worker.log_path.read_text()
        assert status == 1, log[-3000:]
        assert "Traceback" not in log
        self.limit_records(topic, KAFKA_MAX_MESSAGE_BYTES)
        return log.strip().splitlines()[-1]

    def finish_with(self, name: str) -> None:
        """A new worker takes over: the output must equal replay, and it stops cleanly."""
        worker = self.worker(name)
        try:
            self.check_equals_replay()
        finally:
            assert worker.stop() == 0, worker.log_tail()

    def limit_spreads(self, max_bytes: int) -> None:
        """Make Kafka refuse spread records over ``max_bytes`` (``max.message.bytes`` of the
        spreads topic; Kafka's default is 1048588)."""
        self.limit_records(self.topics.spreads, max_bytes)

    def limit_records(self, topic: str, max_bytes: int) -> None:
        """Make Kafka refuse record batches over ``max_bytes`` on ``topic`` (the state
        topic stays compacted)."""
        config = {"max.message.bytes": str(max_bytes)}
        if topic == self.topics.state:
            config["cleanup.policy"] = "compact"
        asyncio.run(alter_topic_config(self.kafka, topic, config))

    def check_equals_replay(self, linger_s: float = 2.0) -> None:
        expected, rejected = replay_by_key(self.lines, self.config)
        counts = {
            "spreads": sum(len(v) for (s, _), v in expected.items() if s == "spreads"),
            "signals": sum(len(v) for (s, _), v in expected.items() if s == "signals"),
            "basis": sum(len(v) for (s, _), v in expected.items() if s == "basis"),
            "dlq": sum(expected_dlq(rejected, PARTITIONS).values()),
        }
        outputs = read_outputs(self.kafka, self.topics, counts, linger_s=linger_s)
        if self.at_least_once:  # duplicates are dropped by seq first
            outputs = self._without_duplicates(outputs, counts, linger_s)
        n_fx = sum(1 for line in self.lines if route(line)[0] == "fx")
        ticks = read_ticks(self.kafka, self.topics, len(self.lines) + n_fx * (PARTITIONS - 1))
        problems = compare_with_replay(outputs, expected, rejected, ticks, self.topics, PARTITIONS)
        assert not problems, "\n".join(problems)
        assert counts["spreads"] > 100 and counts["signals"] > 5  # the check compared something

    def _without_duplicates(
        self, outputs: dict[str, list[Record]], counts: dict[str, int], linger_s: float
    ) -> dict[str, list[Record]]:
        """The outputs after a subscriber's rule (``drop_duplicates``). Duplicates count
        towards what ``read_outputs`` waits for, so it is read again, waiting for more,
        until as many distinct records as replay's have arrived (or a read times out)."""
        while True:
            kept, duplicates, problems = drop_duplicates(outputs)
            if all(len(kept[stream]) >= n for stream, n in counts.items()):
                break
            # replay's count plus the duplicates seen: more than was read, for a stream short
            more = {s: n + len(outputs[s]) - len(kept[s]) for s, n in counts.items()}
            try:
                outputs = read_outputs(self.kafka, self.topics, more, linger_s=linger_s)
            except TimeoutError:
                assert not problems, "\n".join(problems)  # a lost record shows here
                raise
        assert not problems, "\n".join(problems)
        self.duplicates += duplicates
        return kept


DeploymentFactory = Callable[[str, list[bytes]], Deployment]


def deployment_factory(
    bootstrap: str, tmp_path: Path, runtime: str = "default", guarantee: str | None = None
) -> DeploymentFactory:
    """Makes a deployment from config text and input lines; its topics are created with
    4 partitions before anything runs."""

    def make(config_text: str, lines: list[bytes]) -> Deployment:
        path, config = deployment_config(tmp_path, config_text)
        asyncio.run(ensure_topics(KafkaClients(bootstrap), config))
        return Deployment(path, config, lines, bootstrap, tmp_path, runtime, guarantee)

    return make


def deployment_config(
    tmp_path: Path, config_text: str, replication: int = 1
) -> tuple[Path, Config]:
    """``config_text`` with a topic prefix of its own, 4 partitions and ``replication``,
    written to a file under ``tmp_path``, and loaded."""
    prefix = f"w{uuid.uuid4().hex[:10]}"
    text = re.sub(r"(?m)^topic_prefix\s*=.*$", "", config_text)
    text = re.sub(r"(?ms)^\[kafka\].*?(?=^\[|\Z)", "", text)
    kafka = f"[kafka]\npartitions = {PARTITIONS}\nreplication = {replication}\n"
    text = f'topic_prefix = "{prefix}"\n{text}\n{kafka}'
    path = tmp_path / f"{prefix}.toml"
    path.write_text(text)
    return path, load_config(path)


def scenario(name: str) -> tuple[str, list[bytes]]:
    folder = SCENARIOS / name
    lines = [x for x in (folder / "ticks.jsonl").read_bytes().splitlines() if x.strip()]
    return (folder / "config.toml").read_text(), lines


def generated(seed: int, n: int) -> tuple[str, list[bytes]]:
    """A generated stream of two instruments over 4 venues with every rejection reason."""
    rng = random.Random(seed)
    venues = random_venues(rng, 4)
    return config_toml(venues, None), random_stream(rng, venues, n, ("XAG", "XAU"))


def generated_v3(seed: int, n: int) -> tuple[str, list[bytes]]:
    """A generated version 3 market: sessions, basis, delivery, sizes, venues halting and
    resuming, and price levels (helpers/marketgen.py), as config text and input lines."""
    config, _, lines = market_case(seed, n, v3=True)
    return toml_text(config), lines
