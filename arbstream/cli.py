"""The ``arbstream`` command line (docs/cli.md)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import click

import streams
from arbstream import __version__
from arbstream.config import Config, load_config
from streams.errors import ArbstreamError, ConfigError, SetupError

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

# Each command imports the layers it runs when it runs (PLC0415 is off for this file):
# `arbstream replay` needs the engine, not Kafka, aiohttp or the simulator, and their
# imports cost more CPU than replaying 100,000 ticks.

#: Exit status for a config, or an environment, that cannot be used.
EXIT_CONFIG = 2

_POSITIVE = click.FloatRange(min=0, min_open=True)
#: The log level option of the long-running commands.
_LOGLEVEL = click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)


def _exit(exc: ArbstreamError, status: int | None = None) -> NoReturn:
    """One line on stderr and the exit status: ``status``, or by the error's class (2 for
    a config or an environment that cannot run the command, 1 for a failure while
    running)."""
    if status is None:
        status = EXIT_CONFIG if isinstance(exc, (ConfigError, SetupError)) else 1
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
    from streams.engine import Engine

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

    from agents.kafka.clients import kafka_clients
    from agents.kafka.roles import feed_rights
    from agents.kafka.topics import Topics, prepare
    from agents.produce import produce_lines
    from arbstream.replay import ProgressBar

    config = _load_config_or_exit(config_path)
    try:
        kafka = kafka_clients()
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)

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
            _exit(exc)
    click.echo(
        f"produce: {counts['quote']} quotes, {counts['fx']} fx, {counts['stock']} stock, "
        f"{counts['other']} other "
        f"to {config.topic_prefix}.ticks",
        err=True,
    )


#: The worker's runtimes (docs/guarantees.md).
_RUNTIME = click.option(
    "--runtime",
    type=click.Choice(["default", "faust"]),
    default="default",
    show_default=True,
    help="default: aiokafka transactions, exactly once. faust: Faust agents, at least "
    "once with duplicates identifiable by seq (docs/guarantees.md).",
)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@_RUNTIME
def topics(config_path: str, runtime: str) -> None:
    """Create the config's topics (ticks, fx, spreads, basis, signals, dlq, and the
    runtime's state topics) where missing, print each with its partition count, and exit.
    Workers do this too when they start; a deployment runs it once first, as an admin,
    so that its processes need no right to create topics (docs/deploy.md). Broker from
    ARBSTREAM_BROKER, credentials from ARBSTREAM_KAFKA_*."""
    import asyncio

    from agents.kafka.clients import kafka_clients
    from agents.kafka.topics import prepare

    config = _load_config_or_exit(config_path)
    try:
        kafka = kafka_clients()
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        counts = asyncio.run(prepare(kafka, config, runtime=runtime))
    except ArbstreamError as exc:
        _exit(exc)
    for name, partitions in sorted(counts.items()):
        click.echo(f"{name}\t{partitions}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@_RUNTIME
@_LOGLEVEL
def worker(config_path: str, runtime: str, loglevel: str) -> None:
    """Run a stream worker: the engine on the ticks topic, outputs to the spreads, signals
    and dlq topics. Broker from ARBSTREAM_BROKER, web and metrics port from
    ARBSTREAM_WEB_PORT. Start more workers with the same config to scale out."""
    from agents.kafka.clients import kafka_clients
    from agents.settings import web_port
    from agents.worker import WorkerSettings

    config = _load_config_or_exit(config_path)
    try:
        settings = WorkerSettings(kafka=kafka_clients(), web_port=web_port())
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        if runtime == "faust":
            from arbstream.faust_process import run_faust_worker

            run_faust_worker(config, settings, loglevel)
        else:
            from arbstream.worker_process import run_worker

            run_worker(config, settings, loglevel)
    except ArbstreamError as exc:
        _exit(exc)


@main.group(invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@_LOGLEVEL
@click.pass_context
def gateway(ctx: click.Context, config_path: str | None, loglevel: str) -> None:
    """Serve the committed outputs to subscribers outside Kafka: WebSocket /ws and
    Server-Sent Events /events with per-client filters, a live web page at /, and
    /healthz, /readyz, /metrics. Broker from ARBSTREAM_BROKER; port from
    ARBSTREAM_GATEWAY_PORT (default 8080), on 127.0.0.1 unless ARBSTREAM_GATEWAY_HOST
    says otherwise (another address needs ARBSTREAM_GATEWAY_TOKENS_FILE).
    docs/gateway.md has the protocol and its security."""
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("Missing option '--config'.")
    from agents.kafka.clients import kafka_clients
    from arbstream.gateway_process import run_gateway
    from gateway.settings import gateway_settings

    config = _load_config_or_exit(config_path)
    try:
        settings = gateway_settings(kafka_clients())
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        run_gateway(config, settings, loglevel)
    except ArbstreamError as exc:
        _exit(exc)


@gateway.command("token")
@click.argument("name")
def gateway_token(name: str) -> None:
    """Make a token for client NAME: prints the token (give it to the client: it is not
    kept anywhere) and the line to add to ARBSTREAM_GATEWAY_TOKENS_FILE (the token's
    SHA-256, no secret); then send the gateway SIGHUP."""
    from gateway.access import new_token

    try:
        token, line = new_token(name)
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    click.echo(f"token: {token}")
    click.echo(f"line:  {line}")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this feed (repeatable); default: every [feeds.NAME] of the config.",
)
@_LOGLEVEL
def feed(config_path: str, only: tuple[str, ...], loglevel: str) -> None:
    """Run the configured venue feeds: WebSocket quotes and fx into the ticks topic (fx
    also to the fx topic). Broker from ARBSTREAM_BROKER; /healthz and /readyz on
    ARBSTREAM_FEED_METRICS_PORT (default 9464). API keys come from the environment
    variables the config names."""
    from agents.kafka.clients import kafka_clients
    from agents.settings import feed_metrics_port
    from arbstream.feed_process import run_feeds, select_feeds

    config = _load_config_or_exit(config_path)
    try:
        feeds = select_feeds(config, only)
        kafka = kafka_clients()
        port = feed_metrics_port()
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        run_feeds(config, kafka, feeds, port, loglevel)
    except ArbstreamError as exc:
        _exit(exc)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="JSONL input records to serve (default: the generated endless scenario).",
)
@click.option(
    "--speed",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    help="Event time runs this many times faster than wall time.",
)
@click.option("--loop", is_flag=True, help="Serve the scenario again and again, time moving on.")
@click.option("--seed", type=int, default=1, show_default=True, help="Of the generated scenario.")
@click.option(
    "--drop-every",
    type=_POSITIVE,
    default=None,
    metavar="S",
    help="Fault: abort every client connection every S seconds.",
)
@click.option(
    "--stall-every",
    type=_POSITIVE,
    default=None,
    metavar="S",
    help="Fault: every S seconds send nothing for --stall-for seconds.",
)
@click.option("--stall-for", type=_POSITIVE, default=None, metavar="S")
@click.option(
    "--bad-every",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Fault: after every N-th frame also send a garbled one.",
)
@click.option(
    "--wait-for-clients",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="S",
    help="Hold the clock until every feed has a subscribed client, at most S s.",
)
@_LOGLEVEL
def simulate(
    config_path: str,
    scenario: str | None,
    speed: float,
    loop: bool,
    seed: int,
    drop_every: float | None,
    stall_every: float | None,
    stall_for: float | None,
    bad_every: int | None,
    wait_for_clients: float,
    loglevel: str,
) -> None:
    """Serve a scenario's venues on local WebSockets, each in the protocol its feed is
    configured with (the url's host and port), paced by event time."""
    from arbstream.process import configure_logging
    from simulator.server import SimulatorSettings, run_simulator

    config = _load_config_or_exit(config_path)
    try:
        settings = SimulatorSettings(
            speed=speed,
            loop=loop,
            drop_every_s=drop_every,
            stall_every_s=stall_every,
            stall_for_s=stall_for,
            bad_every=bad_every,
            wait_for_clients_s=wait_for_clients,
            seed=seed,
        )
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    try:
        configure_logging(loglevel)
        run_simulator(config, None if scenario is None else Path(scenario), settings)
    except ArbstreamError as exc:
        _exit(exc)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="JSONL input records to serve, looping; default: the generated endless scenario.",
)
@click.option(
    "--speed", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this long and print the summary (default: until Ctrl-C).",
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the summary here as JSON.",
)
@click.option("--log-dir", type=click.Path(file_okay=False), default="out/demo", show_default=True)
def demo(
    config_path: str,
    scenario: str | None,
    speed: float,
    seconds: float | None,
    summary_path: str | None,
    log_dir: str,
) -> None:
    """The live system on one machine: simulator, feeds, a worker and the gateway on the
    broker of ARBSTREAM_BROKER, with a terminal view of spreads, open routes and venues,
    and the web page on ARBSTREAM_GATEWAY_PORT (default 8080)."""
    from agents.kafka.clients import kafka_clients
    from agents.settings import feed_metrics_port, web_port
    from arbstream.demo import DemoSettings, child_env, run_demo
    from arbstream.feed_process import select_feeds
    from gateway.settings import gateway_settings

    config = _load_config_or_exit(config_path)
    try:
        kafka = kafka_clients()
        web_port()  # the children read these: fail here, naming the variable
        feed_metrics_port()
        env = child_env(config, kafka.bootstrap, dict(os.environ))
        gateway = gateway_settings(kafka, env)
        select_feeds(config, (), env)
    except ArbstreamError as exc:
        _exit(exc, EXIT_CONFIG)
    settings = DemoSettings(
        config_path=Path(config_path),
        scenario=None if scenario is None else Path(scenario),
        speed=speed,
        seconds=seconds,
        summary_path=None if summary_path is None else Path(summary_path),
        log_dir=Path(log_dir),
        kafka=kafka,
        env=env,
        page_url=f"http://{gateway.host}:{gateway.port}/",
    )
    try:
        status = run_demo(config, settings)
    except ArbstreamError as exc:
        _exit(exc)
    sys.exit(status)


if __name__ == "__main__":
    main()
