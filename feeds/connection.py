"""The one connection loop every feed runs, whatever its protocol.

Connect, send the protocol's opening frames (authenticate, subscribe), then turn each
frame into records and hand them to the sink, stamped with ``recv_ts``. Around that:

- **reconnect** on any connection failure, after a jittered exponential delay capped
  at ``backoff_max_s`` (streams.backoff); the delays start over once a connection has
  delivered a frame;
- an **idle watchdog**: no frame for ``idle_timeout_s`` means the connection is dead
  even if TCP has not noticed (a stalled venue, a half-open socket), so it is replaced;
- **keepalives**: the protocol's own ping where it has one (Hyperliquid), WebSocket
  pings otherwise;
- **duplicates and sequence gaps** (feeds.guard), checked across reconnects;
- **bad frames** are counted and logged at most once per ``LOG_EVERY_S``; never fatal.

Only a refused authentication stops the loop (FeedAuthError): the same key will not
start working by retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from arbstream.feeds.backoff import sleep_unless_stopped
from arbstream.feeds.errors import BadFrameError, FeedAuthError
from arbstream.feeds.guard import StreamGuard, Verdict
from arbstream.feeds.protocols import Protocol
from arbstream.feeds.settings import FeedSettings
from arbstream.streams.backoff import backoff

log = logging.getLogger(__name__)

#: Bad frames, gaps and connection failures are logged at most this often per feed.
LOG_EVERY_S = 10.0

#: Frames handled before the receive loop lets other tasks run.
YIELD_EVERY = 256

Sink = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed since it started (read by the metrics and the reports)."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    frames: int = 0
    records: int = 0
    bad_frames: int = 0
    duplicates: int = 0
    seq_gaps: int = 0
    last_frame_at: float | None = None  # wall clock, seconds


class _ThrottledLog:
    """At most one warning per period; says how many were suppressed in between."""

    def __init__(self, name: str, period_s: float = LOG_EVERY_S) -> None:
        self._name = name
        self._period = period_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        log.warning("feed %s: %s%s", self._name, message, more)
        self._suppressed = 0
        self._next = now + self._period


class FeedConnection:
    """One feed's connection, kept alive until ``stop`` is set."""

    def __init__(
        self,
        name: str,
        settings: FeedSettings,
        protocol: Protocol,
        sink: Sink,
        *,
        stats: FeedStats | None = None,
        backoff_base_s: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.protocol = protocol
        self.stats = stats or FeedStats()
        self._sink = sink
        self._guard = StreamGuard(settings.sequence)
        self._backoff_base = backoff_base_s
        self._rng = rng
        self._bad_log = _ThrottledLog(name)
        self._gap_log = _ThrottledLog(name)
        self._conn_log = _ThrottledLog(name)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and reconnect until ``stop``; raises FeedAuthError if refused."""
        delays = backoff(self.settings.backoff_max_s, self._backoff_base, self._rng)
        while not stop.is_set():
            delivered = False
            try:
                delivered = await self._session(stop)
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._conn_log.warning(f"connection to {self.settings.url} lost: {_why(exc)}")
            finally:
                self.stats.connected = False
            if stop.is_set():
                break
            if delivered:
                delays = backoff(self.settings.backoff_max_s, self._backoff_base, self._rng)
            self.stats.reconnects += 1
            await sleep_unless_stopped(stop, next(delays))

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection, until it fails or ``stop``; True if it delivered a record
        (a venue that greets and then hangs up must not reset the backoff)."""
        s = self.settings
        app_ping = self.protocol.keepalive is not None
        async with connect(
            s.url,
            open_timeout=s.open_timeout_s,
            ping_interval=None if app_ping else s.ping_interval_s,
            ping_timeout=None if app_ping else s.ping_interval_s,
            close_timeout=1.0,
            max_size=2**22,
        ) as ws:
            self.stats.connected = True
            self.stats.connects += 1
            log.info("feed %s: connected to %s", self.name, s.url)
            for frame in self.protocol.on_connect():
                await ws.send(frame)
            helpers = [asyncio.create_task(_close_on(stop, ws))]
            if app_ping:
                helpers.append(asyncio.create_task(self._keepalive(ws)))
            try:
                return await self._receive(ws)
            finally:
                for task in helpers:
                    task.cancel()

    async def _receive(self, ws: ClientConnection) -> bool:
        delivered = False
        idle = self.settings.idle_timeout_s
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(idle) as watchdog:
                frames = 0
                async for frame in ws:
                    watchdog.reschedule(loop.time() + idle)
                    if self.on_frame(frame, time.time()):
                        delivered = True
                    frames += 1
                    if frames % YIELD_EVERY == 0:
                        # websockets hands over frames already read without suspending:
                        # in a burst the sink and the other feeds would starve.
                        await asyncio.sleep(0)
        except TimeoutError:
            self._conn_log.warning(f"no frame for {idle:g} s, reconnecting")
        return delivered

    def on_frame(self, frame: str | bytes, now: float) -> int:
        """Parse one frame received at ``now``, sink its new records, return how many."""
        stats = self.stats
        stats.frames += 1
        stats.last_frame_at = now
        try:
            parsed = self.protocol.parse(frame)
        except BadFrameError as exc:
            stats.bad_frames += 1
            self._bad_log.warning(f"bad frame: {exc}")
            return 0
        except FeedAuthError:
            raise
        except Exception as exc:  # a parser bug must not take the feed down with it
            stats.bad_frames += 1
            self._bad_log.warning(f"frame the parser failed on ({_why(exc)}): {frame!r:.200}")
            return 0
        sunk = 0
        if parsed.bad:
            stats.bad_frames += 1
            self._bad_log.warning(f"bad frame: {'; '.join(parsed.bad)}")
        recv_ts = int(now * 1000)
        for record in parsed.records:
            verdict = self._guard.check(record)
            if verdict is Verdict.DUPLICATE:
                stats.duplicates += 1
                continue
            if verdict is Verdict.GAP:
                stats.seq_gaps += 1
                self._gap_log.warning(f"sequence gap before seq {record.get('seq')}")
            elif verdict is Verdict.RESTART:
                self._gap_log.warning(f"sequence restarted at {record.get('seq')}")
            record["recv_ts"] = recv_ts
            self._sink(record)
            sunk += 1
        stats.records += sunk
        return sunk

    async def _keepalive(self, ws: ClientConnection) -> None:
        assert self.protocol.keepalive is not None
        # A failed send ends the keepalive; the receive loop sees the closed connection.
        with contextlib.suppress(WebSocketException, OSError):
            while True:
                await asyncio.sleep(self.settings.ping_interval_s)
                await ws.send(self.protocol.keepalive)


async def _close_on(stop: asyncio.Event, ws: ClientConnection) -> None:
    await stop.wait()
    await ws.close()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
