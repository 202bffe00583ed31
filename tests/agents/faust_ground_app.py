"""Minimal faust-streaming app used by ``test_faust_ground.py`` as a real worker process.

It counts records per key in a changelog-backed Table and emits ``b"key:count"`` to an
output topic. Everything is configured through environment variables so the test can run
several isolated instances (unique app id, topics, web port and data dir):

- ``FG_APP_ID``: faust app id (also the consumer group and changelog topic prefix)
- ``FG_BROKER``: ``host:port`` of the Kafka bootstrap server
- ``FG_IN_TOPIC`` / ``FG_OUT_TOPIC``: input and output topic names (must already exist)
- ``FG_PARTITIONS``: partition count of the input topic (the table is co-partitioned)
- ``FG_DATADIR``: faust data dir
- ``FG_GUARANTEE``: ``at_least_once`` (default) or ``exactly_once``

Run: ``python faust_ground_app.py worker --web-port N --web-host 127.0.0.1 -l info``.
"""

from __future__ import annotations

import os
from typing import Any

import faust

APP_ID = os.environ["FG_APP_ID"]
PARTITIONS = int(os.environ.get("FG_PARTITIONS", "1"))

app = faust.App(
    APP_ID,
    broker=f"kafka://{os.environ['FG_BROKER']}",
    store="memory://",
    datadir=os.environ["FG_DATADIR"],
    processing_guarantee=os.environ.get("FG_GUARANTEE", "at_least_once"),
    topic_replication_factor=1,
    topic_partitions=PARTITIONS,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    web_host="127.0.0.1",
    # commit often so a graceful stop never leaves much uncommitted work behind
    broker_commit_every=1,
    broker_commit_interval=0.5,
)

in_topic = app.topic(
    os.environ["FG_IN_TOPIC"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
out_topic = app.topic(
    os.environ["FG_OUT_TOPIC"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)

counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(in_topic)
async def count(stream: Any) -> None:
    async for event in stream.events():
        key: bytes = event.key
        name = key.decode()
        counts[name] += 1
        await out_topic.send(key=key, value=f"{name}:{counts[name]}".encode())


if __name__ == "__main__":
    app.main()
