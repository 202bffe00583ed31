"""``arbstream demo``: the whole live system on one machine, and a terminal view of it.

Starts, as child processes running the same CLI commands an operator runs, the venue
simulator (a scenario served over each venue's configured protocol), the feeds
(WebSockets into Kafka) and one worker, then watches the ticks, spreads and signals
topics and draws them (arbstream.dashboard) until Ctrl-C or ``--seconds``. Then it
stops everything it started, prints a summary and can write it as JSON. The broker is
not started here: ``scripts/demo.sh`` (``make demo``) starts one unless it is running.

Children run in their own sessions, so the terminal's Ctrl-C reaches only the demo,
which then stops them in order (feeds, simulator, worker), each with SIGTERM first.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.live import Live

from agents.topics import Topics, partition_counts
from agents.worker import prepare
from arbstream.dashboard import Dashboard
from streams.config import Config
from streams.errors import ArbstreamError

#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0
#: Without a terminal, a status line this often.
STATUS_EVERY_S = 5.0


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
    bootstrap: str
    env: dict[str, str]  # for the children (broker, ports, API keys)


def _with_parent_death_signal(args: list[str]) -> list[str]:
    """Prefix ``setpriv --pdeathsig TERM`` where util-linux has it (Linux): the child is
    then stopped if the demo dies (SIGKILL, a crash), so no orphan keeps the simulator's
    ports or the consumer group. Elsewhere the demo's own stop path is all there is."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return args
    return [setpriv, "--pdeathsig", "TERM", "--", *args]


class Child:
    """One started component, its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            _with_parent_death_signal([sys.executable, "-m", "arbstream.cli", *args]),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def failed(self) -> int | None:
        """The exit status if the child has ended (it should not before we stop it)."""
        return self.proc.poll()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_children(settings: DemoSettings) -> list[Child]:
    """Simulator, feeds, worker: the simulator holds its clock until the feeds connect."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    config = str(settings.config_path)
    simulate = ["simulate", "--config", config, "--speed", str(settings.speed), "--loop"]
    if settings.scenario is not None:
        simulate += ["--scenario", str(settings.scenario)]
    children: list[Child] = []
    try:
        for name, args in (
            ("simulator", simulate),
            ("feeds", ["feed", "--config", config]),
            ("worker", ["worker", "--config", config]),
        ):
            children.append(Child(name, args, settings.env, settings.log_dir))
    except OSError:
        stop_children(children)
        raise
    return children


def stop_children(children: Sequence[Child]) -> dict[str, int]:
    # Feeds first (they flush to Kafka), then their source, then the worker.
    order = {"feeds": 0, "simulator": 1, "worker": 2}
    return {c.name: c.stop() for c in sorted(children, key=lambda c: order.get(c.name, 9))}


class TopicWatcher:
    """Reads the ticks, spreads and signals topics from their ends as of ``start``."""

    def __init__(self, config: Config, bootstrap: str) -> None:
        self.topics = Topics(config.topic_prefix)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",  # spreads and signals are transactional
            max_poll_records=5000,
        )

    async def start(self, bootstrap: str) -> None:
        wanted = [self.topics.ticks, self.topics.spreads, self.topics.signals]
        counts = await partition_counts(bootstrap, wanted)
        parts = [TopicPartition(t, p) for t in wanted for p in range(counts[t])]
        await self._consumer.start()
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # fix the start now, before any child writes
            await self._consumer.position(tp)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def catch_up(self, dashboard: Dashboard, timeout_s: float) -> None:
        """Read up to the ends of the topics as they are now (after the children
        stopped), so the summary counts everything they published."""
        parts = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            positions = {tp: await self._consumer.position(tp) for tp in parts}
            if all(positions[tp] >= ends[tp] for tp in parts):
                return
            await self.poll(dashboard, 0.25)

    async def poll(self, dashboard: Dashboard, timeout_s: float) -> None:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        now_ms = int(time.time() * 1000)
        t = self.topics
        for tp, messages in batches.items():
            for message in messages:
                try:
                    record: Any = orjson.loads(message.value)
                except orjson.JSONDecodeError:
                    record = None
                if tp.topic == t.ticks:
                    dashboard.observe_tick(record, now_ms)
                elif tp.topic == t.spreads:
                    dashboard.observe_spread(record)
                else:
                    dashboard.observe_signal(record)


async def _watch(
    watcher: TopicWatcher,
    dashboard: Dashboard,
    children: Sequence[Child],
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
            await watcher.poll(dashboard, 0.25)
            for child in children:
                status = child.failed()
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


async def _demo(config: Config, settings: DemoSettings, dashboard: Dashboard) -> None:
    await prepare(config, settings.bootstrap)  # topics exist before anyone reads them
    watcher = TopicWatcher(config, settings.bootstrap)
    await watcher.start(settings.bootstrap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    children = start_children(settings)
    print(f"demo: started {', '.join(c.name for c in children)}; logs in {settings.log_dir}")
    try:
        await _watch(watcher, dashboard, children, settings, stop)
    finally:
        statuses = await asyncio.to_thread(stop_children, children)
        try:
            # outputs of the last ticks were committed as the worker stopped: read them
            await watcher.catch_up(dashboard, 10.0)
        finally:
            await watcher.stop()
    bad = {name: s for name, s in statuses.items() if s not in (0, -signal.SIGTERM)}
    if bad:
        raise DemoError(f"components did not stop cleanly: {bad}; logs in {settings.log_dir}")


def run_demo(config: Config, settings: DemoSettings) -> dict[str, Any]:
    """Run the demo; return the summary (also written to ``summary_path`` if given)."""
    dashboard = Dashboard(config.venue_names, config.windows_ms)
    started = time.monotonic()
    asyncio.run(_demo(config, settings, dashboard))
    summary = dashboard.summary()
    if settings.summary_path is not None:
        settings.summary_path.parent.mkdir(parents=True, exist_ok=True)
        settings.summary_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(f"demo ran {time.monotonic() - started:.0f} s")
    print(dashboard.status_line(_now_ms()))
    print(orjson.dumps(summary).decode())
    return summary


def child_env(config: Config, bootstrap: str, base: dict[str, str]) -> dict[str, str]:
    """The children's environment: the demo's, the broker, and a placeholder API key
    for every feed whose key variable is unset (the simulator accepts any key)."""
    env = dict(base)
    env["ARBSTREAM_BROKER"] = f"kafka://{bootstrap}"
    for feed in config.feeds.values():
        if feed.api_key_env is not None:
            env.setdefault(feed.api_key_env, "demo-key")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
