"""Operators are told: the live system (``arbstream simulate`` -> ``arbstream feed`` -> Kafka
-> ``arbstream worker``) scraped by a real Prometheus with the shipped rules, which sends
its alerts to a real Alertmanager with the shipped config, whose webhook posts to an HTTP
receiver this test runs. One run, in three acts, each starting from where the last left:

1. healthy: no alert fires, nor even turns pending, and nothing is notified;
2. one venue's connection cut (a TCP gate between the SGE feed and its venue): the feed's
   alert pages and the venue's staleness alert makes a ticket, each with the venue or
   feed label and its runbook link; with the gate open again both are notified resolved;
3. the broker stopped: the feeds' Kafka alert pages; the worker's readiness alert, and the
   SGE feed's alert (its connection cut again), fire in Prometheus but Alertmanager holds
   them inhibited by the Kafka alert: they are never notified. (The processes' partition
   gauges keep what they last saw: when one of them looked while the broker was shutting
   down, ArbstreamKafkaPartitionsOffline fires too, and, its `for` being shorter, can
   page before the feeds' alert does. It is the same cause, and a Kafka alert: allowed.)

Shortened, in temporary copies of the shipped files (with the shipped timings the test
would take half an hour; expressions, labels, annotations, routes, receivers and
inhibitions stay as shipped):

- every rule's ``for`` is a twelfth of the shipped one, rounded up to whole seconds
  (1m -> 5 s, 2m -> 10 s, 30 s -> 3 s), so that their order is kept;
- Prometheus scrapes and evaluates every second (shipped: 5 s);
- Alertmanager's group_wait is 1 s and group_interval 2 s on every route (shipped: 30 s
  to 5 m); repeat_interval stays as shipped (hours), so nothing repeats meanwhile;
- the webhook's placeholder URL is the receiver's, and the scrape targets are this test's
  processes on 127.0.0.1 instead of the compose services.

The market is the simulator's endless generated one at 3x speed: SGE's 15 s stale_ms is
5 s of wall time, and the slowest market alert (an arbitrage open for 900 s of event
time) is five minutes away, beyond the test. The test runs its own broker, since it
stops it (the session's must stay up for the other tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from helpers.alertmanager import (
    CONFIG as ALERTMANAGER_CONFIG,
)
from helpers.alertmanager import (
    WEBHOOK_PLACEHOLDER,
    AlertmanagerServer,
    HttpReceiver,
    Notified,
)
from helpers.http import get
from helpers.kafka import free_port, kafka_sh, launched, scaled
from helpers.paths import REPO
from helpers.pipeline import Worker, arbstream_process, demo_config
from helpers.prometheus import PrometheusServer

# (its own broker, a real Prometheus and Alertmanager)
pytestmark = [pytest.mark.prometheus, pytest.mark.kafka]

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
#: Every rule's `for` is divided by this (rounded up to whole seconds).
FOR_DIVISOR = 12
#: The healthy act lasts longer than any shortened `for` that healthy data could meet
#: (the 2m rules: 10 s), so a rule that misfires on it turns firing, not just pending.
HEALTHY_S = 15.0
#: After the inhibited alerts fire: several group_intervals (2 s) for a notification
#: that should not come to arrive anyway.
QUIET_S = 6.0
SPEED = 3
WEBHOOK_PATH = "/webhook"

FEED_DOWN = "ArbstreamFeedDown"
QUOTE_STALE = "ArbstreamQuoteStale"
KAFKA_DOWN = "ArbstreamFeedKafkaDisconnected"
PARTITIONS_OFFLINE = "ArbstreamKafkaPartitionsOffline"
WORKER_NOT_READY = "ArbstreamWorkerNotReady"


# ---- the shipped files, shortened ------------------------------------------------------


def _seconds(duration: str) -> int:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def shortened_rules() -> str:
    """alerts.yml with every `for` divided by FOR_DIVISOR (0 stays 0)."""

    def shorten(match: re.Match[str]) -> str:
        seconds = _seconds(match.group(2))
        return f"{match.group(1)}{math.ceil(seconds / FOR_DIVISOR)}s"

    text, n = re.subn(r"^(\s+for: )(\d+[smh])\b", shorten, ALERTS.read_text(), flags=re.M)
    assert n == ALERTS.read_text().count("- alert: "), "a rule's `for` was not shortened"
    return text


def prometheus_config(worker_port: int, feeds_port: int, alertmanager_port: int) -> str:
    """prometheus.yml with this test's targets and timings."""
    config = YAML(typ="safe").load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    [alertmanagers] = config["alerting"]["alertmanagers"]
    alertmanagers["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    config["scrape_configs"] = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in (("arbstream-worker", worker_port), ("arbstream-feeds", feeds_port))
    ]
    return _dump(config)


