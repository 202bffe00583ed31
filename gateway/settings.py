"""The gateway's settings, from the environment; a bad value names its variable.

Safe by default: the gateway listens on loopback unless told otherwise, and refuses to
listen anywhere else without a tokens file (or ``ARBSTREAM_GATEWAY_AUTH=none``, which
serves openly on purpose and says so when it starts). docs/gateway.md has them all.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.gateway.access import parse_origins
from arbstream.gateway.alerts import parse_alertmanager_url
from arbstream.gateway.errors import GatewayError
from arbstream.streams.errors import SetupError


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway listens, who may read it, and how much it holds for each
    client."""

    kafka: KafkaClients
    host: str = "127.0.0.1"  # another address needs tokens (or AUTH=none)
    port: int = 8080
    #: Messages waiting for one client at most; one more and the client is evicted. At
    #: least 2,000: a commit of the worker can bring that many records at once.
    queue_size: int = 10_000
    #: Connected clients at most (WebSocket and SSE together); more are refused (503).
    max_clients: int = 1000
    #: Connections of one client (one token) at most: more are refused (1013 / 503).
    max_per_client: int = 100
    #: How far back the spreads, basis and ticks topics are read at start.
    lookback_s: float = 3600.0
    #: Incoming WebSocket frames larger than this close the connection (1009).
    max_frame_bytes: int = 65_536
    #: One client per line, ``NAME sha256:HEX``; None: no tokens are asked for.
    tokens_file: Path | None = None
    #: ``ARBSTREAM_GATEWAY_AUTH=none``: serve any host without tokens, on purpose.
    open_access: bool = False
    #: Page origins allowed to open the WebSocket, besides the gateway's own.
    origins: frozenset[str] = frozenset()
    #: Serve https and wss only, with this certificate and key (PEM).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: The Alertmanager whose firing alerts the page shows (None: no alerts panel).
    alertmanager_url: str | None = None
    #: How often the Alertmanager is asked (the demo asks every 2 s).
    alerts_every_s: float = 5.0

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (None without TLS); raises SetupError naming the
        variables when the files cannot be used."""
        if self.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SetupError(
                f"ARBSTREAM_GATEWAY_TLS_CERT / ARBSTREAM_GATEWAY_TLS_KEY: cannot use "
                f"{self.tls_cert} and {self.tls_key}: {why}"
            ) from None
        return context


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise GatewayError(f"{name}: expected a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw) if raw else None


def gateway_settings(kafka: KafkaClients, env: Mapping[str, str] = os.environ) -> GatewaySettings:
    """``ARBSTREAM_GATEWAY_*`` (docs/gateway.md); raises GatewayError or SetupError
    naming the variable."""
    host = env.get("ARBSTREAM_GATEWAY_HOST", "").strip() or GatewaySettings.host
    auth = env.get("ARBSTREAM_GATEWAY_AUTH", "").strip().lower()
    if auth not in ("", "none", "token"):
        raise GatewayError(f"ARBSTREAM_GATEWAY_AUTH: expected none or token, got {auth!r}")
    tokens_file = _path(env, "ARBSTREAM_GATEWAY_TOKENS_FILE")
    if auth == "none" and tokens_file is not None:
        raise GatewayError(
            "ARBSTREAM_GATEWAY_AUTH=none and ARBSTREAM_GATEWAY_TOKENS_FILE: set only one"
        )
    if auth == "token" and tokens_file is None:
        raise GatewayError("ARBSTREAM_GATEWAY_AUTH=token needs ARBSTREAM_GATEWAY_TOKENS_FILE")
    if not is_loopback(host) and tokens_file is None and auth != "none":
        raise SetupError(
            f"ARBSTREAM_GATEWAY_HOST={host} serves other hosts, and the gateway asks no "
            "token: set ARBSTREAM_GATEWAY_TOKENS_FILE (`arbstream gateway token NAME` "
            "makes a token and its line), or ARBSTREAM_GATEWAY_AUTH=none to serve openly"
        )
    tls_cert = _path(env, "ARBSTREAM_GATEWAY_TLS_CERT")
    tls_key = _path(env, "ARBSTREAM_GATEWAY_TLS_KEY")
    if (tls_cert is None) != (tls_key is None):
        raise GatewayError(
            "ARBSTREAM_GATEWAY_TLS_CERT and ARBSTREAM_GATEWAY_TLS_KEY: set both, or neither"
        )
    alertmanager = env.get("ARBSTREAM_GATEWAY_ALERTMANAGER_URL", "").strip()
    return GatewaySettings(
        kafka=kafka,
        host=host,
        port=_int(env, "ARBSTREAM_GATEWAY_PORT", 8080, 1, 65535),
        queue_size=_int(env, "ARBSTREAM_GATEWAY_QUEUE", 10_000, 2_000, 1_000_000),
        max_clients=_int(env, "ARBSTREAM_GATEWAY_MAX_CLIENTS", 1000, 1, 100_000),
        max_per_client=_int(env, "ARBSTREAM_GATEWAY_MAX_CLIENTS_PER_TOKEN", 100, 1, 100_000),
        lookback_s=float(_int(env, "ARBSTREAM_GATEWAY_LOOKBACK_S", 3600, 0, 30 * 86400)),
        tokens_file=tokens_file,
        open_access=auth == "none",
        origins=parse_origins(env.get("ARBSTREAM_GATEWAY_ORIGINS", "")),
        tls_cert=tls_cert,
        tls_key=tls_key,
        alerts_every_s=float(_int(env, "ARBSTREAM_GATEWAY_ALERTS_EVERY_S", 5, 1, 3600)),
        alertmanager_url=(
            parse_alertmanager_url(alertmanager, "ARBSTREAM_GATEWAY_ALERTMANAGER_URL")
            if alertmanager
            else None
        ),
    )
