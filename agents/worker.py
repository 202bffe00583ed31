"""``arbstream worker``: the Faust application that runs the engine on the ticks topic.

One :class:`streams.engine.Engine` per ticks partition (every partition carries every
FX record, so each partition has its own FX book). The agent takes events in batches,
groups them by partition, and for each partition, while holding that partition's
transaction lock:

1. runs every event through the partition's engine;
2. sends each output record to its topic (spreads and signals keyed as contracts.md §5
   says, dlq records to the source partition's number), never awaiting a delivery;
3. appends the engine's state changes (streams/state.py) to the state table's changelog.

Exactly-once: Faust's ``exactly_once`` keeps one transactional producer per assigned
ticks partition; agents/transactions.py explains why outputs and state go through it
here rather than through ``topic.send()``, and how every commit carries exactly the
offsets of what its transaction holds: a batch's outputs, its state changes and its
offsets commit together or not at all. Readers use ``isolation_level=read_committed``.

State lives in a Faust table whose keys are ``<partition>/<entry key>``. Faust restores
the table from its (compacted) changelog before it delivers a partition's events, so
the engine of a partition that moved here, or of a restarted worker, is rebuilt from
the committed entries and continues exactly where the committed output stopped.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from agents.topics import TICKS_MAX_MESSAGE_BYTES, Topics, ensure_topics, partition_counts
from agents.transactions import PartitionTransactions
from streams.config import Config
from streams.engine import Engine, Source

log = logging.getLogger(__name__)

#: Events per batch at most, and how long a batch waits to fill. The wait bounds the
#: latency a batch adds at low rates; at high rates batches fill first.
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.002
#: How often Faust commits the transactions (and so how soon read_committed readers
#: see outputs). Each commit costs a few broker round trips per partition.
COMMIT_INTERVAL_S = 0.05
STATE_TABLE = "state"
#: A worker that dies without leaving the group (kill -9, lost host) keeps its
#: partitions until this expires; Faust's default is 60 s, Kafka's 45 s.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 1.0


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs besides the config."""

    bootstrap: str  # host:port[,host:port]
    web_port: int
    web_host: str = "0.0.0.0"
    naive: bool = False  # per-event agent, at-least-once: the benchmark's baseline
    commit_interval_s: float = COMMIT_INTERVAL_S


def app_id(config: Config) -> str:
    """The consumer group and the prefix of the app's internal topics."""
    return f"arbstream-{config.topic_prefix}"


def state_key(partition: int, entry_key: str) -> bytes:
    """The state table's key for one engine state entry of a ticks partition."""
    return f"{partition}/{entry_key}".encode()


class PartitionEngines:
    """The engine of each assigned ticks partition, loaded from the state table."""

    def __init__(self, config: Config, ticks_topic: str, table: Any) -> None:
        self._config = config
        self._ticks = ticks_topic
        self._table = table
        self._engines: dict[int, Engine] = {}

    def get(self, partition: int) -> Engine:
        engine = self._engines.get(partition)
        if engine is None:
            engine = self._engines[partition] = self._load(partition)
        return engine

    def keep(self, partitions: set[int]) -> None:
        """After a rebalance: forget the engines of partitions now owned elsewhere.

        A partition that stays here keeps its engine: Faust does not recover a retained
        partition's table again, and the engine is exactly as committed (Faust commits
        every transaction before a rebalance). A partition that comes back later is
        recovered from the changelog first, and its engine rebuilt from that.
        """
        for p in set(self._engines) - partitions:
            del self._engines[p]

    def _load(self, partition: int) -> Engine:
        engine = Engine(self._config, self._source_of(partition))
        prefix = state_key(partition, "")
        cut = len(prefix)
        entries = {k[cut:].decode(): v for k, v in self._table.data.items() if k.startswith(prefix)}
        engine.load(entries)
        log.info("partition %d: engine restored from %d state entries", partition, len(entries))
        return engine

    def _source_of(self, partition: int) -> Callable[[int], Source]:
        topic = self._ticks

        def source_of(offset: int) -> Source:
            return {"topic": topic, "partition": partition, "offset": offset}

        return source_of


