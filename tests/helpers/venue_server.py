"""A scriptable local WebSocket venue for the connection-loop tests (a real server).

It publishes numbered native quotes every ``period_s`` to whoever is connected, like a
venue: frames published while a client is away are gone. On each new connection it
first replays its last few frames, as venues that snapshot on subscribe or replay a
buffer do, so the client's duplicate guard has something to drop. The test can drop
every connection, stop and restart the server on the same port, stall it, and inject
garbled frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

T0 = 1_769_990_400_000


class VenueServer:
    def __init__(self, port: int, period_s: float = 0.01, venue: str = "X") -> None:
        self.port = port
        self.venue = venue
        self.period_s = period_s
        self.seq = 0
        self.stalled = False
        self.garbage_every = 0  # every n-th frame is followed by a garbled one (0: never)
        self.connected_at: list[float] = []  # monotonic time of every accepted connection
        self.received: list[str | bytes] = []  # frames the clients sent
        self.reply: dict[str, str] = {}  # client frame -> frame to answer with
        self._clients: set[ServerConnection] = set()
        self._server: Server | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._recent: list[str] = []
        self._replay: list[str] = []  # what a new connection gets first

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/venue"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port)
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._publish())

    async def stop_listening(self) -> None:
        """The venue goes away: the listening socket and every connection close."""
        assert self._server is not None
        self._replay = list(self._recent)
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        if self._server is not None:
            await self.stop_listening()

    def drop_all(self) -> None:
        """Abort every connection without a close handshake (a network failure)."""
        # the frames just before the drop, which the client has: replayed on reconnect
        self._replay = list(self._recent)
        for ws in list(self._clients):
            ws.transport.abort()

    def frame(self, seq: int) -> str:
        record: dict[str, Any] = {
            "type": "quote",
            "venue": self.venue,
            "instrument": "XAG",
            "bid": 78.0 + seq / 1000,
            "ask": 78.04 + seq / 1000,
            "ts": T0 + seq * 10,
            "seq": seq,
        }
        return orjson.dumps(record).decode()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connected_at.append(time.monotonic())
        for frame in self._replay:
            await ws.send(frame)
        self._clients.add(ws)
        try:
            async for message in ws:
                self.received.append(message)
                answer = self.reply.get(message if isinstance(message, str) else "")
                if answer is not None:
                    await ws.send(answer)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if self.stalled:
                continue
            self.seq += 1
            frames = [self.frame(self.seq)]
            self._recent = [*self._recent[-4:], frames[0]]
            if self.garbage_every and self.seq % self.garbage_every == 0:
                frames.append(frames[0][: len(frames[0]) // 2])
            for ws in list(self._clients):
                for frame in frames:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(frame)
