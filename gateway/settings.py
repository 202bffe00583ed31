"""The gateway's settings, from the environment; a bad value names its variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agents.kafka.clients import KafkaClients
from gateway.errors import GatewayError


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway listens and how much it holds for each client."""

    kafka: KafkaClients
    host: str = "0.0.0.0"  # a gateway serves other hosts: that is its job
    port: int = 8080
    #: Messages waiting for one client at most; one more and the client is evicted. At
    #: least 2,000: a commit of the worker can bring that many records at once.
    queue_size: int = 10_000
    #: Connected clients at most (WebSocket and SSE together); more are refused (503).
    max_clients: int = 1000
    #: How far back the spreads, basis and ticks topics are read at start.
    lookback_s: float = 3600.0
    #: Incoming WebSocket frames larger than this close the connection (1009).
    max_frame_bytes: int = 65_536


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise GatewayError(f"{name}: expected a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def gateway_settings(kafka: KafkaClients, env: Mapping[str, str] = os.environ) -> GatewaySettings:
    """``ARBSTREAM_GATEWAY_{HOST,PORT,QUEUE,MAX_CLIENTS,LOOKBACK_S}``."""
    return GatewaySettings(
        kafka=kafka,
        host=env.get("ARBSTREAM_GATEWAY_HOST", "").strip() or GatewaySettings.host,
        port=_int(env, "ARBSTREAM_GATEWAY_PORT", 8080, 1, 65535),
        queue_size=_int(env, "ARBSTREAM_GATEWAY_QUEUE", 10_000, 2_000, 1_000_000),
        max_clients=_int(env, "ARBSTREAM_GATEWAY_MAX_CLIENTS", 1000, 1, 100_000),
        lookback_s=float(_int(env, "ARBSTREAM_GATEWAY_LOOKBACK_S", 3600, 0, 30 * 86400)),
    )
