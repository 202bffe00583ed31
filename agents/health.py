"""``/healthz``, ``/readyz`` and ``/metrics`` for every long-running arbstream process
(worker, feeds).

``/healthz`` answers while the process is up. ``/readyz`` answers 200 or 503 with the
JSON body the process's ``readiness`` callback gives, so each process decides what
"ready" means (worker: partitions loaded; feeds: every feed connected). ``/metrics``
serves the process's Prometheus registry in the text format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.registry import Collector

#: One log format for every arbstream process, so their logs read alike side by side.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


def configure_logging(loglevel: str) -> None:
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)


def process_registry(collector: Collector) -> CollectorRegistry:
    """A registry with the process's own collector and prometheus-client's process,
    platform and GC collectors (``process_*``, ``python_*``)."""
    registry = CollectorRegistry()
    for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, collector):
        registry.register(c)
    return registry


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
