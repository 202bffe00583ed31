"""The gateway's HTTP side: the page, ``/ws``, ``/events``, health and metrics.

Protocol (docs/gateway.md has it in full):

* WebSocket ``/ws``: the client sends ``{"op": "subscribe", "filters": {...}}`` (text,
  at any time, as often as it likes; gateway/subscription.py says what the filters
  mean). The gateway answers ``{"type": "subscribed", "filters": ...}``, then the
  snapshot between ``{"type": "snapshot", "phase": "begin"}`` and ``... "end"}``, then
  live records, each as ``{"topic": ..., "key": ..., "record": {...}}``, once a
  second ``{"type": "venues", ...}``, and, when the gateway reads an Alertmanager,
  ``{"type": "alerts", ...}`` in the snapshot and whenever the firing alerts change.
  A message it cannot take gets ``{"type": "error", "error": ...}`` and the
  connection stays; a binary frame closes it with 1003, a frame over the size limit
  with 1009, a client too slow to keep up with 1013.
* SSE ``/events?types=...&kinds=...&instruments=...``: the same messages, subscribed
  from the query, as ``event: record|venues|snapshot`` lines.

Both first pass gateway/auth.py's checks (Origin; a token or the page's session when
the gateway has a tokens file), answered 403, 429 or 401 before any upgrade or stream,
then the limits on connections: in all (503) and per client (WebSocket close 1013, SSE
503). ``/healthz``, ``/readyz`` and ``/metrics`` stay open for probes and Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from arbstream.gateway.access import Principal, TokenBook
from arbstream.gateway.auth import RequestAuth
from arbstream.gateway.clients import SLOW_CLIENT_CLOSE, Client, Hub, control, drain, envelope
from arbstream.gateway.errors import SubscriptionError
from arbstream.gateway.subscription import Subscription, parse_message, parse_query
from arbstream.streams.market_view import MarketView

log = logging.getLogger(__name__)

#: How long an evicted or closing client's close handshake may take before the
#: connection is dropped.
CLOSE_TIMEOUT_S = 10.0
#: SSE comment lines keep idle connections (and proxies) open.
SSE_KEEPALIVE_S = 15.0
#: The kernel's send buffer of each client connection. Linux grows it to megabytes for a
#: reader that is merely slow; capped, what a client has not read stays in its queue,
#: where the gateway counts it, and a stalled client is found out within one queue.
SOCKET_SEND_BUFFER = 256 * 1024
#: Subscribe messages one client may send per second: each builds a snapshot on the
#: event loop, so a client must not be able to keep the gateway busy with them.
SUBSCRIBES_PER_S = 10
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class GatewayServer:
    """The aiohttp application over a :class:`Hub` and a :class:`MarketView`."""

    def __init__(
        self,
        hub: Hub,
        view: MarketView,
        readiness: Readiness,
        registry: CollectorRegistry,
        max_frame_bytes: int,
        auth: RequestAuth,
        max_per_client: int,
    ) -> None:
        self.hub = hub
        self.view = view
        self.auth = auth
        self._readiness = readiness
        self._registry = registry
        self._max_frame = max_frame_bytes
        self._max_per_client = max_per_client
        self._names = itertools.count(1)
        #: Until the reader has caught up, a subscription's snapshot would be partial:
        #: subscribers wait here for it (they are told "subscribed" at once).
        self.live = False
        self._waiting: dict[Client, Subscription] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._closing = False
        #: The latest ``alerts`` message (gateway/alerts.py); None: no Alertmanager.
        self.alerts_message: bytes | None = None
        self.app = web.Application()
        r = self.app.router
        r.add_get("/", self._static("index.html"))
        for name in STATIC_FILES:
            r.add_get(f"/static/{name}", self._static(name))
        r.add_get("/ws", self.websocket)
        r.add_get("/events", self.events)
        r.add_get("/session", auth.session)
        r.add_post("/session", auth.sign_in)
        r.add_delete("/session", auth.sign_out)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)

    # -- plain endpoints ----------------------------------------------------------------

    def _static(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = resources.files("gateway").joinpath("static", name).read_bytes()
        content_type = STATIC_FILES[name]

        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8")

        return handler

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        ready, body = self._readiness()
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- subscriptions ------------------------------------------------------------------

    def go_live(self) -> None:
        """The reader has caught up: send the waiting subscribers their snapshots."""
        self.live = True
        waiting, self._waiting = self._waiting, {}
        for client, subscription in waiting.items():
            if client in self.hub.clients:  # not gone, not evicted
                self._subscribe(client, subscription)

    def _subscribe(self, client: Client, subscription: Subscription) -> None:
        """Set the client's filter and queue its snapshot in place of what was queued."""
        if not self.live:
            self._waiting[client] = subscription
            client.offer(control("subscribed", filters=subscription.model_dump(), ready=False))
            return
        matcher = subscription.matcher()
        messages = [
            control("subscribed", filters=subscription.model_dump()),
            control("snapshot", phase="begin"),
        ]
        messages += [envelope(e) for e in self.view.snapshot() if matcher(e.record)]
        messages += [
            self.venues_message(),
            control("levels", levels=self.view.levels()),
        ]
        if self.alerts_message is not None:
            messages.append(self.alerts_message)
        messages.append(control("snapshot", phase="end"))
        client.matcher, client.subscribed = matcher, True
        if not client.replace_queue(messages):
            self.hub.evict(client, f"snapshot of {len(messages)} messages exceeds the queue")

    def venues_message(self) -> bytes:
        return control("venues", venues=self.view.venue_status(time.monotonic()))

    def _client(self, request: web.Request, transport: str, principal: Principal) -> Client:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)
        name = f"{principal.name}@{request.remote or '?'}#{next(self._names)}"
        return Client(name, transport, self.hub.queue_size, principal)

    def _admit(self, request: web.Request) -> Principal:
        """Who may come in, and whether the gateway has room for one more (503)."""
        principal = self.auth.admit(request)
        if self.hub.full():
            self.auth.refuse("full", 503, "too many clients")
        return principal

    def _client_full(self, principal: Principal) -> bool:
        """Whether ``principal`` holds its share of connections already (counted)."""
        if self.hub.connections_of(principal) < self._max_per_client:
            return False
        self.auth.refused["client_full"] += 1
        return True

    def reload_tokens(self, book: TokenBook) -> int:
        """A new tokens file (SIGHUP): sessions and connections of removed or changed
        tokens end (WebSocket close 1008); returns how many connections."""
        self.auth.reload(book)
        return len(self.hub.revoke(book.holds))

    # -- WebSocket ----------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        principal = self._admit(request)
        ws = web.WebSocketResponse(
            max_msg_size=self._max_frame, heartbeat=30.0, timeout=CLOSE_TIMEOUT_S
        )
        await ws.prepare(request)
        if self._closing:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")
            return ws
        if self._client_full(principal):
            reason = f"{principal.name} has {self._max_per_client} connections already"
            await ws.close(code=SLOW_CLIENT_CLOSE, message=reason.encode()[:120])
            return ws
        client = self._client(request, "websocket", principal)
        self.hub.add(client)
        self._sockets.add(ws)

        async def write(message: bytes) -> None:
            await ws.send_frame(message, WSMsgType.TEXT)

        writer = asyncio.create_task(drain(client, write, self.hub))
        watcher = asyncio.create_task(self._close_when_evicted(request, ws, client, writer))
        budget = _Budget(SUBSCRIBES_PER_S)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(client, msg.data, budget)
                elif msg.type == WSMsgType.BINARY:
                    await ws.close(
                        code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames are refused"
                    )
                    break
                elif msg.type == WSMsgType.ERROR:
                    break  # aiohttp closed it (1009 for an oversize frame)
                if client.evicted:
                    break
        finally:
            if client.evicted:
                await asyncio.gather(watcher, return_exceptions=True)
            else:
                writer.cancel()
                watcher.cancel()
            self._forget(client)
            self._sockets.discard(ws)
        return ws

    def _forget(self, client: Client) -> None:
        self.hub.remove(client)
        self._waiting.pop(client, None)

    def _on_text(self, client: Client, text: str, budget: _Budget) -> None:
        try:
            subscription = parse_message(text)
            if not budget.take():  # only good ones cost a snapshot
                raise SubscriptionError(
                    f"more than {SUBSCRIBES_PER_S} subscribe messages a second; ignored"
                )
        except SubscriptionError as exc:
            self.hub.send(client, control("error", error=str(exc)))
            return
        self._subscribe(client, subscription)

    async def _close_when_evicted(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        client: Client,
        writer: asyncio.Task[None],
    ) -> None:
        """Close an evicted client with 1013; a client that does not read cannot take
        the close frame: after CLOSE_TIMEOUT_S its connection is dropped."""
        await client.gone.wait()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        reason = (client.evicted or "evicted").encode()[:120]
        try:
            closing = ws.close(code=client.close_code, message=reason)
            await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            if request.transport is not None:
                request.transport.abort()

    async def close_all(self) -> None:
        """Tell every client the gateway is going away (1001) and end SSE streams."""
        self._closing = True
        for client in list(self.hub.clients):
            if client.transport == "sse":
                client.gone.set()
        closing = [
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")
            for ws in self._sockets
        ]
        if closing:
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True), CLOSE_TIMEOUT_S
            )

    # -- Server-Sent Events -------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        principal = self._admit(request)
        try:
            subscription = parse_query(dict(request.query))
        except SubscriptionError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        if self._client_full(principal):
            raise web.HTTPServiceUnavailable(
                text=f"{principal.name} has {self._max_per_client} connections already\n"
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        client = self._client(request, "sse", principal)
        self.hub.add(client)
        self._subscribe(client, subscription)

        async def write(message: bytes) -> None:
            await response.write(_sse_event(message))

        writer = asyncio.create_task(drain(client, write, self.hub))
        gone = asyncio.create_task(client.gone.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {writer, gone}, timeout=SSE_KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    break
                await response.write(b": keep-alive\n\n")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.cancel()
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer  # its error (the client went away) is expected: retrieved here
            self._forget(client)
        if client.evicted and request.transport is not None:
            # a reader that does not read cannot take the end of the stream either
            request.transport.abort()
        return response


class _Budget:
    """At most ``per_s`` takes in any one-second window (a token bucket)."""

    def __init__(self, per_s: int) -> None:
        self._per_s = float(per_s)
        self._tokens = float(per_s)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._per_s, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def _sse_event(message: bytes) -> bytes:
    """One SSE event. A data line ends at a line break: a record whose raw JSON has one
    (legal JSON whitespace) is written again on one line."""
    if b"\n" in message or b"\r" in message:
        message = orjson.dumps(orjson.loads(message))
    event = b"record" if message.startswith(b'{"topic"') else _control_type(message)
    return b"event: " + event + b"\ndata: " + message + b"\n\n"


def _control_type(message: bytes) -> bytes:
    """The ``type`` of a control message, cheaply (they start ``{"type":"<name>"``)."""
    start = message.find(b'"type":"') + 8
    return message[start : message.find(b'"', start)]
