"""``arbstream feed``: the configured feeds of one process, their Kafka sink, health.

Every selected feed runs its connection loop (feeds.connection) into one shared sink
(agents.sink). The process serves ``/healthz`` (alive), ``/readyz`` (every feed
connected, and Kafka) and ``/metrics`` (arbstream/feed_metrics.py) on
``ARBSTREAM_FEED_METRICS_PORT``, and logs each feed's counters every ``REPORT_EVERY_S``.
On SIGINT/SIGTERM the feeds close first, then the sink drains. API keys are read here,
from the environment variables the config names; a variable that is not set is a config
error before any connection is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.health import PartitionHealth
from arbstream.agents.kafka.roles import feed_rights
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.agents.sink import KafkaSink
from arbstream.config import Config
from arbstream.feed_metrics import FeedMetrics
from arbstream.feeds.connection import FeedConnection
from arbstream.feeds.protocols import make_protocol
from arbstream.feeds.settings import FeedSettings
from arbstream.process import configure_logging, require_free_port, serve_health
from arbstream.streams.errors import ConfigError

log = logging.getLogger(__name__)

REPORT_EVERY_S = 10.0
READY_MESSAGE = "arbstream feeds connected"


@dataclass(frozen=True)
class SelectedFeed:
    name: str
    settings: FeedSettings
    api_key: str | None


def select_feeds(
    config: Config, only: Sequence[str] = (), env: Mapping[str, str] = os.environ
) -> list[SelectedFeed]:
    """The feeds to run (all, or those named by ``--only``), with their API keys."""
    if not config.feeds:
        raise ConfigError(f"invalid config {config.source}:\n  feeds: no [feeds.NAME] table")
    unknown = [name for name in only if name not in config.feeds]
    if unknown:
        raise ConfigError(
            f"--only {', '.join(unknown)}: no such feed in {config.source} "
            f"(feeds: {', '.join(sorted(config.feeds))})"
        )
    selected = []
    for name in sorted(only or config.feeds):
        settings = config.feeds[name]
        key = None
        if settings.api_key_env is not None:
            key = env.get(settings.api_key_env, "")
            if not key:
                raise ConfigError(
                    f"invalid config {config.source}:\n  feeds.{name}.api_key_env: "
                    f"environment variable {settings.api_key_env} is not set"
                )
        selected.append(SelectedFeed(name, settings, key))
    return selected


class FeedProcess:
    """The feeds and the sink of one ``arbstream feed`` process."""

    def __init__(self, config: Config, kafka: KafkaClients, feeds: Sequence[SelectedFeed]) -> None:
        self.sink = KafkaSink(config, kafka)
        self.connections = [
            FeedConnection(f.name, f.settings, make_protocol(f.settings, f.api_key), self.sink.put)
            for f in feeds
        ]
        self.metrics = FeedMetrics(self.connections, self.sink, lambda: self.ready)
        topics = Topics(config.topic_prefix)
        self.health = PartitionHealth(kafka, [topics.ticks, topics.fx])
        self.metrics.registry.register(self.health)
        self._stop = asyncio.Event()
        self._was_ready = False

    @property
    def ready(self) -> bool:
        """Every feed is connected to its venue."""
        return all(c.stats.connected for c in self.connections)

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready: every feed connected, and Kafka too."""
        kafka = self.sink.stats.connected
        ready = self._note_readiness() and kafka
        feeds = {c.name: c.stats.connected for c in self.connections}
        return ready, {"ready": ready, "feeds": feeds, "kafka": kafka}

    def _note_readiness(self) -> bool:
        """Log when every feed has become connected. Called by the reporter every 0.1 s
        and by every /readyz, so the message is out before a probe sees 200."""
        ready = self.ready
        if ready and not self._was_ready:
            log.info("%s: %s", READY_MESSAGE, ", ".join(c.name for c in self.connections))
        self._was_ready = ready
        return ready

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Until ``stop``; raises FeedAuthError if a venue refuses a key."""
        feeds_stop, sink_stop = asyncio.Event(), asyncio.Event()
        sink = asyncio.create_task(self.sink.run(sink_stop), name="sink")
        feeds = [
            asyncio.create_task(c.run(feeds_stop), name=f"feed {c.name}") for c in self.connections
        ]
        reporter = asyncio.create_task(self._report())
        health = asyncio.create_task(self.health.run(), name="partition health")
        failure: BaseException | None = None
        try:
            # A feed returns early only on a refused key; the sink only on a bug.
            stopped = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait(
                [stopped, sink, *feeds], return_when=asyncio.FIRST_COMPLETED
            )
            stopped.cancel()
            for task in done:
                if task is not stopped and task.exception() is not None:
                    failure = task.exception()
        finally:
            feeds_stop.set()
            await asyncio.gather(*feeds, return_exceptions=True)
            sink_stop.set()
            await asyncio.gather(sink, return_exceptions=True)
            reporter.cancel()
            health.cancel()
        self._log_counters()
        if failure is not None:
            raise failure

    async def _report(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            self._note_readiness()
            if time.monotonic() - last >= REPORT_EVERY_S:
                last = time.monotonic()
                self._log_counters()

    def _log_counters(self) -> None:
        now = time.time()
        for c in self.connections:
            s = c.stats
            age = f"{now - s.last_frame_at:.1f} s" if s.last_frame_at else "never"
            log.info(
                "feed %s: %s, %d frames, %d records, %d bad, %d duplicates, %d gaps, "
                "%d reconnects, last frame %s ago",
                c.name,
                "connected" if s.connected else "DISCONNECTED",
                s.frames,
                s.records,
                s.bad_frames,
                s.duplicates,
                s.seq_gaps,
                s.reconnects,
                age,
            )
        k = self.sink.stats
        log.info(
            "kafka: %d sent, %d buffered, %d dropped, %d failed sends",
            k.sent,
            len(self.sink.buffer),
            k.dropped,
            k.send_errors,
        )


async def serve_feeds(
    config: Config, kafka: KafkaClients, feeds: Sequence[SelectedFeed], port: int
) -> None:
    process = FeedProcess(config, kafka, feeds)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, process.stop)
    require_free_port("0.0.0.0", port, "ARBSTREAM_FEED_METRICS_PORT")
    # A broker that refuses this client, topics it refuses to make, or a right the feed
    # lacks stop the process here, not in the sink's retries.
    await prepare(kafka, config, feed_rights(Topics(config.topic_prefix)), runtime=None)
    runner = await serve_health("0.0.0.0", port, process.readiness, process.metrics.registry)
    try:
        await process.run()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def run_feeds(
    config: Config,
    kafka: KafkaClients,
    feeds: Sequence[SelectedFeed],
    port: int,
    loglevel: str = "info",
) -> None:
    """Run the feeds until SIGINT/SIGTERM. Raises FeedAuthError if a key is refused."""
    configure_logging(loglevel)
    asyncio.run(serve_feeds(config, kafka, feeds, port))
