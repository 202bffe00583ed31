"""The config file: one TOML file, read once, validated whole (docs/config.md).

Each package defines the tables it uses: the engine's sections come from
``streams.config``, ``[feeds.*]`` from ``feeds.settings``, ``[kafka]``, ``[producer]``,
``[metrics]`` and ``[worker]`` from ``agents.settings``. This module joins them into the
model of the whole file, so that every error names its key and nothing is read before
the whole file is known to be good, and gives the :class:`Config` every command works
with: the engine's settings (it is an ``EngineConfig``, and its fingerprint covers those
alone) extended by the deployment's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError

from arbstream.agents.settings import (
    Deployment,
    KafkaSettings,
    MetricsSettings,
    ProducerSettings,
    WorkerSection,
    kafka_problems,
    metrics_problems,
)
from arbstream.feeds.settings import QUOTE_PROTOCOLS, FeedsConfig, FeedSettings, feed_problems
from arbstream.streams.config import (
    EngineModel,
    engine_problems,
    raise_problems,
    validation_problems,
)
from arbstream.streams.errors import ConfigError


class ConfigModel(EngineModel):
    """The whole file: the engine's sections and the deployment's."""

    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] = "arb"
    kafka: KafkaSettings = KafkaSettings()
    feeds: dict[str, FeedSettings] = Field(default_factory=dict)
    producer: ProducerSettings = ProducerSettings()
    metrics: MetricsSettings = MetricsSettings()
    worker: WorkerSection = WorkerSection()


class Config(Deployment, FeedsConfig):
    """A validated config file: the engine's settings, extended by the deployment's."""

    def __init__(self, model: ConfigModel, source: str = "<config>") -> None:
        super().__init__(model, source)
        self.topic_prefix = model.topic_prefix
        self.kafka = model.kafka
        self.feeds: Mapping[str, FeedSettings] = model.feeds
        self.producer = model.producer
        self.worker = model.worker
        self.metric_instruments: frozenset[str] = _metric_instruments(model)


def _metric_instruments(model: ConfigModel) -> frozenset[str]:
    if model.metrics.instruments is not None:
        return frozenset(model.metrics.instruments)
    named = {i for venue in model.venues.values() for i in venue.units}
    for feed in model.feeds.values():
        if feed.protocol in QUOTE_PROTOCOLS:
            named.update(feed.symbols.values())
    return frozenset(named)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Validate already-parsed TOML data; raise ConfigError naming every bad key."""
    try:
        model = ConfigModel.model_validate(dict(data))
    except ValidationError as exc:
        raise_problems(validation_problems(exc), source)
        raise  # not reached: there is at least one problem
    raise_problems(
        engine_problems(model)
        + feed_problems(model.feeds, model.venues)
        + kafka_problems(model.kafka)
        + metrics_problems(model.metrics),
        source,
    )
    return Config(model, source)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {p} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {p} is not valid TOML: {exc}") from None
    return parse_config(data, str(p))