def alertmanager_config(webhook_url: str) -> str:
    """alertmanager.yml with the webhook at ``webhook_url`` and short group timings."""
    text = ALERTMANAGER_CONFIG.read_text()
    assert WEBHOOK_PLACEHOLDER in text
    config = YAML(typ="safe").load(text.replace(WEBHOOK_PLACEHOLDER, webhook_url))
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key, value in (("group_wait", "1s"), ("group_interval", "2s")):
            if key in route or route is config["route"]:
                route[key] = value
        routes.extend(route.get("routes") or [])
    return _dump(config)


def _dump(document: Any) -> str:
    out = StringIO()
    YAML(typ="safe").dump(document, out)
    return out.getvalue()


def shipped_runbooks() -> dict[str, str]:
    """Alert name -> its runbook_url in the shipped alerts.yml."""
    document = YAML(typ="safe").load(ALERTS.read_text())
    return {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for group in document["groups"]
        for rule in group["rules"]
    }


# ---- a venue's network link ------------------------------------------------------------


class TcpGate:
    """A TCP relay from a free 127.0.0.1 port to ``target_port``: a venue's link, which
    ``close`` cuts (every connection reset, new ones refused) and ``open`` restores on the
    same port. It runs its own event loop in a thread."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> TcpGate:
        self._thread.start()
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(10))

    def open(self) -> None:
        self._run(self._open())

    def close(self) -> None:
        self._run(self._close())

    def _run(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(scaled(10))

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when a link goes down
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target
            )
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, upstream_writer}
        self._writers |= pair
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._writers -= pair
            for w in pair:
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side ended: end the other (the relay's finally too)


# ---- the test --------------------------------------------------------------------------


def _firing(notified: list[Notified], name: str, **labels: str) -> list[Notified]:
    return _with(notified, name, "firing", **labels)


def _with(notified: list[Notified], name: str, status: str, **labels: str) -> list[Notified]:
    return [
        n
        for n in notified
        if n.status == status
        and n.labels.get("alertname") == name
        and all(n.labels.get(k) == v for k, v in labels.items())
    ]


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout_s)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout_s):.0f} s waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def _stopped_at_exit(*procs: Any) -> Iterator[None]:
    """SIGTERM each process at exit (all first, then wait), so they stop in parallel."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.alive():
                proc.terminate()
        for proc in procs:
            proc.wait(scaled(30))


