"""The ``arbstream`` command line (contracts.md §7, §8)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, NoReturn

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agents.produce import produce_lines
from agents.settings import broker_bootstrap, feed_metrics_port, web_port
from agents.topics import ensure_topics
from agents.worker import WorkerSettings, run_worker
from arbstream import __version__
from arbstream.replay import replay as run_replay
from feeds.runner import run_feeds, select_feeds
from streams.config import Config, load_config
from streams.engine import Engine
from streams.errors import ArbstreamError

#: Exit status for a config that cannot be used.
EXIT_CONFIG = 2


def _exit(exc: ArbstreamError, status: int) -> NoReturn:
    click.echo(f"arbstream: {exc}", err=True)
    sys.exit(status)


def _load_config_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="arbstream")
def main() -> None:
    """Cross-venue spread and arbitrage monitor on Kafka."""


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--output", "-o", "output_path", type=click.Path(dir_okay=False, writable=True), default=None
)
def replay(input_path: str, config_path: str, output_path: str | None) -> None:
    """Replay INPUT (JSONL, '-' for stdin) through the engine; write outputs as JSONL."""
    config = _load_config_or_exit(config_path)  # before any input is read
    engine = Engine(config)
    with ExitStack() as stack:
        if input_path == "-":
            lines: BinaryIO = sys.stdin.buffer
            total = None
        else:
            try:
                lines = stack.enter_context(open(input_path, "rb"))
            except OSError as exc:
                raise click.FileError(input_path, exc.strerror) from None
            total = os.fstat(lines.fileno()).st_size if Path(input_path).is_file() else None
        if output_path is None or output_path == "-":
            out: BinaryIO = sys.stdout.buffer
        else:
            out = stack.enter_context(open(output_path, "wb"))
        progress = None
        if total is not None and sys.stderr.isatty():
            progress = stack.enter_context(_progress_bar(total, input_path))
        summary = run_replay(lines, engine, out, progress)
    click.echo(summary.line(), err=True)


@main.command()
@click.argument("file_path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
def produce(file_path: str, config_path: str) -> None:
    """Write FILE (JSONL input records) to Kafka: quotes keyed by instrument, fx to every
    ticks partition and to the fx topic. The broker comes from ARBSTREAM_BROKER."""
    config = _load_config_or_exit(config_path)
    try:
        bootstrap = broker_bootstrap()
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)

    async def run(progress: Callable[[int], None] | None) -> Counter[str]:
        topics = await ensure_topics(bootstrap, config)
        with open(file_path, "rb") as lines:
            return await produce_lines(lines, topics, bootstrap, progress)

    with ExitStack() as stack:
        progress = None
        if sys.stderr.isatty():
            size = Path(file_path).stat().st_size
            progress = stack.enter_context(_progress_bar(size, file_path, "produce"))
        try:
            counts = asyncio.run(run(progress))
        except ArbstreamError as exc:
            _exit(exc, 1)
    click.echo(
        f"produce: {counts['quote']} quotes, {counts['fx']} fx, {counts['other']} other "
        f"to {config.topic_prefix}.ticks",
        err=True,
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(config_path: str, loglevel: str) -> None:
    """Run a stream worker: the engine on the ticks topic, outputs to the spreads, signals
    and dlq topics, exactly once. Broker from ARBSTREAM_BROKER, web and metrics port from
    ARBSTREAM_WEB_PORT. Start more workers with the same config to scale out."""
    config = _load_config_or_exit(config_path)
    try:
        settings = WorkerSettings(bootstrap=broker_bootstrap(), web_port=web_port())
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        run_worker(config, settings, loglevel)
    except ArbstreamError as exc:
        _exit(exc, 1)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this feed (repeatable); default: every [feeds.NAME] of the config.",
)
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def feed(config_path: str, only: tuple[str, ...], loglevel: str) -> None:
    """Run the configured venue feeds: WebSocket quotes and fx into the ticks topic (fx
    also to the fx topic). Broker from ARBSTREAM_BROKER; /healthz and /readyz on
    ARBSTREAM_FEED_METRICS_PORT (default 9464). API keys come from the environment
    variables the config names."""
    config = _load_config_or_exit(config_path)
    try:
        feeds = select_feeds(config, only)
        bootstrap = broker_bootstrap()
        port = feed_metrics_port()
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        run_feeds(config, bootstrap, feeds, port, loglevel)
    except ArbstreamError as exc:
        _exit(exc, 1)


class _progress_bar:  # noqa: N801 - used as a context manager, reads like a function
    """A rich progress bar over the input's bytes, on stderr."""

    def __init__(self, total: int, name: str, verb: str = "replay") -> None:
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(f"{verb} {Path(name).name}", total=total)

    def __enter__(self) -> _progress_bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, n: int) -> None:
        self._progress.advance(self._task, n)


if __name__ == "__main__":
    main()
