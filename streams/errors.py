"""The project's exception tree. Every package raises subclasses of ArbstreamError.

    ArbstreamError
    ├── ConfigError        a config file that cannot be used (names the key)
    ├── StateError         an engine snapshot that cannot be restored
    ├── SetupError         the environment cannot run the command: no broker answers, a
    │                      port is taken, the topics do not fit (exit status 2, like
    │                      ConfigError, before the command touches any data)
    ├── agents.errors.AgentError   (Kafka side)
    └── feeds.errors.FeedError     (venue adapters)

Bad *input records* are not exceptions: they become ``rejected`` output records.
"""


class ArbstreamError(Exception):
    """Root of every error arbstream raises on purpose."""


class ConfigError(ArbstreamError):
    """The configuration is invalid; the message names the offending key."""


class StateError(ArbstreamError):
    """An engine snapshot is malformed or was taken under a different config."""


class SetupError(ArbstreamError):
    """The environment cannot run the command (broker, port, topics); says which."""