def test_alerts_reach_the_webhook_with_runbooks_and_inhibitions(tmp_path: Path) -> None:
    kafka_port = free_port()
    broker_env = {
        **os.environ,
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
    }
    broker_env.pop("KAFKA_KEEP_DATA", None)
    broker_env.pop("KAFKA_CONTROLLER_PORT", None)
    bootstrap = f"127.0.0.1:{kafka_port}"
    runbooks = shipped_runbooks()
    timings: dict[str, float] = {}  # printed at the end (pytest -s): how long each took

    # The demo's config on free ports, two partitions (a quicker start than eight); the
    # feeds' copy reaches SGE through the gate.
    simulator_config = demo_config(tmp_path, f"alerts-{uuid.uuid4().hex[:8]}")
    text = simulator_config.read_text().replace(
        "[producer]", "[kafka]\npartitions = 2\n\n[producer]"
    )
    simulator_config.write_text(text)
    sge = re.search(r'"ws://127\.0\.0\.1:(\d+)/sge"', text)
    assert sge, "the demo config has no sge feed on 127.0.0.1"
    feeds_port = free_port()
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{bootstrap}",
        "ARBSTREAM_FEED_METRICS_PORT": str(feeds_port),
        "MASSIVE_API_KEY": "test-key",
    }

    with contextlib.ExitStack() as stack:
        stack.enter_context(launched(broker_env))
        receiver = stack.enter_context(HttpReceiver())
        gate = stack.enter_context(TcpGate(int(sge.group(1))))
        feeds_config = tmp_path / "feeds.toml"
        feeds_config.write_text(
            text.replace(f"127.0.0.1:{sge.group(1)}/sge", f"127.0.0.1:{gate.port}/sge")
        )

        worker = Worker(feeds_config, bootstrap, tmp_path / "worker.log")
        stack.callback(worker.stop)
        worker.wait_ready()
        simulate = ["simulate", "--config", str(simulator_config), "--speed", str(SPEED)]
        simulator = arbstream_process(simulate, env, tmp_path / "simulator.log")
        feeds = arbstream_process(
            ["feed", "--config", str(feeds_config)], env, tmp_path / "feeds.log"
        )
        stack.enter_context(_stopped_at_exit(feeds, simulator))

        def feeds_ready() -> bool:
            with contextlib.suppress(OSError):
                return get(f"http://127.0.0.1:{feeds_port}/readyz", 5)[0] == 200
            return False

        # Prometheus starts once everything is up: a feed still connecting would be a
        # pending alert in the healthy act.
        _wait(feeds_ready, 60, "every feed connected, and Kafka")
        alertmanager = stack.enter_context(
            AlertmanagerServer(alertmanager_config(receiver.url + WEBHOOK_PATH))
        )
        prometheus = stack.enter_context(
            PrometheusServer(
                prometheus_config(worker.web_port, feeds_port, alertmanager.port),
                files={"alerts.yml": shortened_rules()},
            )
        )

        def diagnostics() -> str:
            return (
                f"\n{prometheus.log()[-3000:]}\n{alertmanager.log()[-6000:]}\n"
                f"--- feeds ---\n{feeds.tail(20)}\n--- worker ---\n{worker.log_tail(20)}"
            )

        # ---- 1. healthy ------------------------------------------------------------
        # From the first scrape of both processes on: before it, ArbstreamWorkerAbsent's
        # absent(up) is briefly true (pending, never firing: its `for` is there for that).
        prometheus.wait_for_series('sum(up{job=~"arbstream-worker|arbstream-feeds"}) == 2')
        healthy_from = time.time()
        time.sleep(scaled(HEALTHY_S))
        window_s = int(time.time() - healthy_from)
        seen = prometheus.query(
            f"count by (alertname, alertstate) (count_over_time(ALERTS[{window_s}s]))"
        )
        assert seen["data"]["result"] == [], f"alerts on a healthy run: {seen}{diagnostics()}"
        assert prometheus.alerts() == []
        assert alertmanager.alerts() == []
        assert receiver.received() == []

        # ---- 2. one venue's link cut, then restored ---------------------------------
        cut = time.monotonic()
        gate.close()

        def venue_alerts_firing() -> bool:
            got = receiver.notified(WEBHOOK_PATH)
            return bool(_firing(got, FEED_DOWN, feed="sge")) and bool(
                _firing(got, QUOTE_STALE, venue="SGE")
            )

        try:
            receiver.wait_for(venue_alerts_firing, 60, "SGE's feed and staleness alerts")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{diagnostics()}") from exc
        notified = receiver.notified(WEBHOOK_PATH)
        [feed_down] = _firing(notified, FEED_DOWN)
        [stale] = _firing(notified, QUOTE_STALE)
        timings["link cut -> feed alert notified"] = feed_down.at - cut
        timings["link cut -> stale alert notified"] = stale.at - cut
        # routed by severity, with its labels and its runbook
        assert (feed_down.receiver, feed_down.labels["severity"]) == ("arbstream-page", "critical")
        assert (stale.receiver, stale.labels["severity"]) == ("arbstream-ticket", "warning")
        assert stale.labels["instrument"] == "XAG"
        assert stale.group_labels == {"alertname": QUOTE_STALE, "venue": "SGE", "instrument": "XAG"}
        assert feed_down.labels["stack"] == "arbstream"  # Prometheus's external label
        for alert in (feed_down, stale):
            name = alert.labels["alertname"]
            assert alert.annotations["runbook_url"] == runbooks[name]
            assert alert.annotations["runbook_url"] == f"docs/operations.md#{name.lower()}"
            assert alert.annotations["summary"] and alert.annotations["description"]
        assert "SGE XAG quotes are stale" in stale.annotations["summary"]
        # one venue's link: its alerts, no other
        assert {n.labels["alertname"] for n in notified} == {FEED_DOWN, QUOTE_STALE}

        restored = time.monotonic()
        gate.open()

        def venue_alerts_resolved() -> bool:
            got = receiver.notified(WEBHOOK_PATH)
            return bool(_with(got, FEED_DOWN, "resolved", feed="sge")) and bool(
                _with(got, QUOTE_STALE, "resolved", venue="SGE")
            )

        try:
            receiver.wait_for(venue_alerts_resolved, 60, "SGE's alerts resolved")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{diagnostics()}") from exc
        [resolved] = _with(receiver.notified(WEBHOOK_PATH), QUOTE_STALE, "resolved")
        timings["link restored -> stale alert resolved"] = resolved.at - restored
        assert resolved.receiver == "arbstream-ticket"
        assert resolved.annotations["runbook_url"] == runbooks[QUOTE_STALE]

        # ---- 3. the broker stopped ---------------------------------------------------
        before = len(receiver.received())
        broker_stopped = time.monotonic()
        kafka_sh("down", broker_env, scaled(60))

        def kafka_alert_notified() -> bool:
            return bool(_firing(receiver.notified(WEBHOOK_PATH, before), KAFKA_DOWN))

        try:
            receiver.wait_for(kafka_alert_notified, 60, "the feeds' Kafka alert")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{diagnostics()}") from exc
        [kafka_down] = _firing(receiver.notified(WEBHOOK_PATH, before), KAFKA_DOWN)
        timings["broker stopped -> Kafka alert notified"] = kafka_down.at - broker_stopped
        assert (kafka_down.receiver, kafka_down.labels["severity"]) == (
            "arbstream-page",
            "critical",
        )
        assert kafka_down.annotations["runbook_url"] == runbooks[KAFKA_DOWN]

        def firing_in_prometheus(name: str, **labels: str) -> bool:
            return any(
                a["state"] == "firing"
                and a["labels"]["alertname"] == name
                and all(a["labels"].get(k) == v for k, v in labels.items())
                for a in prometheus.alerts()
            )

        # The worker is not ready while the broker does not answer, and SGE's link is
        # cut again: both fire, and both are explained by the Kafka alert.
        _wait(lambda: firing_in_prometheus(WORKER_NOT_READY), 60, "the worker not ready")
        gate.close()
        _wait(lambda: firing_in_prometheus(FEED_DOWN, feed="sge"), 60, "SGE's feed down again")

        def held(name: str) -> list[dict[str, Any]]:
            return [a for a in alertmanager.alerts() if a["labels"]["alertname"] == name]

        def inhibited() -> bool:
            symptoms = held(WORKER_NOT_READY) + held(FEED_DOWN)
            return len(symptoms) == 2 and all(
                a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                for a in symptoms
            )

        _wait(inhibited, 30, "Alertmanager to hold the symptoms as inhibited")
        causes = {a["fingerprint"] for a in held(KAFKA_DOWN) + held(PARTITIONS_OFFLINE)}
        for symptom in held(WORKER_NOT_READY) + held(FEED_DOWN):
            assert set(symptom["status"]["inhibitedBy"]) <= causes, symptom
        time.sleep(scaled(QUIET_S))
        after_stop = receiver.notified(WEBHOOK_PATH, before)
        firing = {n.labels["alertname"] for n in after_stop if n.status == "firing"}
        assert KAFKA_DOWN in firing and firing <= {KAFKA_DOWN, PARTITIONS_OFFLINE}, [
            (n.receiver, n.status, n.labels) for n in after_stop
        ]
    print(", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
