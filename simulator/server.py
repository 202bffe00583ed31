"""The venue simulator: every feed of a config served on its own local WebSocket port.

``arbstream feed`` cannot tell the simulator from the real venues: each feed's url gets
a server speaking that feed's protocol (simulator/frames.py), with the venue's
handshake (subscribe, authenticate, ping), and frames paced in event time
(simulator/timeline.py). Like a real venue it pushes to whoever is subscribed
now: a client that is away misses those frames, and a stalled venue's data is lost.

Faults a demo or a test can switch on (:class:`SimulatorSettings`): dropped
connections, stalls, garbled frames. Each client has its own bounded send queue and
writer task, so a slow or dead client is dropped instead of holding up the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, serve

from arbstream.feeds.backoff import sleep_unless_stopped
from arbstream.feeds.errors import FeedError
from arbstream.feeds.settings import FeedsConfig
from arbstream.simulator.frames import EncodeError, Router
from arbstream.simulator.timeline import GeneratedScenario, ScenarioFile, event_ts, pace
from arbstream.simulator.venue import FeedCounters, FeedServer

log = logging.getLogger("simulator")

PROGRESS_EVERY_S = 10.0
#: At the end of a scenario, how long queued frames may take to reach the clients.
DRAIN_TIMEOUT_S = 5.0
#: Frames sent back to back (a burst, or speed far above the tick rate) before the
#: loop lets the client writers run.
YIELD_EVERY = 256


@dataclass(frozen=True)
class SimulatorSettings:
    """How the scenario is played and which faults are injected (wall-clock seconds)."""

    speed: float = 1.0  # event time runs this many times faster than wall time
    loop: bool = False  # replay a scenario file forever, shifted forward each pass
    drop_every_s: float | None = None  # abort every client connection this often
    stall_every_s: float | None = None  # stop sending this often ...
    stall_for_s: float | None = None  # ... for this long (frames due meanwhile are lost)
    bad_every: int | None = None  # after every N-th frame on a connection, a garbled one
    wait_for_clients_s: float = 30.0  # hold the clock until every feed has a subscriber
    seed: int = 1  # of the generated scenario
    max_gap_s: float | None = None  # a quiet stretch lasts at most this long (None: as due)

    def __post_init__(self) -> None:
        def positive(name: str, value: float | None) -> None:
            if value is not None and not (math.isfinite(value) and value > 0):
                raise FeedError(f"simulator {name} must be a number > 0, got {value!r}")

        positive("speed", self.speed)
        positive("drop_every_s", self.drop_every_s)
        positive("stall_every_s", self.stall_every_s)
        positive("stall_for_s", self.stall_for_s)
        positive("max_gap_s", self.max_gap_s)
        if (self.stall_every_s is None) != (self.stall_for_s is None):
            raise FeedError("simulator stall_every_s and stall_for_s go together")
        every, length = self.stall_every_s, self.stall_for_s
        if every is not None and length is not None and length >= every:
            raise FeedError("simulator stall_for_s must be shorter than stall_every_s")
        if self.bad_every is not None and self.bad_every < 1:
            raise FeedError(f"simulator bad_every must be >= 1, got {self.bad_every!r}")
        if not (math.isfinite(self.wait_for_clients_s) and self.wait_for_clients_s >= 0):
            raise FeedError("simulator wait_for_clients_s must be >= 0")


@dataclass(slots=True)
class SimulatorStats:
    feeds: dict[str, FeedCounters] = field(default_factory=dict)
    not_records: int = 0  # scenario values that are not routable quote / fx records
    unserved: int = 0  # records of a venue or pair no feed serves
    event_ts: int | None = None  # the largest event time sent so far
    passes: int = 1  # passes over the scenario file started
    done: bool = False  # the scenario ran to its end (not stopped)

    @property
    def frames(self) -> int:
        return sum(f.frames for f in self.feeds.values())


class Simulator:
    """Serves one scenario on every feed of ``config``; see :func:`serve_scenario`."""

    def __init__(self, config: FeedsConfig, settings: SimulatorSettings) -> None:
        if not config.feeds:
            raise FeedError(f"config {config.source} has no [feeds] to simulate")
        self.config = config
        self.settings = settings
        self.feeds = {
            name: FeedServer(name, s, settings.bad_every)
            for name, s in sorted(config.feeds.items())
        }
        self.stats = SimulatorStats(feeds={n: f.counters for n, f in self.feeds.items()})
        self.router = Router(config.feeds)
        self._warned_unencodable: set[str] = set()

    async def run(self, source: Iterable[Any], stop: asyncio.Event) -> SimulatorStats:
        """Bind every feed, wait for clients, play ``source``; return when done or stopped."""
        async with contextlib.AsyncExitStack() as stack:
            for feed in self.feeds.values():
                feed.server = await self._bind(feed)
                stack.push_async_callback(_close_server, feed.server)
            urls = " ".join(f"{n}={f.counters.url}" for n, f in self.feeds.items())
            log.info("simulator serving %d feeds: %s", len(self.feeds), urls)
            if not await self._wait_for_clients(stop):
                log.info("simulator stopped before the clock started")
                return self.stats
            start = asyncio.get_running_loop().time()
            helpers = [asyncio.create_task(self._progress(source))]
            s = self.settings
            if s.drop_every_s is not None:
                helpers.append(asyncio.create_task(self._drops(start, s.drop_every_s)))
            if s.stall_every_s is not None and s.stall_for_s is not None:
                helpers.append(
                    asyncio.create_task(self._stalls(start, s.stall_every_s, s.stall_for_s))
                )
            try:
                self.stats.done = await self._play(source, stop, start)
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                for feed in self.feeds.values():
                    feed.stalled = False
            if self.stats.done:
                await self._drain(stop)
                log.info("scenario done: %d frames (%s)", self.stats.frames, self._summary())
            else:
                log.info("simulator stopped: %d frames (%s)", self.stats.frames, self._summary())
        return self.stats

    async def _bind(self, feed: FeedServer) -> Server:
        url = urlsplit(feed.settings.url)
        if url.scheme != "ws":
            raise FeedError(
                f"feed {feed.name}: the simulator serves plain ws:// only, not {url.scheme}://"
                f" ({feed.settings.url}); point the feed at a local ws:// url"
            )
        host, port = url.hostname or "127.0.0.1", url.port or 80
        try:
            server = await serve(feed.handle, host, port, close_timeout=1.0)
        except OSError as exc:
            raise FeedError(
                f"feed {feed.name}: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        feed.counters.url = f"ws://{host}:{bound}"
        return server

    async def _wait_for_clients(self, stop: asyncio.Event) -> bool:
        """False if stopped while waiting."""
        timeout = self.settings.wait_for_clients_s
        if timeout > 0 and not stop.is_set():
            log.info("waiting up to %g s for a subscribed client on every feed", timeout)
            all_ready = asyncio.create_task(_all_set([f.ready for f in self.feeds.values()]))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {all_ready, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (all_ready, stopped):
                task.cancel()
            await asyncio.gather(all_ready, stopped, return_exceptions=True)
            missing = [n for n, f in self.feeds.items() if not f.ready.is_set()]
            if missing and not stop.is_set():
                log.warning(
                    "no subscribed client after %g s on feeds %s: starting the clock anyway",
                    timeout,
                    ", ".join(missing),
                )
        if stop.is_set():
            return False
        log.info("clock started at speed %g", self.settings.speed)
        return True

    async def _play(self, source: Iterable[Any], stop: asyncio.Event, start: float) -> bool:
        """Send every value when due; True at the end of the source, False if stopped."""
        loop = asyncio.get_running_loop()
        burst = 0
        for offset, value in pace(source, self.settings.speed, self.settings.max_gap_s):
            if stop.is_set():
                return False
            delay = start + offset - loop.time()
            if delay > 0:
                await sleep_unless_stopped(stop, delay)
                if stop.is_set():
                    return False
                burst = 0
            else:
                burst += 1
                if burst >= YIELD_EVERY:
                    await asyncio.sleep(0)
                    burst = 0
            self._send(value)
        if isinstance(source, ScenarioFile):
            self.stats.passes = source.pass_number + 1
        return not stop.is_set()

    def _send(self, value: Any) -> None:
        ts = event_ts(value)
        if ts is not None and (self.stats.event_ts is None or ts > self.stats.event_ts):
            self.stats.event_ts = ts
        names = self.router.route(value)
        self.stats.not_records = self.router.not_records
        self.stats.unserved = sum(self.router.unserved.values())
        for warning in self.router.warnings:
            log.warning("%s", warning)
        self.router.warnings.clear()
        for name in names:
            feed = self.feeds[name]
            try:
                frame = feed.venue.encode(value)
            except EncodeError as exc:
                feed.counters.unencodable += 1
                if name not in self._warned_unencodable:
                    self._warned_unencodable.add(name)
                    log.warning("feed %s: skipping records it cannot carry, first: %s", name, exc)
                continue
            feed.publish(frame)

    async def _drain(self, stop: asyncio.Event) -> None:
        """Let the clients receive what is queued before the servers close."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while any(f.pending for f in self.feeds.values()) and not stop.is_set():
            if time.monotonic() > deadline:
                log.warning("clients still had frames queued after %g s", DRAIN_TIMEOUT_S)
                return
            await asyncio.sleep(0.01)

    async def _progress(self, source: Iterable[Any]) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if isinstance(source, ScenarioFile):
                self.stats.passes = source.pass_number + 1
            clients = " ".join(f"{n}={len(f.clients)}" for n, f in self.feeds.items())
            log.info(
                "progress: pass %d, event time %s, frames %s, clients %s",
                self.stats.passes,
                _iso(self.stats.event_ts),
                " ".join(f"{n}={f.counters.frames}" for n, f in self.feeds.items()),
                clients,
            )

    async def _drops(self, start: float, every_s: float) -> None:
        for k in itertools.count(1):
            await _sleep_until(start + k * every_s)
            dropped = sum(feed.drop_all() for feed in self.feeds.values())
            log.info("fault: dropped %d client connections", dropped)

    async def _stalls(self, start: float, every_s: float, for_s: float) -> None:
        for k in itertools.count(1):
            await _sleep_until(start + k * every_s)
            log.info("fault: stalling every feed for %g s", for_s)
            for feed in self.feeds.values():
                feed.stalled = True
            await _sleep_until(start + k * every_s + for_s)
            for feed in self.feeds.values():
                feed.stalled = False

    def _summary(self) -> str:
        parts = [
            f"{n}={c.frames}" + (f" lost {c.lost}" if c.lost else "")
            for n, c in self.stats.feeds.items()
        ]
        s = self.stats
        unencodable = sum(c.unencodable for c in s.feeds.values())
        parts.append(f"skipped: {s.not_records} not records, {s.unserved} unserved")
        parts.append(f"{unencodable} not encodable")
        return ", ".join(parts)


