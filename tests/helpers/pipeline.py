"""Running the live pipeline in tests: worker processes, and comparing what they publish
with what ``arbstream replay`` gives for the same input.

A worker is the real ``arbstream worker`` command in a subprocess. Outputs are read with
``isolation_level=read_committed``, as subscribers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from arbstream.agents.kafka.topics import Topics
from arbstream.agents.routing import route
from arbstream.agents.worker import READY_MESSAGE
from arbstream.config import Config
from arbstream.streams.engine import Engine
from arbstream.streams.validation import raw_text
from arbstream.supervisor import ChildProcess, arbstream_command
from helpers.compare import diff_streams
from helpers.http import get_json, get_text
from helpers.kafka import Record, Where, consume, free_port, scaled
from helpers.paths import REPO
from helpers.schemas import check_output, check_outputs

#: The output topics, by the engine's stream names; all but the dlq are keyed.
OUTPUT_STREAMS = ("spreads", "basis", "signals", "dlq")
KEYED_STREAMS = ("spreads", "basis", "signals")
#: Outputs of one (topic kind, key), in order.
KeyedOutputs = dict[tuple[str, str | None], list[Any]]


def arbstream_process(args: list[str], env: dict[str, str], log: Path) -> ChildProcess:
    """``arbstream ARGS...`` as a subprocess, stdout and stderr to ``log``."""
    return ChildProcess(arbstream_command(*args), log, env=env, name=args[0], truncate=True)


class Worker(ChildProcess):
    """An ``arbstream worker`` subprocess with its own web port and log file."""

    def __init__(
        self,
        config_path: Path,
        bootstrap: str,
        log_path: Path,
        runtime: str = "default",
        env: dict[str, str] | None = None,
        guarantee: str | None = None,
    ) -> None:
        """``env``: more variables (a secured broker's user's, say); ``guarantee``: the
        ``--guarantee`` to pass (the config's when None)."""
        self.runtime = runtime
        self.web_port = free_port()
        env = {
            **os.environ,
            "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
            "ARBSTREAM_WEB_PORT": str(self.web_port),
            **(env or {}),
        }
        args = arbstream_command("worker", "--config", str(config_path), "--runtime", runtime)
        if guarantee is not None:
            args.extend(["--guarantee", guarantee])
        super().__init__(args, log_path, env=env, name=f"worker ({runtime})")

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` on the worker's web port: (status, JSON body)."""
        return get_json(f"http://127.0.0.1:{self.web_port}{path}")

    def metrics(self) -> str:
        """The worker's ``/metrics``."""
        return get_text(f"http://127.0.0.1:{self.web_port}/metrics")

    def stop(self, timeout_s: float | None = None) -> int:
        """SIGTERM and wait for a graceful stop (killed after 60 s); the exit status."""
        return super().stop(scaled(60) if timeout_s is None else timeout_s)

    def wait(self, timeout_s: float | None = None) -> int:
        return super().wait(scaled(60) if timeout_s is None else timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        return self.tail(lines)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the worker is ready (partitions assigned, state loaded): the default
        worker logs it, a Faust worker's /readyz says it."""
        deadline = time.monotonic() + scaled(timeout_s)
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited early:\n{self.log_tail()}")
            if self.runtime == "faust":
                with contextlib.suppress(OSError):
                    if self.get("/readyz")[0] == 200:
                        return
            elif READY_MESSAGE.encode() in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.log_tail()}")


def demo_config(tmp_path: Path, prefix: str, name: str = "silver.toml") -> Path:
    """A demo's config (deploy/demo/``name``) with topic prefix ``prefix`` and every
    simulated venue on a free port, so that a test's demo shares nothing with others."""
    text = (REPO / "deploy" / "demo" / name).read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    for port in re.findall(r"127\.0\.0\.1:(47\d\d\d)/", text):
        text = text.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{free_port()}/")
    path = tmp_path / f"{prefix}.toml"
    path.write_text(text)
    return path


def replay_by_key(lines: Iterable[bytes], config: Config) -> tuple[KeyedOutputs, list[Any]]:
    """What replay publishes, per (stream, key) for spreads and signals, and the list of
    its rejected records."""
    engine = Engine(config)
    keyed: KeyedOutputs = defaultdict(list)
    rejected: list[Any] = []
    for n, line in enumerate(lines, start=1):
        for stream, key, record in engine.process(line, n):
            if stream == "dlq":
                rejected.append(record)
            else:
                keyed[(stream, key)].append(record)
    return keyed, rejected


def expected_dlq(rejected: list[Any], partitions: int) -> Counter[tuple[str, str]]:
    """(reason, raw) of every dlq record streaming must give: an fx record sits on every
    ticks partition, so each partition rejects it (docs/evaluation.md, "Rejection")."""
    out: Counter[tuple[str, str]] = Counter()
    for record in rejected:
        kind, _ = route(record["raw"].encode())
        out[(record["reason"], record["raw"])] += partitions if kind == "fx" else 1
    return out


def read_outputs(
    bootstrap: Where, topics: Topics, counts: dict[str, int], linger_s: float = 2.0
) -> dict[str, list[Record]]:
    """Every record of the spreads, basis, signals and dlq topics (read_committed), waiting
    for at least ``counts[stream]`` of each (0 where absent) and lingering to catch extras
    (duplicates)."""

    async def read_all() -> list[list[Record] | BaseException]:
        return list(
            await asyncio.gather(
                *(
                    consume(
                        bootstrap,
                        getattr(topics, stream),
                        counts.get(stream, 0),
                        timeout_s=120,
                        isolation_level="read_committed",
                        linger_s=linger_s,
                    )
                    for stream in OUTPUT_STREAMS
                ),
                return_exceptions=True,
            )
        )

    results = dict(zip(OUTPUT_STREAMS, asyncio.run(read_all()), strict=True))
    failed = {s: r for s, r in results.items() if isinstance(r, BaseException)}
    if failed:
        # every stream's count, not the first to time out: which fell short tells a
        # stuck partition (all short) from a lost record (one short)
        raise AssertionError("; ".join(f"{s}: {r}" for s, r in failed.items())) from next(
            iter(failed.values())
        )
    outputs = {s: r for s, r in results.items() if not isinstance(r, BaseException)}
    check_outputs(orjson.loads(r.value) for records in outputs.values() for r in records)
    return outputs


def group_by_key(records: list[Record], stream: str) -> KeyedOutputs:
    """Records per key, in partition-offset order (one key lives in one partition)."""
    keyed: KeyedOutputs = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        record = orjson.loads(r.value)
        check_output(record)
        keyed[(stream, None if r.key is None else r.key.decode())].append(record)
    return keyed


def compare_with_replay(
    outputs: dict[str, list[Record]],
    expected: KeyedOutputs,
    rejected: list[Any],
    ticks: dict[tuple[int, int], bytes],
    topics: Topics,
    partitions: int,
) -> list[str]:
    """Differences between the published outputs and replay: per key the same sequence
    (tolerance of the scenarios README), and the dlq holds every rejection, once, with a
    source that points at the rejected record on the ticks topic."""
    problems: list[str] = []
    actual: KeyedOutputs = {}
    for stream in KEYED_STREAMS:
        actual.update(group_by_key(outputs[stream], stream))
    for key in sorted(set(actual) | set(expected), key=str):
        for line in diff_streams(actual.get(key, []), expected.get(key, []), limit=3):
            problems.append(f"{key}: {line}")
    # Keyed records sit where Kafka's default (murmur2) partitioner puts their key, as
    # for any Java or aiokafka producer; every topic of a test has ``partitions``.
    every = list(range(partitions))
    for stream in KEYED_STREAMS:
        for r in outputs[stream]:
            if r.key is None or r.partition != DefaultPartitioner()(r.key, every, every):
                problems.append(f"{stream} key {r.key!r} in partition {r.partition}")
                break
    want = expected_dlq(rejected, partitions)
    got: Counter[tuple[str, str]] = Counter()
    for r in outputs["dlq"]:
        record = orjson.loads(r.value)
        got[(record["reason"], record["raw"])] += 1
        source = record["source"]
        if r.partition != source["partition"] % partitions:
            problems.append(f"dlq record of ticks partition {source['partition']} in {r.partition}")
        value = ticks.get((source["partition"], source["offset"]))
        if source["topic"] != topics.ticks or value is None or raw_text(value) != record["raw"]:
            problems.append(f"dlq source {source} does not point at {record['raw'][:60]!r}")
    if got != want:
        problems.append(f"dlq differs: missing {want - got}, extra {got - want}")
    return problems[:30]


def drop_duplicates(
    outputs: dict[str, list[Record]],
) -> tuple[dict[str, list[Record]], int, list[str]]:
    """A subscriber's rule for an at-least-once runtime (docs/guarantees.md): per key,
    drop a record whose ``seq`` was already seen; dlq records (no key) are dropped when
    their source was seen. Returns the outputs left, how many were dropped, and problems:
    a dropped record that differs from the first one with its ``seq`` (a duplicate must
    be the same record), or a key whose ``seq`` skips a number (a lost record)."""
    kept: dict[str, list[Record]] = {}
    problems: list[str] = []
    dropped = 0
    for stream, records in outputs.items():
        kept[stream] = []
        seen: dict[object, dict[int, bytes]] = defaultdict(dict)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            record = orjson.loads(r.value)
            if stream == "dlq":
                source = record["source"]
                key: object = (source["partition"], source["offset"])
                seq = 0
            else:
                key, seq = r.key, record["seq"]
            first = seen[key].get(seq)
            if first is None:
                last = max(seen[key], default=0)
                if stream != "dlq" and seq != last + 1:
                    problems.append(f"{stream} {key!r}: seq {seq} after {last}")
                seen[key][seq] = r.value
                kept[stream].append(r)
            else:
                dropped += 1
                if first != r.value:
                    problems.append(f"{stream} {key!r}: seq {seq} again, as another record")
    return kept, dropped, problems[:30]


def read_ticks(bootstrap: Where, topics: Topics, count: int) -> dict[tuple[int, int], bytes]:
    """The ticks topic as {(partition, offset): value}."""
    records = asyncio.run(consume(bootstrap, topics.ticks, count, timeout_s=60))
    return {(r.partition, r.offset): r.value for r in records}
