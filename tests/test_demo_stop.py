"""``make demo`` ends cleanly however it is stopped: SIGTERM to make, ``timeout N make
demo``, SIGTERM to ``arbstream demo`` after its broker died. Within 15 s no process it
started is left and the broker's port is free.

"What it started" is read from the process table, not from pid files: every process
started for a test carries a marker in its environment (children inherit it, the broker
too), and the test looks for that marker in /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from arbstream.agents.worker import READY_MESSAGE
from helpers.kafka import free_port, kafka_sh, scaled
from helpers.paths import REPO
from helpers.pipeline import demo_config

# (make demo starts its own broker)
pytestmark = pytest.mark.kafka

MARK = "ARBSTREAM_TEST_PROCESS_MARK"
#: However it is stopped, the demo and everything it started are gone within this.
STOP_BOUND_S = 15.0


def marked(mark: str) -> dict[int, str]:
    """pid -> command line of every live process whose environment carries ``mark``."""
    needle = f"{MARK}={mark}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie has ended
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def seconds_until_gone(mark: str, bound_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < bound_s:
        if not marked(mark):
            return time.monotonic() - start
        time.sleep(0.1)
    return None


@dataclass
class DemoRun:
    mark: str
    env: dict[str, str]
    config: Path
    log: Path
    kafka_port: int

    def started(self, timeout_s: float = 180.0) -> None:
        """Until the demo says its components run, and a few seconds more."""
        deadline = time.monotonic() + scaled(timeout_s)
        while b"demo: started" not in self.log.read_bytes():
            if time.monotonic() > deadline:
                raise AssertionError(f"demo did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(3.0)

    def worker_ready(self, timeout_s: float = 120.0) -> None:
        """Until the demo's worker says it is ready (its log in DEMO_LOG_DIR)."""
        log = Path(self.env["DEMO_LOG_DIR"]) / "worker.log"
        deadline = time.monotonic() + scaled(timeout_s)
        while not (log.exists() and READY_MESSAGE.encode() in log.read_bytes()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo's worker was not ready:\n{self.log.read_text()}")
            time.sleep(0.2)

    def assert_all_gone(self, since: float, what: str) -> float:
        """Every marked process has ended within STOP_BOUND_S of ``since``, and the broker's
        port is free; return the seconds it took."""
        left = STOP_BOUND_S - (time.monotonic() - since)
        gone = seconds_until_gone(self.mark, max(0.0, scaled(left)))
        took = time.monotonic() - since
        print(f"{what}: everything ended after {took:.1f} s" if gone is not None else "")
        assert gone is not None, (
            f"{what}: still running after {STOP_BOUND_S} s: {marked(self.mark)}"
        )
        assert port_free(self.kafka_port)
        return took


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[DemoRun]:
    mark = uuid.uuid4().hex
    config = demo_config(tmp_path, f"stop-{mark[:8]}")
    kafka_port = free_port()
    env = {
        **os.environ,
        MARK: mark,
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
        "ARBSTREAM_BROKER": f"kafka://127.0.0.1:{kafka_port}",
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
        "ARBSTREAM_GATEWAY_PORT": str(free_port()),
        "DEMO_CONFIG": str(config),
        "DEMO_SECONDS": "300",
        "DEMO_LOG_DIR": str(tmp_path / "logs"),
    }
    for name in ("KAFKA_CONTROLLER_PORT", "KAFKA_KEEP_DATA", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    run = DemoRun(mark, env, config, tmp_path / "out.log", kafka_port)
    try:
        yield run
    finally:
        for pid in marked(mark):  # whatever a failed test left behind
            os.kill(pid, signal.SIGKILL)


def start(run: DemoRun, *command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        cwd=REPO,
        env=run.env,
        stdin=subprocess.DEVNULL,
        stdout=run.log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # as a shell starts a job: the test's signals reach it only
    )


def test_sigterm_to_make_ends_every_process_of_the_demo(demo_run: DemoRun) -> None:
    make = start(demo_run, "make", "demo")
    demo_run.started()
    running = marked(demo_run.mark)
    assert any("arbstream.cli worker" in c for c in running.values()), running
    assert any("arbstream.cli gateway" in c for c in running.values()), running
    assert any("kafka.Kafka" in c for c in running.values()), running
    stopped_at = time.monotonic()
    make.send_signal(signal.SIGTERM)
    demo_run.assert_all_gone(stopped_at, "SIGTERM to make")
    assert make.wait(5) != 0


def test_timeout_make_demo_ends_every_process_of_the_demo(demo_run: DemoRun) -> None:
    # Long enough for the demo to have started everything first: 25 s was not, once,
    # with the whole suite running beside it (2026-12-07).
    seconds = str(round(scaled(45)))
    timeout = start(demo_run, "timeout", seconds, "make", "demo")
    status = timeout.wait(scaled(90))
    stopped_at = time.monotonic()
    assert status == 124, demo_run.log.read_text()[-3000:]
    assert b"demo: started" in demo_run.log.read_bytes(), demo_run.log.read_text()[-3000:]
    demo_run.assert_all_gone(stopped_at, f"timeout {seconds} make demo")


def test_demo_stops_within_bounds_after_its_broker_was_killed(demo_run: DemoRun) -> None:
    env = demo_run.env
    kafka_sh("up", env, scaled(120))
    try:
        demo = start(
            demo_run,
            sys.executable,
            "-m",
            "arbstream.cli",
            "demo",
            "--config",
            str(demo_run.config),
            "--seconds",
            "300",
            "--log-dir",
            env["DEMO_LOG_DIR"],
        )
        demo_run.started()
        # killed while everything runs, not while the worker still checks its topics (a
        # broker gone then stops the worker at once, with a setup error)
        demo_run.worker_ready()
        brokers = [p for p, c in marked(demo_run.mark).items() if "kafka.Kafka" in c]
        assert len(brokers) == 1
        os.kill(brokers[0], signal.SIGKILL)
        time.sleep(2.0)
        stopped_at = time.monotonic()
        demo.send_signal(signal.SIGTERM)
        try:
            status = demo.wait(scaled(STOP_BOUND_S))
        except subprocess.TimeoutExpired:
            status = None
        took = time.monotonic() - stopped_at
        out = demo_run.log.read_text()
        print(f"arbstream demo after SIGTERM, broker killed: exit {status} after {took:.1f} s")
        assert status == 128 + signal.SIGTERM, out[-3000:]
        last = out.strip().splitlines()[-1]
        assert "broker" in last and "did not answer" in last, last
        # every component ended by itself within the budget: none had to be killed
        assert "killed" not in last, last
        demo_run.assert_all_gone(stopped_at, "arbstream demo without its broker")
    finally:
        kafka_sh("down", env, scaled(60))
