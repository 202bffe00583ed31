"""Deployment settings from the environment (contracts.md §8); the config file holds the rest."""

from __future__ import annotations

import os
from collections.abc import Mapping

from agents.errors import AgentError

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
