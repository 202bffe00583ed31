"""One simulated venue: the WebSocket server of one feed, its clients, and what it counts.
(simulator/server.py plays a scenario through all of them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed

from arbstream.feeds.settings import FeedSettings
from arbstream.simulator.frames import Frame, Session, garble, make_venue

log = logging.getLogger("simulator")

#: A client whose socket takes longer than this to accept one frame is dropped.
SEND_TIMEOUT_S = 2.0
#: A client this many frames behind is dropped (it would only fall further behind).
CLIENT_QUEUE_MAX = 10_000


@dataclass(slots=True)
class FeedCounters:
    """What one feed's server did (read by the progress log and the tests)."""

    url: str = ""
    frames: int = 0  # scenario frames published (to the clients subscribed at the time)
    lost: int = 0  # frames due during a stall, never sent
    unencodable: int = 0  # routed records this protocol cannot carry
    connections: int = 0  # clients accepted since the start
    dropped_clients: int = 0  # aborted: faults, or too slow to keep up


class Client:
    """One connection: its subscriptions and a writer task draining a bounded queue."""

    def __init__(self, ws: ServerConnection, session: Session) -> None:
        self.ws = ws
        self.session = session
        self.data_frames = 0
        self.pending = 0  # queued or being sent
        self.dead = False  # aborted: whatever is still pushed goes nowhere
        self._queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE_MAX)
        self._writer = asyncio.create_task(self._write())

    def push(self, text: str) -> bool:
        """Queue a frame; False (and the connection aborted) if the client is too slow."""
        if self.dead:
            return True
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self.abort()
            return False
        self.pending += 1
        return True

    def abort(self) -> None:
        """Drop the connection without a close handshake, as a network failure would."""
        self.dead = True
        self.ws.transport.abort()

    async def _write(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.ws.send(text)
                self.pending -= 1
        except (ConnectionClosed, TimeoutError, OSError):
            self.abort()
            self.pending = 0

    async def close(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self.pending = 0


class FeedServer:
    """One feed's venue: its protocol, its connected clients and its counters."""

    def __init__(self, name: str, settings: FeedSettings, bad_every: int | None) -> None:
        self.name = name
        self.settings = settings
        self.venue = make_venue(settings)
        self.counters = FeedCounters()
        self.clients: set[Client] = set()
        self.ready = asyncio.Event()  # a client has subscribed at least once
        self.stalled = False
        self.server: Server | None = None
        self._bad_every = bad_every

    async def handle(self, ws: ServerConnection) -> None:
        client = Client(ws, self.venue.new_session())
        self.clients.add(client)
        self.counters.connections += 1
        try:
            for text in self.venue.greeting():
                self._reply(client, text)
            self._note_ready(client)
            async for message in ws:
                for text in self.venue.answer(client.session, message):
                    self._reply(client, text)
                self._note_ready(client)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            await client.close()

    def _reply(self, client: Client, text: str) -> None:
        # A stalled venue is silent: no pong either, so the client's watchdog sees it.
        if not self.stalled and not client.push(text):
            self._dropped_slow()

    def _note_ready(self, client: Client) -> None:
        if client.session.streaming:
            self.ready.set()

    def publish(self, frame: Frame) -> None:
        if self.stalled:
            self.counters.lost += 1
            return
        self.counters.frames += 1
        for client in list(self.clients):
            if not client.session.wants(frame.symbol):
                continue
            client.data_frames += 1
            ok = client.push(frame.text)
            if ok and self._bad_every and client.data_frames % self._bad_every == 0:
                ok = client.push(garble(frame.text))
            if not ok:
                self._dropped_slow()

    def _dropped_slow(self) -> None:
        self.counters.dropped_clients += 1
        log.warning(
            "feed %s: dropped a client more than %d frames behind", self.name, CLIENT_QUEUE_MAX
        )

    def drop_all(self) -> int:
        clients = list(self.clients)
        for client in clients:
            client.abort()
        self.counters.dropped_clients += len(clients)
        return len(clients)

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.clients)
