"""arbstream's pure core: records, validation, the engine's settings, normalisation,
windows, signals, the engine and its state.

Nothing in this package does I/O, imports Kafka, or touches asyncio or the network
(but for ``streams._native``, which picks the compiled or the source modules once, at
import): the same :class:`streams.engine.Engine` serves every worker partition and
``arbstream replay``, so the streaming and the offline paths cannot drift apart.
"""

from arbstream.streams._native import select

#: Whether the engine runs compiled (mypyc) or from its Python sources, and why.
IMPLEMENTATION = select()

from arbstream.streams.config import EngineConfig  # noqa: E402  (after the choice above)
from arbstream.streams.engine import Engine  # noqa: E402
from arbstream.streams.errors import ArbstreamError, ConfigError, SetupError, StateError  # noqa: E402

__all__ = [
    "IMPLEMENTATION",
    "ArbstreamError",
    "ConfigError",
    "Engine",
    "EngineConfig",
    "SetupError",
    "StateError",
]
