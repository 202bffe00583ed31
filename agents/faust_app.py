"""The engine as a faust-streaming application: ``arbstream worker --runtime faust``, or
``faust -A arbstream.faust_main worker`` (arbstream/faust_main.py).

For teams that run Faust. The same engine (streams.engine) on the same topics, with the
same output keys and partitions as ``arbstream worker``; the guarantee is different:

**At-least-once, never lose, duplicates identifiable.** For every batch of ticks the
agent takes (``take_events``), in this order:

1. each ticks partition's engine processes its ticks;
2. every output is sent, and the batch waits until Kafka has acknowledged them all;
3. the engine's state changes are written to the ``state`` table and acknowledged, then
   each partition's next offset, which commits them (agents/faust_state.py: a crash
   leaves the state before or after a batch, never a mix);
4. only then does Faust take the ticks as done, and commit their offsets later.

A crash before 3 is complete leaves outputs whose state was not committed: the next
owner of the partition resumes from the committed state and produces those outputs
again, identical, with the same ``seq``. A subscriber that drops a record whose ``seq``
it has already seen for its key gets exactly replay's output. Any error in a batch ends
the worker (Faust's default would restart the agent and count the batch's ticks as
done), so no batch is skipped.

Faust resumes a partition at the offset Faust committed, which is normally at or below
the state's (the ticks below are skipped). If it is beyond (a batch cut short by such a
gap), the partition is paused, sought back to the state's offset and resumed (``_gap``).

Not covered: a worker that has lost its partitions but keeps running (a pause longer than
the session timeout) can write beside their new owner; the default worker's transactional
producer is fenced in that case, Faust's is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from mode import CrashingSupervisor

from arbstream.agents.commit_policy import FAUST_RULES, CommitPolicy, CommitPolicyError, Do, Failure
from arbstream.agents.faust_fetch import GuardedTransport
from arbstream.agents.faust_state import PartitionState, SlottedState
from arbstream.agents.kafka.clients import HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS, KafkaClients
from arbstream.agents.kafka.health import PartitionHealth
from arbstream.agents.kafka.security import KafkaSecurity
from arbstream.agents.kafka.topics import Topics, kafka_source
from arbstream.agents.metrics import TransactionTimes, WorkerMetrics, WorkerView
from arbstream.agents.routing import OutputPlacement
from arbstream.agents.settings import Deployment
from arbstream.streams.engine import Engine

log = logging.getLogger(__name__)

#: One output record, placed: (topic, key, value, partition).
PlacedOutput = tuple[str, bytes | None, bytes, int]

#: Ticks per batch at most, and how long the agent waits to fill one: at low rates a
#: batch is what arrived within this time.
BATCH_MAX = 5000
BATCH_WITHIN_S = 0.02
#: Going back to a partition's committed offset: it is paused this long first (so the
#: ticks fetched before go by), then sought and resumed; and paused and sought again if
#: that offset has not arrived this long after (see FaustRuntime._gap).
PAUSE_BEFORE_SEEK_S = 0.5
SEEK_AGAIN_AFTER_S = 2.0


class PartitionWork:
    """The engine of one ticks partition, where it stands, and its commit policy
    (agents/commit_policy.py: every batch commits; any failure stops the worker)."""

    def __init__(self, engine: Engine, state: PartitionState, next_offset: int) -> None:
        self.engine = engine
        self.state = state
        self.next_offset = next_offset
        self.policy = CommitPolicy(FAUST_RULES, time.monotonic())
        # going back to next_offset (see FaustRuntime._gap): since when, and whether the
        # seek was made (after a pause) or not yet
        self.seeking_since: float | None = None
        self.sought = False


class FaustRuntime:
    """The app's agent, its table, and the partitions' engines."""

    def __init__(self, config: Deployment, counts: dict[str, int], app: faust.App) -> None:
        self.config = config
        self.counts = counts
        self.app = app
        self.topics = Topics(config.topic_prefix)
        # keys and values are bytes throughout (the app's serializers are "raw")
        self.ticks_topic = app.topic(self.topics.ticks, key_type=bytes, value_type=bytes)
        partitions = counts[self.topics.ticks]
        self.table = self._table("state", partitions)
        #: The latest open/update record of every open signal of this worker's partitions.
        self.open_signals = self._table("open-signals", partitions)
        self.state = SlottedState(self.table)
        self.work: dict[int, PartitionWork] = {}  # the ticks partitions assigned here
        self.ready = False
        self._placement = OutputPlacement(self.topics, counts)
        view = WorkerView(
            ready=lambda: self.ready,
            engines=lambda: [w.engine for w in self.work.values()],
            lag=self._lag,
            partitions=partitions,
        )
        self.metrics = WorkerMetrics(config, self.topics.ticks, view)

    def _table(self, name: str, partitions: int) -> Any:
        """A table of bytes, its changelog the deployment's topic for it (created with
        the others, so the runtime needs no right to create topics)."""
        table = _NamedTable(
            self.topics.faust_table(name),
            self.app,
            name=name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
        )
        return self.app.tables.add(table)

    # -- partitions ---------------------------------------------------------------------

    async def assigned(self) -> None:
        """After a rebalance and the tables' recovery: every assigned ticks partition
        resumes at the offset of its committed state. (Faust then seeks each partition
        to the offset it committed, which is at or below the state's: the ticks below
        are skipped; one beyond it, if ever, is a gap, see ``_gap``.)"""
        self.work.clear()  # every partition is rebuilt from the table: one rule
        for tp in self.app.consumer.assignment():
            if tp.topic == self.topics.ticks:
                await self._load(tp.partition)
        self.ready = True

    def revoked(self) -> None:
        self.ready = False
        self.work.clear()

    async def _load(self, partition: int) -> PartitionWork:
        state = self.state.load(partition)
        engine = Engine(self.config, kafka_source(self.topics.ticks, partition))
        engine.load(state.entries)
        next_offset = state.offset
        if next_offset == 0:  # nothing committed: from the partition's first record
            tp = TP(self.topics.ticks, partition)
            next_offset = (await self.app.consumer.earliest_offsets(tp))[tp]
        work = self.work[partition] = PartitionWork(engine, state, next_offset)
        return work

    def _lag(self) -> dict[int, int]:
        consumer = self.app.consumer
        out = {}
        for partition, work in self.work.items():
            high = consumer.highwater(TP(self.topics.ticks, partition))
            if high is not None:
                out[partition] = max(0, high - work.next_offset)
        return out

    # -- the batch ----------------------------------------------------------------------

    async def process(self, events: Sequence[Any]) -> None:
        """One batch of ticks: outputs sent and acknowledged, then the state written and
        acknowledged; only then does Faust take the ticks as done (the next batch). On
        any error the policy of every partition in the batch says stop: the error ends
        the worker, and the partitions' next owner resumes from the committed state."""
        t0 = time.perf_counter()
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        evaluated: list[PartitionWork] = []
        try:
            await self._process(by_partition, t0, evaluated)
        except Exception as exc:
            # (the Faust rules answer every failure with Do.STOP: the error ends the worker)
            failure = Failure.TRANSIENT if isinstance(exc, KafkaError) else Failure.DEFECT
            for work in evaluated:
                work.policy.failed(failure)
            raise

    async def _process(
        self, by_partition: dict[int, list[Any]], t0: float, evaluated: list[PartitionWork]
    ) -> None:
        outputs: list[PlacedOutput] = []
        done: list[tuple[PartitionWork, int, list[float], list[tuple[bytes, bytes | None]]]] = []
        for partition, batch in by_partition.items():
            work = self.work.get(partition)
            if work is None:  # not loaded at the assignment (a rebalance under way)
                work = await self._load(partition)
            start = work.next_offset
            timestamps: list[float] = []
            signals: list[tuple[bytes, bytes | None]] = []
            for event in batch:
                message = event.message
                offset = message.offset
                if offset < work.next_offset:
                    continue  # delivered again after a seek: already in the state
                if offset > work.next_offset:
                    await self._gap(partition, work, offset)
                    break
                work.seeking_since = None
                timestamps.append(message.timestamp * 1000.0)
                self._outputs_of(work.engine, message.value, offset, partition, outputs, signals)
                work.next_offset = offset + 1
            if work.next_offset > start:
                evaluated.append(work)
                if work.policy.evaluated(True, time.monotonic()) is not Do.COMMIT:
                    raise CommitPolicyError("the Faust runtime's policy did not commit a batch")
                done.append((work, start, timestamps, signals))
        t1 = time.perf_counter()
        # Straight to the producer, not through Faust's topic buffer (cheaper per record:
        # docs/performance.md, "Figures behind defaults"). A refused output raises here
        # and ends the worker before any state.
        send = self.app.producer.send
        sent = [
            await send(topic, key, value, target, None, None)
            for topic, key, value, target in outputs
        ]
        await asyncio.gather(*sent)
        t2 = time.perf_counter()
        written: list[asyncio.Future[Any]] = []
        for work, _, _, signals in done:
            partition = work.state.partition
            written += self.state.write(work.state, work.engine.changes(), work.next_offset)
            for key, value in signals:
                self._put_open_signal(partition, key, value)
        await asyncio.gather(*written)
        # Then the offsets, which make the written state the committed one. They are
        # acknowledged before the batch's ticks are acknowledged to Faust, so the offset
        # Faust commits is not beyond the committed state.
        await asyncio.gather(*(self.state.commit(w.state, w.next_offset) for w, _, _, _ in done))
        t3 = time.perf_counter()
        now = time.monotonic()
        for work, start, timestamps, _ in done:
            work.policy.committed(now)
            wait_s = max(0.0, time.time() - min(timestamps) / 1000.0) if timestamps else 0.0
            times = TransactionTimes(wait_s, t1 - t0, t2 - t1, t3 - t2)
            self.metrics.batches.committed(work.next_offset - start, times, timestamps, work.engine)

    def _outputs_of(
        self,
        engine: Engine,
        value: bytes | None,
        offset: int,
        partition: int,
        outputs: list[PlacedOutput],
        signals: list[tuple[bytes, bytes | None]],
    ) -> None:
        """Run one tick; add its outputs (topic, key, value, partition) to ``outputs``."""
        dumps = orjson.dumps
        place = self._placement
        for stream, key, record in engine.process(b"" if value is None else value, offset):
            data = dumps(record)
            raw_key = None if key is None else key.encode()
            topic, target = place(stream, raw_key, partition)
            outputs.append((topic, raw_key, data, target))
            if stream == "signals" and raw_key is not None:
                signals.append((raw_key, None if record["event"] == "close" else data))

    async def _gap(self, partition: int, work: PartitionWork, offset: int) -> None:
        """A tick beyond the next offset: Faust resumed past the committed state (its
        committed offset is ahead of the state's: a gap in the ticks it skipped, or a
        batch cut short here). Go back to the state's offset: the partition is paused,
        and sought and resumed by ``seek_again`` once the ticks fetched before the pause
        have gone by (a seek while they are delivered would be undone by them)."""
        if work.seeking_since is not None:
            return
        tp = TP(self.topics.ticks, partition)
        earliest = (await self.app.consumer.earliest_offsets(tp))[tp]
        if work.next_offset < earliest:
            log.error(
                "ticks partition %d: the committed state is at offset %d, but the topic "
                "begins at %d (retention deleted the ticks between): continuing at %d",
                partition, work.next_offset, earliest, offset,
            )  # fmt: skip
            work.next_offset = offset
            return
        log.warning(
            "ticks partition %d: at offset %d, the committed state is at %d: seeking back",
            partition, offset, work.next_offset,
        )  # fmt: skip
        self.app.consumer.pause_partitions([tp])
        work.seeking_since = time.monotonic()
        work.sought = False

    async def seek_again(self) -> None:
        """For every partition waiting to go back to its state's offset: seek and resume
        it once it has been paused for a while; pause it again if the offset has not
        arrived some time after (the seek was undone)."""
        now = time.monotonic()
        consumer = self.app.consumer
        for partition, work in list(self.work.items()):
            since = work.seeking_since
            if since is None:
                continue
            tp = TP(self.topics.ticks, partition)
            if not work.sought and now - since >= PAUSE_BEFORE_SEEK_S:
                await consumer.seek(tp, work.next_offset)
                consumer.resume_partitions([tp])
                work.sought, work.seeking_since = True, now
            elif work.sought and now - since >= SEEK_AGAIN_AFTER_S:
                consumer.pause_partitions([tp])
                work.sought, work.seeking_since = False, now

    def _put_open_signal(self, partition: int, key: bytes, value: bytes | None) -> None:
        key = f"{partition}/".encode() + key  # by partition: the view shows the active ones
        data = self.open_signals.data
        if value is None:
            if data.pop(key, None) is None:
                return  # never open here: nothing to delete
        else:
            data[key] = value
        self.open_signals.send_changelog(partition, key, value)

    def open_signal_records(self) -> list[Any]:
        """The open signals of the ticks partitions assigned to this worker."""
        out = []
        for key, value in sorted(self.open_signals.data.items()):
            partition, _, _ = key.partition(b"/")
            if int(partition) in self.work:
                out.append(orjson.loads(value))
        return out


