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
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# pyproject's pytest config puts tests/ on sys.path; keep working without it too
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

from kafka_helpers import create_topic, free_port, kafka_sh, scaled
from record_schemas import check_output

from streams.engine import Engine, Output

TopicFactory = Callable[..., str]


@pytest.fixture(scope="session", autouse=True)
def engine_outputs_match_their_schemas() -> Iterator[None]:
    """Every record any engine returns during the run is checked against docs/schemas
    (tests/record_schemas.py): a field or record type the schemas do not describe fails
    the test that produced it. Worker outputs are checked where tests/pipeline.py reads
    them back."""
    process = Engine.process

    def checked(self: Engine, raw: bytes | str, position: int) -> list[Output]:
        outputs = process(self, raw, position)
        for _, _, record in outputs:
            check_output(record)
        return outputs

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "process", checked)
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
    try:
        # generous: the first run may also download the jars (kafka.sh fetch)
        kafka_sh("up", env, scaled(300))
    except BaseException as exc:
        try:
            kafka_sh("down", env, scaled(60))
        except Exception as down_exc:  # report it, but keep the start error
            exc.add_note(f"cleanup `kafka.sh down` also failed: {down_exc}")
        if isinstance(exc, subprocess.TimeoutExpired):
            raise RuntimeError(f"`kafka.sh up` timed out: {exc}") from exc
        raise
    try:
        yield f"127.0.0.1:{port}"
    finally:
        kafka_sh("down", env, scaled(60))


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> TopicFactory:
    """Create fresh, uniquely named topics and wait until their metadata is visible."""

    def make(partitions: int = 1, *, compact: bool = False, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex}"
        config = {"cleanup.policy": "compact"} if compact else {}
        asyncio.run(create_topic(kafka_bootstrap, name, partitions, config))
        return name

    return make
