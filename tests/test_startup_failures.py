"""Every command that cannot start says why in one line on stderr, exits with status 2,
and has created nothing: no broker at ARBSTREAM_BROKER, a port that is taken, a config
that cannot be read, topics that cannot be created as the config asks."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from helpers.kafka import create_topic, free_port, scaled

# (each case starts a command in a process of its own: ten seconds in all)
pytestmark = pytest.mark.slow

CONFIG = """topic_prefix = "{prefix}"
[venues.X]
currency = "USD"
unit = "oz"
[feeds.x]
protocol = "native"
url = "ws://127.0.0.1:1/venue"
venue = "X"
[kafka]
partitions = 2
replication = {replication}
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbstream.cli", *args],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=scaled(60),
        stdin=subprocess.DEVNULL,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("arbstream: "), lines
    for word in words:
        assert word in lines[0], lines


def topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    async def names() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return [t for t in await admin.list_topics() if t.startswith(prefix)]
        finally:
            await admin.close()

    return asyncio.run(names())


@pytest.fixture
def config(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    prefix = f"s{uuid.uuid4().hex[:10]}"
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(prefix=prefix, replication=1))
    (tmp_path / "t.jsonl").write_text('{"type": "fx"}\n')
    yield path, prefix


COMMANDS = {
    "produce": ["produce", "{dir}/t.jsonl", "--config", "{config}"],
    "topics": ["topics", "--config", "{config}"],
    "worker": ["worker", "--config", "{config}"],
    "feed": ["feed", "--config", "{config}"],
    "demo": ["demo", "--config", "{config}", "--seconds", "5", "--log-dir", "{dir}/demo"],
}


def command(name: str, config: Path) -> list[str]:
    return [a.format(dir=config.parent, config=config) for a in COMMANDS[name]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_no_broker(name: str, config: tuple[Path, str]) -> None:
    path, _ = config
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://127.0.0.1:{port}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
    }
    assert_one_line(run(command(name, path), env), "ARBSTREAM_BROKER", f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("name", "variable"),
    [("worker", "ARBSTREAM_WEB_PORT"), ("feed", "ARBSTREAM_FEED_METRICS_PORT")],
)
def test_port_in_use_creates_nothing(
    name: str, variable: str, config: tuple[Path, str], kafka_bootstrap: str
) -> None:
    path, prefix = config
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}", variable: str(port)}
        assert_one_line(run(command(name, path), env), variable, str(port))
    assert topics_with_prefix(kafka_bootstrap, prefix) == []


@pytest.mark.parametrize("name", ["worker", "topics", "produce", "feed"])
def test_topics_that_cannot_be_created(
    name: str, config: tuple[Path, str], kafka_bootstrap: str
) -> None:
    """Replication 3 on a one-broker cluster: the broker refuses every topic."""
    path, prefix = config
    path.write_text(CONFIG.format(prefix=prefix, replication=3))
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
    }
    assert_one_line(run(command(name, path), env), "cannot create topic", prefix)
    assert topics_with_prefix(kafka_bootstrap, prefix) == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_config_that_cannot_be_read(name: str, config: tuple[Path, str]) -> None:
    path, _ = config
    path.write_bytes(b"\xff\xfe not TOML")
    assert_one_line(run(command(name, path), dict(os.environ)), str(path))
    path.unlink()
    assert_one_line(run(command(name, path), dict(os.environ)), str(path))


def test_a_state_topic_that_is_not_compacted(
    config: tuple[Path, str], kafka_bootstrap: str
) -> None:
    """The workers' state topic made by hand with the default cleanup (delete): the worker
    would lose its state to retention, and says so instead of starting."""
    path, prefix = config
    asyncio.run(create_topic(kafka_bootstrap, f"{prefix}.worker-state", 2))
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
    }
    assert_one_line(run(command("worker", path), env), f"'{prefix}.worker-state'", "compact")
