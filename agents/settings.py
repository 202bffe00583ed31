"""The Kafka side's settings: the ``[kafka]``, ``[producer]`` and ``[metrics]`` tables
of the config file, what of a whole config the Kafka code needs (:class:`Deployment`),
what a worker process needs besides (:class:`WorkerSettings`), and the broker and ports
from the environment (docs/config.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from arbstream.agents.errors import AgentError
from arbstream.streams.config import EngineConfig, Section
from arbstream.streams.counters import OTHER
from arbstream.streams.validation import NAME_LIMIT

if TYPE_CHECKING:  # (not at run time: a config is read without importing Kafka's client)
    from arbstream.agents.kafka.clients import KafkaClients

#: Records per poll at most, and the inbox size at which the worker's fetch loop waits
#: for a partition's task. A poll returns what the fetcher holds, so at low rates
#: batches are small and a record waits for at most the commit in flight on its partition.
BATCH_MAX = 5000

#: What the worker promises its subscribers (docs/guarantees.md): ``exactly-once``, each
#: batch's outputs, state and offset in one Kafka transaction; ``at-least-once``, no
#: transactions, each batch's outputs acknowledged before the state that follows them is
#: written, and duplicates after a crash identified by ``(key, seq)``.
Guarantee = Literal["exactly-once", "at-least-once"]
GUARANTEES: tuple[Guarantee, ...] = ("exactly-once", "at-least-once")


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker process needs besides the config (either runtime)."""

    kafka: KafkaClients
    web_port: int
    web_host: str = "0.0.0.0"
    batch_max: int = BATCH_MAX
    #: The native worker's (the Faust runtime is at least once whatever this says).
    guarantee: Guarantee = "exactly-once"


class KafkaSettings(Section):
    """``[kafka]``: how the topics arbstream creates are made, and what the exactly-once
    worker requires of the topics it runs on (agents/kafka/guarantees.py)."""

    partitions: Annotated[int, Field(ge=1)] = 8
    replication: Annotated[int, Field(ge=1)] = 1
    #: The replicas that must have a record before Kafka acknowledges it (acks=all).
    #: Default: a majority of 3 or more replicas, else 1.
    min_insync_replicas: Annotated[int | None, Field(ge=1)] = None

    @property
    def min_isr(self) -> int:
        """``min_insync_replicas``, or its default for ``replication``."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return self.replication // 2 + 1 if self.replication >= 3 else 1


def kafka_problems(kafka: KafkaSettings) -> list[str]:
    """The rules of ``[kafka]`` beyond each value's type, one ``  key: message`` each."""
    if kafka.min_isr > kafka.replication:
        return [
            f"  kafka.min_insync_replicas: {kafka.min_isr} is more than kafka.replication "
            f"({kafka.replication}): no write could ever be acknowledged"
        ]
    return []


class ProducerSettings(Section):
    """``[producer]``: how ``arbstream feed`` writes to Kafka."""

    #: Records held while Kafka is unreachable; beyond it the oldest are dropped (counted).
    buffer_max_records: Annotated[int, Field(ge=1)] = 100_000
    #: Small: the sink waits for each chunk's delivery anyway, which batches under load
    #: (docs/performance.md, "Figures behind defaults").
    linger_ms: Annotated[int, Field(ge=0, le=1000)] = 1
    compression: Literal["lz4", "gzip", "zstd", "snappy", "none"] = "lz4"
    #: A batch not acknowledged within this is retried from the buffer.
    delivery_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0


class WorkerSection(Section):
    """``[worker]``: how ``arbstream worker`` commits (``--guarantee`` overrides it)."""

    guarantee: Guarantee = "exactly-once"


class MetricsSettings(Section):
    """``[metrics]``."""

    #: The instruments that get their own label value in metrics; every other instrument
    #: is summed under ``other`` in counters and left out of gauges, so what arrives on
    #: the ticks topic cannot grow the label sets. Default: the instruments the config
    #: names elsewhere (feed symbol maps of quote feeds, venues' ``units``).
    instruments: list[Annotated[str, Field(min_length=1)]] | None = None


def metrics_problems(metrics: MetricsSettings) -> list[str]:
    """The rules of ``[metrics]`` beyond each value's type, one ``  key: message`` each."""
    problems = []
    for n, instrument in enumerate(metrics.instruments or []):
        if len(instrument) > NAME_LIMIT:
            problems.append(
                f"  metrics.instruments[{n}]: an instrument name has at most {NAME_LIMIT} "
                "characters"
            )
    if metrics.instruments is not None and OTHER in metrics.instruments:
        problems.append(f'  metrics.instruments: "{OTHER}" is the label of unlisted instruments')
    return problems


class Deployment(EngineConfig):
    """A config as the Kafka side reads it: the engine's settings (it is one) and the
    deployment's below. ``arbstream.config.Config``, which reads the file, is the one
    implementation; this class only says what the Kafka side may use."""

    topic_prefix: str
    kafka: KafkaSettings
    producer: ProducerSettings
    worker: WorkerSection
    metric_instruments: frozenset[str]


DEFAULT_BROKER = "kafka://127.0.0.1:9092"
DEFAULT_WEB_PORT = 6066
DEFAULT_FEED_METRICS_PORT = 9464


def broker_bootstrap(env: Mapping[str, str] = os.environ) -> str:
    """``ARBSTREAM_BROKER`` (``kafka://host:port[;host:port]``) as aiokafka bootstrap servers."""
    raw = env.get("ARBSTREAM_BROKER", DEFAULT_BROKER).strip()
    hosts = []
    for part in raw.replace(";", ",").split(","):
        host = part.strip().removeprefix("kafka://")
        name, sep, port = host.rpartition(":")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise AgentError(f"ARBSTREAM_BROKER: expected kafka://host:port, got {raw!r}")
        hosts.append(host)
    return ",".join(hosts)


def web_port(env: Mapping[str, str] = os.environ) -> int:
    """``ARBSTREAM_WEB_PORT``: the worker's web and metrics port."""
    return _port(env, "ARBSTREAM_WEB_PORT", DEFAULT_WEB_PORT)


def feed_metrics_port(env: Mapping[str, str] = os.environ) -> int:
    """``ARBSTREAM_FEED_METRICS_PORT``: the feed process's health and metrics port."""
    return _port(env, "ARBSTREAM_FEED_METRICS_PORT", DEFAULT_FEED_METRICS_PORT)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default)).strip()
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise AgentError(f"{name}: expected a port number, got {raw!r}")
    return int(raw)
