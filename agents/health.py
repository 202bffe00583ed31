"""``/healthz`` and ``/readyz`` for every long-running arbstream process (worker, feeds).

``/healthz`` answers while the process is up. ``/readyz`` answers 200 or 503 with the
JSON body the process's ``readiness`` callback gives, so each process decides what
"ready" means (worker: partitions loaded; feeds: every feed connected).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

#: One log format for every arbstream process, so their logs read alike side by side.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


def configure_logging(loglevel: str) -> None:
    logging.basicConfig(level=loglevel.upper(), format=LOG_FORMAT)


async def serve_health(host: str, port: int, readiness: Readiness) -> web.AppRunner:
    """Start the endpoints on host:port; ``cleanup()`` the returned runner to stop."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready, body = readiness()
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
