"""The pipeline benchmark's baseline: the engine in a Faust agent written the usual way.

One await per event and per output, through Faust's own ``topic.send`` and table API,
at-least-once, state in a Faust table (memory store, changelog). It does the work
``arbstream worker`` does, minus exactly-once.

Why ``arbstream worker`` is not a Faust app (the first design planned Faust agents), measured
on the development machine (2 cores, CPython 3.11, faust-streaming 0.15.3):

* Faust's stream delivers about 16,000 events/s to an agent that does nothing with
  them (``take_events`` batches of 2,000, at_least_once and exactly_once alike); the
  target is 100,000 ticks/s per worker.
* Its ``exactly_once`` mode picks an output's transaction by the *output's* partition
  (a KeyError, or the non-transactional producer, for topics the app does not
  consume), and commits the offsets of acknowledged events, taken before the
  transaction lock, which can cover events whose outputs the transaction does not hold.
  Working around both needed private attributes and still lost outputs after SIGKILL.

Run: ``python -m benchmarks.naive_faust CONFIG BOOTSTRAP WEB_PORT``.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import faust
import orjson

from arbstream.agents.faust_app import credentials
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.config import Config, load_config
from arbstream.streams.engine import Engine, Source
from benchmarks.kafka import bench_kafka


def state_key(partition: int, entry_key: str) -> bytes:
    """The table's key for one engine state entry of a ticks partition."""
    return f"{partition}/{entry_key}".encode()


class PartitionEngines:
    """The engine of each ticks partition, loaded from the table on first use."""

    def __init__(self, config: Config, ticks_topic: str, table: Any) -> None:
        self._config = config
        self._ticks = ticks_topic
        self._table = table
        self._engines: dict[int, Engine] = {}

    def get(self, partition: int) -> Engine:
        engine = self._engines.get(partition)
        if engine is None:
            engine = self._engines[partition] = Engine(self._config, self._source_of(partition))
            prefix = state_key(partition, "")
            entries = {
                k[len(prefix) :].decode(): v
                for k, v in self._table.data.items()
                if k.startswith(prefix)
            }
            engine.load(entries)
        return engine

    def _source_of(self, partition: int) -> Callable[[int], Source]:
        topic = self._ticks

        def source_of(offset: int) -> Source:
            return {"topic": topic, "partition": partition, "offset": offset}

        return source_of


def make_app(
    config: Config, partitions: dict[str, int], bootstrap: str, web_port: int, datadir: str
) -> Any:
    topics = Topics(config.topic_prefix)
    app = faust.App(
        topics.group,
        broker=[f"kafka://{h}" for h in bootstrap.split(",")],
        broker_credentials=credentials(bench_kafka(bootstrap).security),
        store="memory://",
        datadir=datadir,
        processing_guarantee="at_least_once",
        topic_partitions=partitions[topics.ticks],
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_port=web_port,
        web_host="127.0.0.1",
    )
    ticks = app.topic(topics.ticks, key_type=bytes, value_type=bytes)
    table = app.Table(
        "state", partitions=partitions[topics.ticks], key_type=bytes, value_type=bytes
    )
    engines = PartitionEngines(config, topics.ticks, table)
    sinks = {
        "spreads": app.topic(topics.spreads),
        "signals": app.topic(topics.signals),
        "dlq": app.topic(topics.dlq),
    }

    @app.agent(ticks, name="naive")
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            engine = engines.get(message.partition)
            for stream_name, key, record in engine.process(message.value or b"", message.offset):
                await sinks[stream_name].send(
                    key=None if key is None else key.encode(), value=orjson.dumps(record)
                )
            for entry_key, value in engine.changes():
                table_key = state_key(message.partition, entry_key)
                if value is None:
                    table.pop(table_key, None)
                else:
                    table[table_key] = value

    return app


def main() -> None:
    config_path, bootstrap, web_port = sys.argv[1:4]
    config = load_config(config_path)
    partitions = asyncio.run(prepare(bench_kafka(bootstrap), config))
    datadir = tempfile.mkdtemp(prefix="arbstream-naive-")
    try:
        app = make_app(config, partitions, bootstrap, int(web_port), datadir)
        faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
