"""arbstream's pure core: records, validation, the engine's settings, normalisation,
windows, signals, the engine and its state.

Nothing in this package does I/O, imports Kafka, or touches asyncio or the network: the
same :class:`streams.engine.Engine` serves every worker partition and ``arbstream
replay``, so the streaming and the offline paths cannot drift apart.
"""

from streams.config import EngineConfig
from streams.engine import Engine
from streams.errors import ArbstreamError, ConfigError, SetupError, StateError

__all__ = ["ArbstreamError", "ConfigError", "Engine", "EngineConfig", "SetupError", "StateError"]
