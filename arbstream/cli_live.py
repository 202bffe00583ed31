"""The commands of the live system beyond Kafka: the gateway for subscribers outside it
(and its tokens), the venue simulator, and the demo that runs everything on one machine.
``arbstream.cli`` adds them to the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from arbstream.commands import (
    EXIT_CONFIG,
    LOGLEVEL,
    POSITIVE,
    exit_with,
    load_config_or_exit,
)
from arbstream.streams.errors import ArbstreamError

# Each command imports the layers it runs when it runs (PLC0415 is off for this file).


@click.group(invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@LOGLEVEL
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
    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.gateway.settings import gateway_settings
    from arbstream.gateway_process import run_gateway

    config = load_config_or_exit(config_path)
    try:
        settings = gateway_settings(kafka_clients())
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    try:
        run_gateway(config, settings, loglevel)
    except ArbstreamError as exc:
        exit_with(exc)


@gateway.command("token")
@click.argument("name")
def gateway_token(name: str) -> None:
    """Make a token for client NAME: prints the token (give it to the client: it is not
    kept anywhere) and the line to add to ARBSTREAM_GATEWAY_TOKENS_FILE (the token's
    SHA-256, no secret); then send the gateway SIGHUP."""
    from arbstream.gateway.access import new_token

    try:
        token, line = new_token(name)
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    click.echo(f"token: {token}")
    click.echo(f"line:  {line}")


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="JSONL input records to serve (default: the generated endless scenario).",
)
@click.option(
    "--speed",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="Event time runs this many times faster than wall time.",
)
@click.option("--loop", is_flag=True, help="Serve the scenario again and again, time moving on.")
@click.option("--seed", type=int, default=1, show_default=True, help="Of the generated scenario.")
@click.option(
    "--drop-every",
    type=POSITIVE,
    default=None,
    metavar="S",
    help="Fault: abort every client connection every S seconds.",
)
@click.option(
    "--stall-every",
    type=POSITIVE,
    default=None,
    metavar="S",
    help="Fault: every S seconds send nothing for --stall-for seconds.",
)
@click.option("--stall-for", type=POSITIVE, default=None, metavar="S")
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
@click.option(
    "--max-gap",
    type=POSITIVE,
    default=None,
    metavar="S",
    help="A quiet stretch of the scenario (a weekend, a holiday) lasts at most S s of wall "
    "time (default: as long as its event time over --speed).",
)
@LOGLEVEL
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
    max_gap: float | None,
    loglevel: str,
) -> None:
    """Serve a scenario's venues on local WebSockets, each in the protocol its feed is
    configured with (the url's host and port), paced by event time."""
    from arbstream.process import configure_logging
    from arbstream.simulator.server import SimulatorSettings, run_simulator

    config = load_config_or_exit(config_path)
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
            max_gap_s=max_gap,
        )
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
    try:
        configure_logging(loglevel)
        run_simulator(config, None if scenario is None else Path(scenario), settings)
    except ArbstreamError as exc:
        exit_with(exc)


@click.command()
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
@click.option(
    "--alerts",
    is_flag=True,
    help="Also run Prometheus and an Alertmanager with the shipped rules and routes; the "
    "terminal and the page show the alerts that fire.",
)
@click.option(
    "--deploy-dir",
    type=click.Path(file_okay=False, exists=True),
    default="deploy",
    show_default=True,
    help="With --alerts: where prometheus/alerts.yml and alertmanager/alertmanager.yml are.",
)
@click.option("--prometheus-bin", default=None, help="With --alerts: default prometheus on PATH.")
@click.option(
    "--alertmanager-bin", default=None, help="With --alerts: default alertmanager on PATH."
)
@click.option("--prometheus-port", type=click.IntRange(1, 65535), default=9090, show_default=True)
@click.option("--alertmanager-port", type=click.IntRange(1, 65535), default=9093, show_default=True)
def demo(
    config_path: str,
    scenario: str | None,
    speed: float,
    seconds: float | None,
    summary_path: str | None,
    log_dir: str,
    alerts: bool,
    deploy_dir: str,
    prometheus_bin: str | None,
    alertmanager_bin: str | None,
    prometheus_port: int,
    alertmanager_port: int,
) -> None:
    """The live system on one machine: simulator, feeds, a worker and the gateway on the
    broker of ARBSTREAM_BROKER, with a terminal view of spreads, open routes and venues,
    and the web page on ARBSTREAM_GATEWAY_PORT (default 8080); with --alerts, Prometheus
    and an Alertmanager too, and the alerts that fire in both views."""
    from arbstream.agents.kafka.clients import kafka_clients
    from arbstream.agents.settings import feed_metrics_port, web_port
    from arbstream.demo import DemoSettings, child_env, run_demo
    from arbstream.demo_alerts import ALERTS_EVERY_S, AlertStack, find_binary
    from arbstream.feed_process import select_feeds
    from arbstream.gateway.settings import gateway_settings
    from arbstream.process import require_free_port

    config = load_config_or_exit(config_path)
    stack = None
    try:
        kafka = kafka_clients()
        env = child_env(config, kafka.bootstrap, dict(os.environ))
        if alerts:
            stack = AlertStack(
                deploy_dir=Path(deploy_dir),
                prometheus_bin=find_binary(prometheus_bin, "prometheus", "--prometheus-bin"),
                alertmanager_bin=find_binary(
                    alertmanager_bin, "alertmanager", "--alertmanager-bin"
                ),
                prometheus_port=prometheus_port,
                alertmanager_port=alertmanager_port,
            )
            require_free_port("127.0.0.1", prometheus_port, "--prometheus-port")
            require_free_port("127.0.0.1", alertmanager_port, "--alertmanager-port")
            env["ARBSTREAM_GATEWAY_ALERTMANAGER_URL"] = stack.alertmanager_url
            env.setdefault("ARBSTREAM_GATEWAY_ALERTS_EVERY_S", str(ALERTS_EVERY_S))
        # the children read these: fail here, naming the variable
        ports = {"arbstream-worker": web_port(env), "arbstream-feeds": feed_metrics_port(env)}
        gateway = gateway_settings(kafka, env)
        ports["arbstream-gateway"] = gateway.port
        select_feeds(config, (), env)
    except ArbstreamError as exc:
        exit_with(exc, EXIT_CONFIG)
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
        alerts=stack,
        metrics_ports=ports,
    )
    try:
        status = run_demo(config, settings)
    except ArbstreamError as exc:
        exit_with(exc)
    sys.exit(status)
