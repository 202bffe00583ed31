"""The ``arbstream`` command line (docs/cli.md)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from arbstream import __version__, streams
from arbstream.cli_live import demo, gateway, simulate
from arbstream.commands import (
    EXIT_CONFIG,
    GUARANTEE,
    LOGLEVEL,
    RUNTIME,
    exit_with,
    load_config_or_exit,
)
from arbstream.streams.errors import ArbstreamError, ConfigError

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

# Each command imports the layers it runs when it runs (PLC0415 is off for this file):
# `arbstream replay` needs the engine, not Kafka, aiohttp or the simulator, and their
# imports cost more CPU than replaying 100,000 ticks.


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="arbstream")
def main() -> None:
    """Cross-venue spread and arbitrage monitor on Kafka."""
    implementation = streams.IMPLEMENTATION
    if not implementation.compiled:
        click.echo(
            "arbstream: the engine runs from its Python sources, about half as fast as "
            f"compiled ({implementation.reason})",
            err=True,
        )


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--output", "-o", "output_path", type=click.Path(dir_okay=False, writable=True), default=None
)
def replay(input_path: str, config_path: str, output_path: str | None) -> None:
    """Replay INPUT (JSONL, '-' for stdin) through the engine; write outputs as JSONL."""
    from arbstream.replay import ProgressBar
    from arbstream.replay import replay as run_replay
    from arbstream.streams.engine import Engine

    config = load_config_or_exit(config_path)  # before any input is read
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
            progress = stack.enter_context(ProgressBar(total, input_path))
        summary = run_replay(lines, engine, out, progress)
    click.echo(summary.line(), err=True)
    # Done: the output is closed and the summary written. Exit here, without freeing the
    # engine, whose windows hold up to 300 s of samples per pair: Python frees them one
    # object at a time, which costs about 6% of replaying 300,000 ticks.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.command()
@click.argument("file_path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
def produce(file_path: str, config_path: str) -> None:
    """Write FILE (JSONL input records) to Kafka: quotes keyed by instrument, fx to every
    ticks partition and to the fx topic. The broker comes from ARBSTREAM_BROKER."""
    import asyncio

    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.agents.kafka.roles import feed_rights
    from arbstream.agents.kafka.topics import Topics, prepare
    from arbstream.agents.produce import produce_lines
    from arbstream.replay import ProgressBar

    config = load_config_or_exit(config_path)
    try:
        kafka = kafka_clients()
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)

    async def run(progress: Callable[[int], None] | None) -> Counter[str]:
        topics = Topics(config.topic_prefix)
        await prepare(kafka, config, feed_rights(topics), runtime=None)
        with open(file_path, "rb") as lines:
            return await produce_lines(lines, topics, kafka, progress)

    with ExitStack() as stack:
        progress = None
        if sys.stderr.isatty():
            size = Path(file_path).stat().st_size
            progress = stack.enter_context(ProgressBar(size, file_path, "produce"))
        try:
            counts = asyncio.run(run(progress))
        except ArbstreamError as exc:
            exit_with(exc)
    click.echo(
        f"produce: {counts['quote']} quotes, {counts['fx']} fx, {counts['stock']} stock, "
        f"{counts['status']} status, {counts['other']} other "
        f"to {config.topic_prefix}.ticks",
        err=True,
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@RUNTIME
def topics(config_path: str, runtime: str) -> None:
    """Create the config's topics (ticks, fx, spreads, basis, signals, dlq, and the
    runtime's state topics) where missing, print each with its partition count, and exit.
    Workers do this too when they start; a deployment runs it once first, as an admin,
    so that its processes need no right to create topics (docs/deploy.md). Broker from
    ARBSTREAM_BROKER, credentials from ARBSTREAM_KAFKA_*."""
    import asyncio

    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.agents.kafka.topics import prepare

    config = load_config_or_exit(config_path)
    try:
        kafka = kafka_clients()
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    try:
        counts = asyncio.run(prepare(kafka, config, runtime=runtime))
    except ArbstreamError as exc:
        exit_with(exc)
    for name, partitions in sorted(counts.items()):
        click.echo(f"{name}\t{partitions}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@RUNTIME
@GUARANTEE
@LOGLEVEL
def worker(config_path: str, runtime: str, guarantee: str | None, loglevel: str) -> None:
    """Run a stream worker: the engine on the ticks topic, outputs to the spreads, signals
    and dlq topics. Broker from ARBSTREAM_BROKER, web and metrics port from
    ARBSTREAM_WEB_PORT. Start more workers with the same config to scale out."""
    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.agents.settings import WorkerSettings, web_port

    config = load_config_or_exit(config_path)
    if runtime == "faust" and guarantee == "exactly-once":
        exit_with(
            ConfigError("--guarantee exactly-once: the Faust runtime is at least once"),
            EXIT_CONFIG,
        )
    chosen = config.worker.guarantee if guarantee is None else guarantee
    try:
        settings = WorkerSettings(
            kafka=kafka_clients(),
            web_port=web_port(),
            guarantee="at-least-once" if chosen == "at-least-once" else "exactly-once",
        )
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    try:
        if runtime == "faust":
            from arbstream.faust_process import run_faust_worker

            run_faust_worker(config, settings, loglevel)
        else:
            from arbstream.worker_process import run_worker

            run_worker(config, settings, loglevel)
    except ArbstreamError as exc:
        exit_with(exc)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this feed (repeatable); default: every [feeds.NAME] of the config.",
)
@LOGLEVEL
def feed(config_path: str, only: tuple[str, ...], loglevel: str) -> None:
    """Run the configured venue feeds: WebSocket quotes and fx into the ticks topic (fx
    also to the fx topic). Broker from ARBSTREAM_BROKER; /healthz and /readyz on
    ARBSTREAM_FEED_METRICS_PORT (default 9464). API keys come from the environment
    variables the config names."""
    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.agents.settings import feed_metrics_port
    from arbstream.feed_process import run_feeds, select_feeds

    config = load_config_or_exit(config_path)
    try:
        feeds = select_feeds(config, only)
        kafka = kafka_clients()
        port = feed_metrics_port()
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    try:
        run_feeds(config, kafka, feeds, port, loglevel)
    except ArbstreamError as exc:
        exit_with(exc)


main.add_command(gateway)
main.add_command(simulate)
main.add_command(demo)


if __name__ == "__main__":
    main()
