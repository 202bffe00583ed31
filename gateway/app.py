"""One gateway: the reader, the market view, the hub of clients and the web server,
wired together and run until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from agents.kafka.probe import BrokerWatch
from agents.kafka.topics import Topics
from gateway.clients import Hub
from gateway.metrics import gateway_registry
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from gateway.source import TopicReader
from gateway.view import Entry, MarketView
from streams.config import EngineConfig

log = logging.getLogger(__name__)

#: Venue status goes to every client this often (quote ages move with the clock).
VENUES_EVERY_S = 1.0
READY_MESSAGE = "arbstream gateway ready"
#: How often the gateway asks whether the broker is there (``/readyz`` is 503 while it
#: is not: the reader's fetches just come back empty then, and the gateway would go on
#: serving a frozen market).
BROKER_PROBE_EVERY_S = 2.0
#: How long connections may take to finish when the gateway stops.
SHUTDOWN_S = 5.0


class Gateway:
    """Everything one ``arbstream gateway`` process runs."""

    def __init__(self, config: EngineConfig, topics: Topics, settings: GatewaySettings) -> None:
        self.settings = settings
        self.view = MarketView(config, topics.spreads, topics.signals, topics.basis)
        self.hub = Hub(settings.max_clients, settings.queue_size)
        self.broker = BrokerWatch(settings.kafka.bootstrap, BROKER_PROBE_EVERY_S)
        self.reader = TopicReader(
            settings.kafka,
            topics,
            frozenset(config.venues),
            self._on_entry,
            settings.lookback_s,
            on_caught_up=self._caught_up,
        )
        self.server = GatewayServer(
            self.hub,
            self.view,
            self.readiness,
            gateway_registry(self.hub, self.reader),
            settings.max_frame_bytes,
        )

    def _on_entry(self, entry: Entry) -> None:
        # Until the reader has caught up, clients would get history as if it were live:
        # they get it in their snapshot instead.
        if self.view.apply(entry) and self.reader.caught_up:
            self.hub.publish(entry)

    def _caught_up(self) -> None:
        self.server.go_live()
        log.warning("%s on http://%s:%d/", READY_MESSAGE, self.settings.host, self.settings.port)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self.reader.assigned and self.reader.caught_up and self.broker.answers
        return ready, {
            "ready": ready,
            "assigned": self.reader.assigned,
            "caught_up": self.reader.caught_up,
            "broker": self.broker.answers,
            "records": self.reader.records,
            "clients": len(self.hub.clients),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        runner = web.AppRunner(self.server.app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        await web.TCPSite(runner, self.settings.host, self.settings.port).start()
        log.info("gateway: serving on http://%s:%d/", self.settings.host, self.settings.port)
        tasks: list[asyncio.Task[Any]] = []
        try:
            tasks = [
                asyncio.create_task(self._read(), name="gateway reader"),
                asyncio.create_task(self._venues(), name="gateway venues"),
                asyncio.create_task(self.broker.run(), name="gateway broker watch"),
            ]
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(TimeoutError):
                await self.server.close_all()
            await self.reader.stop()
            await runner.cleanup()
            log.info(
                "gateway stopped: %d records read, %d messages sent, %d clients evicted",
                self.reader.records,
                self.hub.sent,
                self.hub.evictions,
            )

    async def _read(self) -> None:
        await self.reader.start()
        await self.reader.run()

    async def _venues(self) -> None:
        while True:
            await asyncio.sleep(VENUES_EVERY_S)
            if self.reader.caught_up and self.hub.clients:
                self.hub.broadcast(self.server.venues_message())
