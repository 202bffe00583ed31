"""Gateway clients: one bounded queue each, and eviction of those that fall behind.

The gateway never waits for a client. A record is offered to every client whose
subscription matches it: put into the client's queue, or, when the queue is full, the
client is evicted (WebSocket close code 1013, "try again later", with a reason; an SSE
stream simply ends). Each client's own task writes its queue to its socket, so a slow
socket slows only that task. Memory is bounded by ``MAX_CLIENTS x queue size x the
largest message``, whatever clients do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from arbstream.gateway.access import OPEN, Principal
from arbstream.gateway.subscription import Matcher, Subscription
from arbstream.streams.market_view import TopicRecord

log = logging.getLogger(__name__)

#: Close code for a client evicted for being slow (RFC 6455 §7.4.1: "try again later").
SLOW_CLIENT_CLOSE = 1013
#: Close code for a client whose token was removed (RFC 6455 §7.4.1: "policy violation").
REVOKED_CLOSE = 1008


def envelope(entry: TopicRecord) -> bytes:
    """``{"topic": ..., "key": ..., "record": {...}}`` with the record's own bytes."""
    return b"".join(
        (
            b'{"topic":',
            orjson.dumps(entry.topic),
            b',"key":',
            orjson.dumps(entry.key),
            b',"record":',
            entry.raw,
            b"}",
        )
    )


def control(kind: str, **fields: Any) -> bytes:
    """A gateway message that is not a record: ``{"type": kind, ...}``."""
    return orjson.dumps({"type": kind, **fields})


class Client:
    """One subscriber: its filter, its queue and whether it has been evicted."""

    def __init__(
        self, name: str, transport: str, queue_size: int, principal: Principal = OPEN
    ) -> None:
        self.name = name
        self.transport = transport
        self.principal = principal  # who it authenticated as
        self.close_code = SLOW_CLIENT_CLOSE  # the WebSocket close code once it is gone
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.matcher: Matcher = Subscription().matcher()
        self.subscribed = False
        self.evicted: str | None = None  # the reason, once evicted
        self.gone = asyncio.Event()  # set when evicted: the writer stops

    def offer(self, message: bytes) -> bool:
        """Queue ``message``; False when the queue is full (the client must go)."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def replace_queue(self, messages: list[bytes]) -> bool:
        """Drop what is queued and queue ``messages`` (a new subscription's snapshot)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        return all(self.offer(m) for m in messages)


class Hub:
    """Every connected client, and the counters the gateway's metrics read."""

    def __init__(self, max_clients: int, queue_size: int) -> None:
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        self.sent = 0
        self.dropped = 0
        self.evictions = 0

    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def connections_of(self, principal: Principal) -> int:
        """How many clients are connected as ``principal`` (by name)."""
        return sum(1 for c in self.clients if c.principal.name == principal.name)

    def revoke(self, keep: Callable[[Principal], bool]) -> list[Client]:
        """Disconnect every client whose principal is no longer to be kept (its token
        was removed): WebSocket close 1008; returns them."""
        gone = [c for c in list(self.clients) if not keep(c.principal)]
        for client in gone:
            client.close_code = REVOKED_CLOSE
            self._disconnect(client, "token revoked")
            log.warning(
                "gateway: client %s (%s) disconnected: token revoked", client.name, client.transport
            )
        return gone

    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    def publish(self, entry: TopicRecord) -> None:
        """Offer one record to every client whose subscription takes it."""
        message: bytes | None = None
        for client in list(self.clients):
            if not client.subscribed or not client.matcher(entry.record):
                continue
            if message is None:
                message = envelope(entry)
            self.send(client, message)

    def broadcast(self, message: bytes) -> None:
        """Offer a control message (venue status) to every subscribed client."""
        for client in list(self.clients):
            if client.subscribed:
                self.send(client, message)

    def send(self, client: Client, message: bytes) -> None:
        """Queue ``message`` for ``client``, or evict it when its queue is full."""
        if not client.offer(message):
            self.evict(client, f"too slow: {self.queue_size} messages waiting")

    def evict(self, client: Client, reason: str) -> None:
        if client.evicted:
            return
        self.dropped += client.queue.qsize() + 1
        self.evictions += 1
        self._disconnect(client, reason)
        log.warning("gateway: client %s (%s) evicted: %s", client.name, client.transport, reason)

    def _disconnect(self, client: Client, reason: str) -> None:
        """Gone from the hub at once, its queue freed: whatever its socket does next (a
        client that reads nothing holds its close handshake), it costs no more memory
        and no longer counts against the client limit."""
        client.evicted = reason
        self.clients.discard(client)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.gone.set()

    def queue_depth(self) -> int:
        """The deepest client queue now."""
        return max((c.queue.qsize() for c in self.clients), default=0)


async def drain(client: Client, write: Callable[[bytes], Awaitable[None]], hub: Hub) -> None:
    """Write ``client``'s queue for as long as the connection lasts. The connection's
    handler cancels this when the client is evicted (a write to a socket nobody reads
    may wait for ever)."""
    get = client.queue.get
    while True:
        await write(await get())
        hub.sent += 1
