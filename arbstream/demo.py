"""``arbstream demo``: the whole live system on one machine, and a terminal view of it.

Starts, as child processes running the same CLI commands an operator runs, the venue
simulator (a scenario served over each venue's configured protocol), the feeds
(WebSockets into Kafka), one worker and the gateway, then reads the committed ticks,
spreads, basis and signals topics into a market view (streams/market_view.py: the
picture the gateway's page shows) and draws it (arbstream.dashboard) until Ctrl-C or
``--seconds``. Then it
stops everything it started, prints a summary and can write it as JSON. The broker is
not started here: ``scripts/demo.sh`` (``make demo``) starts one unless it is running.

Children run in their own sessions, so the terminal's Ctrl-C reaches only the demo,
which then stops them in order (feeds, simulator, worker), each with SIGTERM first.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.live import Live

from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.probe import broker_reachable
from arbstream.agents.kafka.topics import Topics, prepare
from arbstream.agents.topic_reader import TopicReader
from arbstream.config import Config
from arbstream.dashboard import Dashboard
from arbstream.demo_alerts import ALERTS_EVERY_S, AlertStack, Webhook, start_alerting
from arbstream.gateway.alerts import AlertWatch
from arbstream.process import configure_logging
from arbstream.streams.errors import ArbstreamError
from arbstream.streams.market_view import MarketView, TopicRecord
from arbstream.supervisor import ChildProcess, arbstream_command

#: Seconds every child together gets to stop after SIGTERM before what still runs is
#: killed; then reading the topics' ends for the summary gets at most CATCH_UP_S, so a
#: demo ends within about 12 s of being told to, whatever the broker does.
STOP_BUDGET_S = 8.0
CATCH_UP_S = 3.0
CLOSE_TIMEOUT_S = 1.0
#: Without a terminal, a status line this often.
STATUS_EVERY_S = 5.0
#: The longest quiet stretch of a scenario, in wall time (cny-holiday's Chinese New Year
#: week would otherwise be 57 minutes of nothing at 200x).
MAX_GAP_S = 5.0


class DemoError(ArbstreamError):
    """A component of the demo failed; the message says which, and where its log is."""


@dataclass(frozen=True)
class DemoSettings:
    config_path: Path
    scenario: Path | None  # None: the generated endless scenario
    speed: float
    seconds: float | None  # None: until Ctrl-C
    summary_path: Path | None
    log_dir: Path
    kafka: KafkaClients
    env: dict[str, str]  # for the children (broker, its credentials, ports, API keys)
    page_url: str = "http://127.0.0.1:8080/"
    #: Run a Prometheus and an Alertmanager beside the rest (None: no alerts).
    alerts: AlertStack | None = None
    #: The demo's scrape targets, by the shipped job names (for ``alerts``).
    metrics_ports: dict[str, int] = field(default_factory=dict)


def start_children(settings: DemoSettings) -> list[ChildProcess]:
    """Simulator, feeds, worker, gateway: the simulator holds its clock until the feeds
    connect."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    config = str(settings.config_path)
    simulate = ["simulate", "--config", config, "--speed", str(settings.speed), "--loop"]
    # a weekend or a holiday in the scenario is a pause of seconds, not of an hour
    simulate += ["--max-gap", str(MAX_GAP_S)]
    if settings.scenario is not None:
        simulate += ["--scenario", str(settings.scenario)]
    children: list[ChildProcess] = []
    try:
        for name, args in (
            ("simulator", simulate),
            ("feeds", ["feed", "--config", config]),
            ("worker", ["worker", "--config", config]),
            ("gateway", ["gateway", "--config", config]),
        ):
            # In sessions of their own: a terminal's Ctrl-C reaches only the demo, which
            # stops them in order; the parent-death signal stops them if the demo dies.
            child = ChildProcess(
                arbstream_command(*args),
                settings.log_dir / f"{name}.log",
                env=settings.env,
                name=name,
                own_session=True,
                parent_death=True,
                truncate=True,
            )
            children.append(child)
    except OSError:
        stop_children(children)
        raise
    return children


def stop_children(
    children: Sequence[ChildProcess], budget_s: float = STOP_BUDGET_S
) -> dict[str, int]:
    """Stop every child within ``budget_s``; return their exit statuses (negative: the
    signal that ended it). Feeds first, with up to half the budget to flush to Kafka,
    then their source, then the worker, which commits what it has; whatever still runs
    at the end of the budget is killed (a worker killed mid-batch loses nothing: its
    open transaction is aborted and redone by the next worker)."""
    # (Prometheus and the Alertmanager last: they report on the others' stops)
    order = {"feeds": 0, "simulator": 1, "worker": 2, "gateway": 3}
    start = time.monotonic()
    for child in sorted(children, key=lambda c: order.get(c.name, 9)):
        child.terminate()
        if child.name == "feeds":
            child.wait_until(start + budget_s / 2)
    for child in children:
        child.wait_until(start + budget_s)
    return {c.name: c.kill() for c in children}


