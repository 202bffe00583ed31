"""One gateway: the reader, the market view, the hub of clients and the web server,
wired together and run until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from arbstream.agents.kafka.probe import BrokerWatch
from arbstream.agents.kafka.topics import Topics
from arbstream.agents.topic_reader import TopicReader
from arbstream.gateway.access import TokenBook
from arbstream.gateway.alerts import AlertsReport, AlertWatch
from arbstream.gateway.auth import RequestAuth
from arbstream.gateway.clients import Hub, control
from arbstream.gateway.metrics import gateway_registry
from arbstream.gateway.server import GatewayServer
from arbstream.gateway.settings import GatewaySettings
from arbstream.streams.config import EngineConfig
from arbstream.streams.errors import ArbstreamError
from arbstream.streams.market_view import MarketView, TopicRecord

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

    def __init__(
        self,
        config: EngineConfig,
        topics: Topics,
        settings: GatewaySettings,
        tokens: TokenBook | None = None,
    ) -> None:
        """``tokens``: the clients of the tokens file (None: no token is asked for)."""
        self.settings = settings
        self.auth = RequestAuth(tokens, settings.origins, tls=settings.tls_cert is not None)
        self.view = MarketView(config)
        self.hub = Hub(settings.max_clients, settings.queue_size)
        self.broker = BrokerWatch(settings.kafka.bootstrap, BROKER_PROBE_EVERY_S)
        self.reader = TopicReader(
            settings.kafka,
            topics,
            self._on_record,
            settings.lookback_s,
            on_caught_up=self._caught_up,
        )
        self.server = GatewayServer(
            self.hub,
            self.view,
            self.readiness,
            gateway_registry(self.hub, self.reader, self.auth),
            settings.max_frame_bytes,
            self.auth,
            settings.max_per_client,
        )
        self.alerts = (
            None
            if settings.alertmanager_url is None
            else AlertWatch(settings.alertmanager_url, self._on_alerts, settings.alerts_every_s)
        )

    def _on_alerts(self, report: AlertsReport) -> None:
        message = control("alerts", **report.message())
        self.server.alerts_message = message
        if self.reader.caught_up and self.hub.clients:
            self.hub.broadcast(message)

    def _on_record(self, item: TopicRecord) -> None:
        # Until the reader has caught up, clients would get history as if it were live:
        # they get it in their snapshot instead.
        if self.view.apply(item, time.monotonic()) and self.reader.caught_up:
            self.hub.publish(item)

    def _caught_up(self) -> None:
        self.server.go_live()
        s = self.settings
        log.warning("%s on %s://%s:%d/", READY_MESSAGE, s.scheme, s.host, s.port)

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
        s = self.settings
        context = s.ssl_context()
        runner = web.AppRunner(self.server.app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        await web.TCPSite(runner, s.host, s.port, ssl_context=context).start()
        log.info("gateway: serving on %s://%s:%d/", s.scheme, s.host, s.port)
        if s.open_access:
            log.warning(
                "gateway: ARBSTREAM_GATEWAY_AUTH=none: serving every signal on %s to anyone "
                "who reaches it, without a token",
                s.host,
            )
        elif self.auth.book is not None:
            log.info("gateway: tokens of %d clients required", len(self.auth.book.entries))
        tasks: list[asyncio.Task[Any]] = []
        try:
            tasks = [
                asyncio.create_task(self._read(), name="gateway reader"),
                asyncio.create_task(self._venues(), name="gateway venues"),
                asyncio.create_task(self.broker.run(), name="gateway broker watch"),
            ]
            if self.alerts is not None:
                log.info("gateway: showing the alerts of the Alertmanager at %s", self.alerts.url)
                tasks.append(asyncio.create_task(self.alerts.run(), name="gateway alerts"))
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

    def reload_tokens(self) -> None:
        """Read the tokens file again (SIGHUP); a file that cannot be read leaves the
        tokens as they were, and says so."""
        path = self.settings.tokens_file
        if path is None:
            log.warning("gateway: SIGHUP, but no ARBSTREAM_GATEWAY_TOKENS_FILE to read")
            return
        try:
            book = TokenBook.load(path)
        except ArbstreamError as exc:
            log.error("gateway: tokens not reloaded (the previous ones stay): %s", exc)
            return
        closed = self.server.reload_tokens(book)
        log.warning(
            "gateway: tokens reloaded from %s: %d clients; %d connections of removed tokens closed",
            path,
            len(book.entries),
            closed,
        )

    async def _read(self) -> None:
        await self.reader.start()
        await self.reader.run()

    async def _venues(self) -> None:
        while True:
            await asyncio.sleep(VENUES_EVERY_S)
            if self.reader.caught_up and self.hub.clients:
                self.hub.broadcast(self.server.venues_message())
