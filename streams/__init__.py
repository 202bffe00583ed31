"""arbstream's pure core: records, validation, config, normalisation, windows, engine.

Nothing in this package does I/O, imports Kafka or Faust, or touches asyncio: the
same :class:`streams.engine.Engine` serves the Faust agents and ``arbstream replay``.
"""

from streams.config import Config, load_config
from streams.engine import Engine
from streams.errors import ArbstreamError, ConfigError, StateError

__all__ = ["ArbstreamError", "Config", "ConfigError", "Engine", "StateError", "load_config"]
