"""What the command line's commands share: the exit status of a command that cannot
start, the one line that says why, the config loaded before anything else, and the
options several commands take."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from arbstream.config import Config, load_config
from arbstream.streams.errors import ArbstreamError, ConfigError, SetupError

#: Exit status for a config, or an environment, that cannot be used.
EXIT_CONFIG = 2

POSITIVE = click.FloatRange(min=0, min_open=True)
#: The log level option of the long-running commands.
LOGLEVEL = click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)


def exit_with(exc: ArbstreamError, status: int | None = None) -> NoReturn:
    """One line on stderr and the exit status: ``status``, or by the error's class (2 for
    a config or an environment that cannot run the command, 1 for a failure while
    running)."""
    if status is None:
        status = EXIT_CONFIG if isinstance(exc, (ConfigError, SetupError)) else 1
    click.echo(f"arbstream: {exc}", err=True)
    sys.exit(status)


def load_config_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)


#: The worker's runtimes (docs/guarantees.md).
RUNTIME = click.option(
    "--runtime",
    type=click.Choice(["default", "faust"]),
    default="default",
    show_default=True,
    help="default: aiokafka, exactly once or at least once (--guarantee). faust: Faust "
    "agents, at least once with duplicates identifiable by seq (docs/guarantees.md).",
)
#: The default runtime's guarantee (docs/guarantees.md).
GUARANTEE = click.option(
    "--guarantee",
    type=click.Choice(["exactly-once", "at-least-once"]),
    default=None,
    help="exactly-once: one Kafka transaction per batch (readers use read_committed). "
    "at-least-once: no transactions, the lowest latency; after a crash, duplicates "
    "identifiable by (key, seq). Default: the config's [worker] guarantee, else "
    "exactly-once.",
)