class _NamedTable(faust.Table[bytes, bytes]):
    """A table whose changelog topic is named by arbstream (Faust's own name is
    ``<app id>-<table>-changelog``, outside the deployment's topic prefix). Faust's
    assignor asks the table for the name, so the table is where to say it."""

    def __init__(self, changelog: str, app: faust.App, **options: Any) -> None:
        self._changelog_name = changelog
        super().__init__(app, **options)

    def _changelog_topic_name(self) -> str:
        return self._changelog_name


class _App(faust.App):
    """Faust's app with its consumer's fetch mended (agents/faust_fetch.py)."""

    def _new_transport(self) -> Any:
        return GuardedTransport(self.conf.broker_consumer, self)


def credentials(security: KafkaSecurity) -> Any:
    """Faust's ``broker_credentials`` for the process's settings (None for PLAINTEXT)."""
    if security.sasl:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password,
            ssl_context=security.ssl_context,
            mechanism=security.mechanism,
        )
    if security.tls:
        return faust.SSLCredentials(security.ssl_context)
    return None


def make_app(
    config: Deployment,
    counts: dict[str, int],
    kafka: KafkaClients,
    web_host: str,
    web_port: int,
    datadir: str,
) -> tuple[faust.App, FaustRuntime]:
    """The Faust app (its id is ``arbstream-<prefix>-faust``: it never shares a group
    with the exactly-once workers) and its runtime."""
    topics = Topics(config.topic_prefix)
    app = _App(
        topics.faust_group,
        broker=[f"kafka://{h}" for h in kafka.bootstrap.split(",")],
        broker_credentials=credentials(kafka.security),
        store="memory://",
        datadir=datadir,
        processing_guarantee="at_least_once",
        topic_partitions=counts[topics.ticks],
        # every topic exists (agents.kafka.topics.prepare): Faust creates none
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        # as the default worker: a killed worker's partitions move within 10 s
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_MS / 1000,
        # Faust's offsets only say where a new owner starts skipping what its state holds
        # (2.8 s by default): committing more often shortens that, and the lag gauge's lag
        broker_commit_interval=0.5,
        web_enabled=True,
        web_host=web_host,
        web_port=web_port,
    )
    runtime = FaustRuntime(config, counts, app)
    # Faust's own Prometheus sensors (faust_*) beside the worker's arbstream_* metrics.
    setup_prometheus_sensors(app, registry=runtime.metrics.registry, name_prefix="faust")
    health = PartitionHealth(kafka, [*topics.all(), *topics.state_topics("faust")])
    runtime.metrics.registry.register(health)

    async def watch_partitions() -> None:
        await health.run()

    app.task(watch_partitions)  # (an untyped decorator, applied by hand)

    # Any error in a batch ends the worker (Faust's default supervisor would restart the
    # agent on the same stream, and the batch's ticks would count as done without their
    # outputs): the partitions' next owner resumes from the committed state.
    @app.agent(runtime.ticks_topic, name="engine", supervisor_strategy=CrashingSupervisor)
    async def engine(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, BATCH_WITHIN_S):
            await runtime.process(events)

    async def seek_again() -> None:
        await runtime.seek_again()

    app.timer(PAUSE_BEFORE_SEEK_S / 2)(seek_again)  # (an untyped decorator, applied by hand)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(*_: Any, **__: Any) -> None:
        await runtime.assigned()

    @app.on_partitions_revoked.connect
    async def on_partitions_revoked(*_: Any, **__: Any) -> None:
        runtime.revoked()

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        body = {"ready": runtime.ready, "partitions": sorted(runtime.work)}
        return web.json(body, status=200 if runtime.ready else 503)

    @app.page("/signals/open/")
    async def open_signals(web: Any, request: Any) -> Any:
        return web.json(runtime.open_signal_records())

    return app, runtime
