"""``/healthz``, ``/readyz`` and ``/metrics`` for every long-running arbstream process
(worker, feeds).

``/healthz`` answers while the process is up. ``/readyz`` answers 200 or 503 with the
JSON body the process's ``readiness`` callback gives, so each process decides what
"ready" means (worker: partitions loaded; feeds: every feed connected). ``/metrics``
serves the process's Prometheus registry in the text format.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)

from arbstream.streams.errors import SetupError

#: One log format for every arbstream process, so their logs read alike side by side.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


#: Loggers of arbstream's own packages; their INFO lines are never rate limited.
OWN_LOGGERS = ("agents", "feeds", "streams", "arbstream")


#: The most message kinds RepeatFilter keeps track of at once.
MAX_KINDS = 1000


class RepeatFilter(logging.Filter):
    """At most ``burst`` records of one kind in ``window_s`` seconds; the rest are counted.

    A kind is (logger, level, message template). It applies to warnings and errors, and to
    every record of other libraries' loggers: while the broker is away aiokafka logs the
    same connection error many times a second. The first record of a kind after its
    window has closed says how many of that kind were suppressed during it.
    """

    def __init__(
        self,
        burst: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        #: kind -> [window start, records passed, records suppressed]
        self._kinds: dict[tuple[str, int, object], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.startswith(OWN_LOGGERS):
            return True
        kind = (record.name, record.levelno, record.msg)
        now = self._clock()
        if len(self._kinds) >= MAX_KINDS and kind not in self._kinds:
            # Messages formatted before logging make every line a kind of its own: forget
            # the windows that have closed, so the table stays bounded.
            self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self._window_s}
            if len(self._kinds) >= MAX_KINDS:
                return True  # too many kinds at once to tell repeats apart
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= self._window_s:
            suppressed = 0 if state is None else int(state[2])
            state = self._kinds[kind] = [now, 0, 0]
            if suppressed:
                record.msg = (
                    f"{record.getMessage()} ({suppressed} more like this suppressed in the "
                    f"previous {self._window_s:.0f} s)"
                )
                record.args = None
        if state[1] < self._burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


def configure_logging(loglevel: str, path: Path | None = None) -> None:
    """One format for every process, to stderr or the file ``path``, and repeated lines
    rate limited (RepeatFilter)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT, filename=path)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
    # aiokafka says "Authenticated as ..." at INFO for every connection it opens
    logging.getLogger("aiokafka.conn").setLevel(max(logging.WARNING, logging.root.level))


def require_free_port(host: str, port: int, variable: str) -> None:
    """Raise SetupError, naming ``variable``, when host:port cannot be listened on: checked
    before the command touches Kafka, so a taken port creates nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp listens
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SetupError(
                f"{variable}={port}: cannot listen on {host}:{port}: {exc.strerror}"
            ) from None


async def serve_health(
    host: str, port: int, readiness: Readiness, registry: CollectorRegistry
) -> web.AppRunner:
    """Start the endpoints on host:port; ``cleanup()`` the returned runner to stop."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = readiness()
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        # Collected on the event loop: no other task runs meanwhile, so the collectors
        # read the engines without locks (a batch may be awaiting its commit, and its
        # gauges may show work that is then aborted and redone).
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
