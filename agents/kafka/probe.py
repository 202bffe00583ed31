"""Is the broker there? A TCP probe of the bootstrap addresses.

aiokafka's clients retry a broker that is away on their own, some of them without any
pause (its producer's sender refreshes metadata in a loop while a partition has no known
leader, thousands of times a second). A process that knows the broker is away can
instead close its clients, wait with its own capped, jittered backoff, and open new ones
once the port answers. A TCP connect is the cheapest honest question: it costs one
round trip and logs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arbstream.agents.errors import AgentError

log = logging.getLogger(__name__)

#: How long a client may take to close (leave its group, flush) before it is dropped.
CLOSE_TIMEOUT_S = 5.0
#: How long one address may take to accept a connection.
PROBE_TIMEOUT_S = 1.0
#: The same, when a command starts (a slow network is not yet a missing broker;
#: agents.kafka.access.require_broker).
STARTUP_PROBE_TIMEOUT_S = 5.0


class BrokerUnreachableError(AgentError):
    """No bootstrap address accepts a TCP connection."""


async def broker_reachable(bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when any of ``bootstrap``'s ``host:port`` addresses accepts a connection."""
    return await reachable_address(bootstrap, timeout_s) is not None


async def reachable_address(
    bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S
) -> tuple[str, int] | None:
    """The first of ``bootstrap``'s ``host:port`` addresses that accepts a connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
            )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return host.strip("[]"), int(port)
    return None


class BrokerWatch:
    """Whether the broker answers now, for a process's readiness: ``run`` asks every
    ``every_s`` and says once when the broker stops answering and once when it answers
    again (the clients' own repeated errors are rate limited: arbstream.process)."""

    def __init__(self, bootstrap: str, every_s: float) -> None:
        self.bootstrap = bootstrap
        self.every_s = every_s
        self.answers = True

    async def run(self) -> None:
        """Until cancelled."""
        lost_at = 0.0
        while True:
            await asyncio.sleep(self.every_s)
            answers = await broker_reachable(self.bootstrap)
            if answers == self.answers:
                continue
            self.answers = answers
            if answers:
                log.info("broker answers again after %.0f s", time.monotonic() - lost_at)
            else:
                lost_at = time.monotonic()
                log.warning("broker at %s does not answer: not ready until it does", self.bootstrap)


async def close_quietly(client: Any, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Stop an aiokafka client within ``timeout_s`` whatever the broker does.

    With the broker gone, a consumer's ``stop`` raises the CancelledError of its own
    fetch tasks (aiokafka cancels them, then awaits them): that is not a cancellation of
    the caller, so it is swallowed here, unless the caller is being cancelled too."""
    try:
        await asyncio.wait_for(client.stop(), timeout_s)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("%s stopped with its own tasks cancelled", type(client).__name__)
    except Exception as exc:  # a broken connection has nothing left to close
        log.debug("%s stop: %r", type(client).__name__, exc)
