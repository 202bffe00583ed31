"""Shared pytest fixtures: a real Kafka broker per test session plus topic helpers.

- ``kafka_bootstrap``: ``"127.0.0.1:PORT"``. Uses ``$KAFKA_BOOTSTRAP`` as is when set;
  otherwise starts a throwaway broker with ``deploy/kafka/kafka.sh up`` on a free port
  (data dir in a pytest tmp dir) and stops it at session end. A failed start FAILS the
  session (with the broker log) -- it never skips.
- ``topic_factory``: ``make(partitions=1, *, compact=False, prefix="t") -> topic name``.
- ``engine_outputs_match_their_schemas`` (autouse): every engine output is checked
  against its JSON Schema in docs/schemas.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

# pyproject's pytest config puts tests/ on sys.path; keep working without it too
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

from arbstream.streams import batch
from arbstream.streams.batch import Encoded
from arbstream.streams.engine import Engine, Output
from helpers.kafka import create_topic, free_port, launched
from helpers.schemas import CHECKED, check_output

TopicFactory = Callable[..., str]


#: The fixtures that give a test a real Kafka broker, a browser, a Prometheus.
KAFKA_FIXTURES = {"kafka_bootstrap", "secured", "cluster"}
BROWSER_FIXTURES = {"browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the tiers its fixtures need (pyproject.toml's markers), so that
    ``-m "not kafka"`` cannot run a test that would start a broker. Tests that start
    their own broker, Prometheus or promtool carry the marker in their module."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def engine_outputs_match_their_schemas() -> Iterator[None]:
    """Every record an engine gives any caller during the run is checked against
    docs/schemas (tests/helpers/schemas.py): a field or record type the schemas do not
    describe fails the test that produced it. Checked where each caller gets them:
    ``Engine.process`` (a record at a time), and the compiled loops of streams/batch.py
    (a replay's encoded lines, a worker's encoded batch), which call the compiled
    ``process`` directly and never the patched one. The loops are wrapped in their
    module and in every module that imported them by name. Worker outputs in other
    processes are checked where tests/helpers/pipeline.py reads them back."""
    process = Engine.process
    originals = {"replay_lines": batch.replay_lines, "encode_values": batch.encode_values}

    def checked(self: Engine, raw: bytes | str, position: int) -> list[Output]:
        outputs = process(self, raw, position)
        for _, _, record in outputs:
            check_output(record)
        CHECKED["process"] += len(outputs)
        return outputs

    def replay_lines(
        engine: Engine, lines: list[bytes], lineno: int, out: list[bytes]
    ) -> tuple[int, int, int]:
        start = len(out)
        counts = originals["replay_lines"](engine, lines, lineno, out)
        for line in out[start:]:
            check_output(orjson.loads(line))
        CHECKED["replay_lines"] += len(out) - start
        return counts

    def encode_values(
        engine: Engine, values: list[bytes | None], positions: list[int]
    ) -> list[Encoded]:
        encoded = originals["encode_values"](engine, values, positions)
        for _, _, value in encoded:
            check_output(orjson.loads(value))
        CHECKED["encode_values"] += len(encoded)
        return encoded

    wrappers = {"replay_lines": replay_lines, "encode_values": encode_values}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "process", checked)
        for module in list(sys.modules.values()):
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    patch.setattr(module, name, wrappers[name])
        yield


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker for the whole test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external
        return

    port = free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_DATA_DIR": str(tmp_path_factory.mktemp("kafka") / str(port)),
    }
    env.pop("KAFKA_KEEP_DATA", None)
    env.pop("KAFKA_CONTROLLER_PORT", None)
    with launched(env):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> TopicFactory:
    """Create fresh, uniquely named topics and wait until their metadata is visible."""

    def make(partitions: int = 1, *, compact: bool = False, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex}"
        config = {"cleanup.policy": "compact"} if compact else {}
        asyncio.run(create_topic(kafka_bootstrap, name, partitions, config))
        return name

    return make
