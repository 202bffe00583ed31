"""``arbstream gateway``: one gateway process, its logging, and how it stops.

SIGINT or SIGTERM closes every client connection and the Kafka reader, and the process
exits; the gateway holds nothing that must be saved (it rebuilds its view from the
topics when it starts again).
"""

from __future__ import annotations

import asyncio
import signal

from arbstream.agents.kafka.access import require_broker, require_rights
from arbstream.agents.kafka.roles import gateway_rights
from arbstream.agents.kafka.topics import Topics
from arbstream.config import Config
from arbstream.gateway.access import TokenBook
from arbstream.gateway.app import Gateway
from arbstream.gateway.settings import GatewaySettings
from arbstream.process import configure_logging, require_free_port


async def serve(config: Config, settings: GatewaySettings) -> None:
    """Run a gateway until SIGINT/SIGTERM; SIGHUP reads its tokens file again."""
    # before anything: tokens and TLS files that cannot be used stop it here
    tokens = None if settings.tokens_file is None else TokenBook.load(settings.tokens_file)
    settings.ssl_context()
    require_free_port(settings.host, settings.port, "ARBSTREAM_GATEWAY_PORT")
    await require_broker(settings.kafka)
    # (the topics that exist now; the reader checks again once they all do)
    await require_rights(settings.kafka, gateway_rights(Topics(config.topic_prefix)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(config, Topics(config.topic_prefix), settings, tokens)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload_tokens)
    await gateway.run(stop)


def run_gateway(config: Config, settings: GatewaySettings, loglevel: str = "info") -> None:
    """Run a gateway until it is stopped (SIGINT/SIGTERM)."""
    configure_logging(loglevel)
    asyncio.run(serve(config, settings))
