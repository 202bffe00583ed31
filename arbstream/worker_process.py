"""``arbstream worker``: one worker process: the Kafka worker (agents.worker), its web
endpoints, its logging, and how it stops.

SIGINT or SIGTERM asks the worker to stop: every partition finishes (or, when the broker
is away, leaves open) its batch in flight, and the process exits. If a shutdown still
waits on Kafka after ``SHUTDOWN_TIMEOUT_S`` the process ends anyway, as a SIGKILL would:
nothing is lost, the committed state is where the partition's next owner resumes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

from arbstream.agents.kafka.guarantees import check_guarantees
from arbstream.agents.kafka.roles import worker_rights
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.agents.settings import Deployment, WorkerSettings
from arbstream.agents.worker import Worker
from arbstream.process import (
    configure_logging,
    require_free_port,
    serve_health,
)

log = logging.getLogger(__name__)

#: A worker told to stop exits within this, finished or not (status EXIT_SHUTDOWN_TIMEOUT).
SHUTDOWN_TIMEOUT_S = 15.0
EXIT_SHUTDOWN_TIMEOUT = 1


async def serve(config: Deployment, settings: WorkerSettings) -> None:
    """Run a worker until SIGINT/SIGTERM."""
    require_free_port(settings.web_host, settings.web_port, "ARBSTREAM_WEB_PORT")
    rights = worker_rights(Topics(config.topic_prefix))
    counts = await prepare(settings.kafka, config, rights)
    await check_guarantees(settings.kafka, config)
    worker = Worker(config, settings, counts)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        worker.stop()
        # The last resort: a shutdown that is still waiting on Kafka (aiokafka's clients
        # can, when the broker has gone mid-request) ends the process. Nothing is lost:
        # it is what a SIGKILL does, and the committed state is where the next worker
        # resumes.
        deadline = threading.Timer(SHUTDOWN_TIMEOUT_S, _exit_now)
        deadline.daemon = True
        deadline.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    def readiness() -> tuple[bool, dict[str, object]]:
        body = {"ready": worker.serving, "partitions": sorted(worker.processors)}
        return worker.serving, body

    runner = await serve_health(
        settings.web_host, settings.web_port, readiness, worker.metrics.registry
    )
    started = time.monotonic()
    try:
        await worker.run()
    finally:
        await runner.cleanup()
        log.info(
            "worker stopped: %d records in %.1f s", worker.processed, time.monotonic() - started
        )


def _exit_now() -> None:
    log.error(
        "shutdown did not finish within %.0f s; exiting without it (uncommitted work is "
        "redone by the partition's next owner)",
        SHUTDOWN_TIMEOUT_S,
    )
    logging.shutdown()
    os._exit(EXIT_SHUTDOWN_TIMEOUT)


def run_worker(config: Deployment, settings: WorkerSettings, loglevel: str = "info") -> None:
    """Run a worker until it is stopped (SIGINT/SIGTERM)."""
    configure_logging(loglevel)
    asyncio.run(serve(config, settings))