async def _watch(
    reader: TopicReader,
    dashboard: Dashboard,
    children: Sequence[ChildProcess],
    settings: DemoSettings,
    stop: asyncio.Event,
) -> None:
    console = Console()
    deadline = None if settings.seconds is None else time.monotonic() + settings.seconds
    live = Live(dashboard.render(_now_ms()), console=console, refresh_per_second=4)
    use_live = console.is_terminal
    next_status = time.monotonic() + STATUS_EVERY_S
    with live if use_live else contextlib.nullcontext():
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            await reader.poll(0.25)
            for child in children:
                status = child.status()
                if status is not None:
                    raise DemoError(
                        f"{child.name} exited with status {status}; its log "
                        f"({child.log_path}) ends:\n{child.tail()}"
                    )
            if use_live:
                live.update(dashboard.render(_now_ms()))
            elif time.monotonic() >= next_status:
                next_status += STATUS_EVERY_S
                print(dashboard.status_line(_now_ms()), flush=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Outcome:
    """How a demo ended: what stopped it, how its components ended, the summary's fate."""

    signal: signal.Signals | None = None  # None: --seconds ran out
    statuses: dict[str, int] = field(default_factory=dict)
    broker_answered: bool = True
    caught_up: bool = True

    @property
    def exit_status(self) -> int:
        """128 + the signal's number when a signal stopped it (as a shell reports a
        command a signal ended); else 1 when a component did not stop cleanly, or 0."""
        if self.signal is not None:
            return 128 + self.signal.value
        return 1 if self.unclean else 0

    @property
    def unclean(self) -> dict[str, int]:
        return {n: s for n, s in self.statuses.items() if s not in (0, -signal.SIGTERM)}

    def line(self, seconds: float, log_dir: Path) -> str:
        """The demo's last line: how it ended, and what the summary is worth."""
        how = f"stopped by {self.signal.name}" if self.signal is not None else "ran its time"
        words = [f"demo: {how} after {seconds:.0f} s"]
        if self.unclean:
            ended = ", ".join(f"{n} {_ended(s)}" for n, s in sorted(self.unclean.items()))
            words.append(f"{ended} (logs in {log_dir})")
        if not self.broker_answered:
            words.append(
                "the broker did not answer, so the summary counts what was read before the stop"
            )
        elif not self.caught_up:
            words.append("the summary may miss the last records (reading them took too long)")
        return "; ".join(words)


def _ended(status: int) -> str:
    return f"killed by {signal.Signals(-status).name}" if status < 0 else f"exited {status}"


async def _demo(
    config: Config, settings: DemoSettings, dashboard: Dashboard, outcome: Outcome
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_on(sig: signal.Signals) -> None:
        outcome.signal = outcome.signal or sig
        stop.set()

    def see(item: TopicRecord) -> None:
        dashboard.observe(item, _now_ms())

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_on, sig)
    await prepare(settings.kafka, config)  # topics exist before anyone reads them
    # from the topics' ends: the summary counts what this run publishes
    reader = TopicReader(settings.kafka, Topics(config.topic_prefix), see, lookback_s=None)
    await reader.start()
    children: list[ChildProcess] = []
    webhook = watch = None
    tasks: list[asyncio.Task[None]] = []
    try:
        if settings.alerts is not None:
            webhook = Webhook()
            await webhook.start()
            children += start_alerting(
                settings.alerts,
                settings.speed,
                settings.metrics_ports,
                webhook.url,
                settings.log_dir,
                settings.env,
            )
            watch = AlertWatch(
                settings.alerts.alertmanager_url, dashboard.show_alerts, ALERTS_EVERY_S
            )
            tasks.append(asyncio.create_task(watch.run(), name="demo alerts"))
        children += start_children(settings)
        print(f"demo: started {', '.join(c.name for c in children)}; logs in {settings.log_dir}")
        print(f"demo: the live page is at {settings.page_url} (the gateway; WebSocket at /ws)")
        if settings.alerts is not None:
            print(
                f"demo: Prometheus at {settings.alerts.prometheus_url}/alerts, the "
                f"Alertmanager at {settings.alerts.alertmanager_url}/ (rules' `for` divided "
                f"by the speed, {settings.speed:g})"
            )
        await _watch(reader, dashboard, children, settings, stop)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outcome.statuses = await asyncio.to_thread(stop_children, children)
        if webhook is not None:
            dashboard.notified = webhook.summary()
            await webhook.stop()
        # The outputs of the last ticks were committed as the worker stopped: read them,
        # if the broker is there to read them from.
        outcome.broker_answered = await broker_reachable(settings.kafka.bootstrap)
        if outcome.broker_answered:
            outcome.caught_up = await reader.read_to_ends(CATCH_UP_S)
        await reader.stop(CLOSE_TIMEOUT_S if outcome.broker_answered else 0.5)


def run_demo(config: Config, settings: DemoSettings) -> int:
    """Run the demo until ``seconds`` or a signal; print the summary (also written to
    ``summary_path`` if given) and a last line saying how it ended; return the exit
    status (Outcome.exit_status)."""
    configure_logging("info", settings.log_dir / "demo.log")  # the screen is the view's
    dashboard = Dashboard(MarketView(config), config.windows_ms)
    started = time.monotonic()
    outcome = Outcome()
    asyncio.run(_demo(config, settings, dashboard, outcome))
    summary = dashboard.summary()
    if settings.summary_path is not None:
        settings.summary_path.parent.mkdir(parents=True, exist_ok=True)
        settings.summary_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(dashboard.status_line(_now_ms()))
    print(orjson.dumps(summary).decode())
    print(outcome.line(time.monotonic() - started, settings.log_dir), flush=True)
    return outcome.exit_status


def child_env(config: Config, bootstrap: str, base: dict[str, str]) -> dict[str, str]:
    """The children's environment: the demo's (with its ``ARBSTREAM_KAFKA_*`` security
    settings: every child runs as the demo's Kafka user), the broker, and a placeholder
    API key for every feed whose key variable is unset (the simulator accepts any key)."""
    env = dict(base)
    env["ARBSTREAM_BROKER"] = f"kafka://{bootstrap}"
    # the demo's page is for this machine's browser, not the network
    env.setdefault("ARBSTREAM_GATEWAY_HOST", "127.0.0.1")
    for feed in config.feeds.values():
        if feed.api_key_env is not None:
            env.setdefault(feed.api_key_env, "demo-key")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