async def serve_scenario(
    config: FeedsConfig,
    records_source: Iterable[Any],
    settings: SimulatorSettings,
    stop: asyncio.Event,
) -> SimulatorStats:
    """Serve ``records_source`` (scenario values in arrival order) on every feed of
    ``config`` until it ends or ``stop`` is set. Raises FeedError if a port is taken."""
    return await Simulator(config, settings).run(records_source, stop)


def run_simulator(config: FeedsConfig, scenario: Path | None, settings: SimulatorSettings) -> None:
    """The ``arbstream simulate`` entry point: serve until done or SIGINT/SIGTERM.

    ``scenario`` None serves the generated, endless market starting now."""
    source: Iterable[Any]
    if scenario is None:
        source = GeneratedScenario(config, settings.seed, lambda: time.time_ns() // 1_000_000)
    else:
        source = ScenarioFile(scenario, loop=settings.loop)
    asyncio.run(_main(config, source, settings))


async def _main(config: FeedsConfig, source: Iterable[Any], settings: SimulatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        # Not available off the main thread or on Windows; Ctrl-C still interrupts there.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await serve_scenario(config, source, settings, stop)
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


async def _close_server(server: Server) -> None:
    server.close()
    await server.wait_closed()


async def _all_set(events: list[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))


def _iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")