def make_app(
    config: Config, partitions: dict[str, int], settings: WorkerSettings, datadir: str
) -> Any:
    """The Faust app: the ticks topic, the state table and the agent. ``partitions``:
    each of the deployment's topics and its partition count."""
    topics = Topics(config.topic_prefix)
    n_ticks = partitions[topics.ticks]
    app = faust.App(
        app_id(config),
        broker=[f"kafka://{h}" for h in settings.bootstrap.split(",")],
        store="memory://",
        datadir=datadir,
        processing_guarantee="at_least_once" if settings.naive else "exactly_once",
        topic_partitions=n_ticks,
        topic_replication_factor=config.kafka.replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # Keys and values are bytes everywhere, the state table's included.
        key_serializer="raw",
        value_serializer="raw",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        # A multi-megabyte garbage record must reach the worker (and the dlq) too.
        consumer_max_fetch_size=TICKS_MAX_MESSAGE_BYTES,
    )
    ticks = app.topic(
        topics.ticks,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=n_ticks,
    )
    table = app.Table(
        STATE_TABLE,
        partitions=n_ticks,
        key_type=bytes,
        value_type=bytes,
    )
    engines = PartitionEngines(config, topics.ticks, table)
    out_topics = {"spreads": topics.spreads, "signals": topics.signals, "dlq": topics.dlq}

    if settings.naive:
        sinks = {
            name: app.topic(t, key_serializer="raw", value_serializer="raw")
            for name, t in out_topics.items()
        }
        app.agent(ticks, name="naive")(_naive_agent(engines, sinks, table))
    else:
        changelog = table.changelog_topic.get_topic_name()
        batcher = Batcher(app, engines, out_topics, changelog, topics.ticks, partitions[topics.dlq])
        app.agent(ticks, name="engine")(batcher.agent)

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[Any] = args[0] if args else kwargs["assigned"]
        mine = {tp.partition for tp in assigned if tp.topic == topics.ticks}
        engines.keep(mine)
        if not settings.naive:
            batcher.transactions.keep(mine)

    app.on_partitions_assigned.connect(on_assigned)
    return app


class Batcher:
    """The batched, exactly-once agent (see the module docstring)."""

    def __init__(
        self,
        app: Any,
        engines: PartitionEngines,
        out_topics: dict[str, str],
        changelog_topic: str,
        ticks_topic: str,
        dlq_partitions: int,
    ) -> None:
        self._engines = engines
        self._out = out_topics
        self._changelog = changelog_topic
        self._dlq_partitions = dlq_partitions
        self.transactions = PartitionTransactions(app, ticks_topic)
        self.transactions.install()

    async def agent(self, stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            by_partition: dict[int, list[Any]] = {}
            for event in events:
                message = event.message
                batch = by_partition.get(message.partition)
                if batch is None:
                    batch = by_partition[message.partition] = []
                batch.append(message)
            for partition, messages in by_partition.items():
                await self._process(partition, messages)

    async def _process(self, partition: int, messages: Sequence[Any]) -> None:
        tid = self.transactions.transactional_id(partition)
        transaction = await self.transactions.open(tid, partition)
        if transaction is None:
            # Revoked between fetch and now. Nothing of it was committed here, so its
            # new owner gets these events again.
            log.warning(
                "partition %d revoked: %d events left to its new owner", partition, len(messages)
            )
            return
        lock, producer = transaction
        engine = self._engines.get(partition)
        dumps = orjson.dumps
        out = self._out
        dlq_partition = partition % self._dlq_partitions
        async with lock:
            await self.transactions.ensure_open(producer)
            send = producer.send
            for message in messages:
                for stream, key, record in engine.process(message.value, message.offset):
                    if key is None:
                        await send(out[stream], dumps(record), partition=dlq_partition)
                    else:
                        await send(out[stream], dumps(record), key=key.encode())
            # State goes to the changelog only, not into the local table: the local
            # table must hold only committed state, which Faust's recovery gives it
            # before a partition's engine is (re)built. A write kept locally from a
            # transaction that then aborted (a rebalance mid-batch) would put the
            # rebuilt engine ahead of the committed offsets.
            for entry_key, value in engine.changes():
                table_key = state_key(partition, entry_key)
                await send(self._changelog, value, key=table_key, partition=partition)
            last = messages[-1]
            self.transactions.sent(tid, last.tp, last.offset + 1)


def _naive_agent(engines: PartitionEngines, sinks: dict[str, Any], table: Any) -> Any:
    """One await per event and per output, through Faust's own send and table API: the
    way a Faust agent is usually written. The benchmark's baseline."""

    async def naive(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            engine = engines.get(message.partition)
            for stream_name, key, record in engine.process(message.value, message.offset):
                await sinks[stream_name].send(
                    key=None if key is None else key.encode(), value=orjson.dumps(record)
                )
            for entry_key, value in engine.changes():
                table_key = state_key(message.partition, entry_key)
                if value is None:
                    table.pop(table_key, None)
                else:
                    table[table_key] = value

    return naive


async def prepare(config: Config, bootstrap: str) -> dict[str, int]:
    """Create missing topics; return every topic's partition count."""
    topics = await ensure_topics(bootstrap, config)
    return await partition_counts(bootstrap, list(topics.all()))


def run_worker(config: Config, settings: WorkerSettings, loglevel: str = "info") -> None:
    """Run a worker until it is stopped (SIGINT/SIGTERM)."""
    partitions = asyncio.run(prepare(config, settings.bootstrap))
    datadir = tempfile.mkdtemp(prefix="arbstream-worker-")  # memory store: nothing to keep
    try:
        app = make_app(config, partitions, settings, datadir)
        worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
        worker.execute_from_commandline()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
