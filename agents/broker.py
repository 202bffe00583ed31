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

from agents.errors import AgentError
from streams.errors import SetupError

#: How long one address may take to accept a connection.
PROBE_TIMEOUT_S = 1.0
#: The same, when a command starts (a slow network is not yet a missing broker).
STARTUP_PROBE_TIMEOUT_S = 5.0


class BrokerUnreachableError(AgentError):
    """No bootstrap address accepts a TCP connection."""


async def broker_reachable(bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when any of ``bootstrap``'s ``host:port`` addresses accepts a connection."""
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
        return True
    return False


async def require_broker(bootstrap: str) -> None:
    """Raise SetupError, naming the address, unless the broker answers: a command checks
    this before it creates or reads anything (and before aiokafka logs its own errors)."""
    if not await broker_reachable(bootstrap, STARTUP_PROBE_TIMEOUT_S):
        raise SetupError(f"ARBSTREAM_BROKER: no Kafka broker answers at {bootstrap}")
