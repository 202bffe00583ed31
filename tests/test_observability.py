"""The operators' surface, with the real tools: ``arbstream simulate`` -> ``arbstream feed``
-> Kafka -> ``arbstream worker``, scraped by a real Prometheus that loads the shipped
alert rules; every dashboard query and every alert expression goes through its HTTP API.

Junk arrives as it would in production, to prove the label sets stay bounded: a Binance
venue sending symbols the config does not map, a bridge sending instruments the metrics
config does not list, and quotes from unknown venues written straight to the ticks topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from helpers.grafana_queries import dashboard_queries, row_panel_titles, template_queries
from helpers.http import get
from helpers.kafka import free_port, produce, scaled
from helpers.metric_names import (
    FEED_METRICS,
    HISTOGRAMS,
    LEVEL_METRICS,
    MARKET_METRICS,
    WORKER_METRICS,
)
from helpers.paths import REPO, SCENARIOS
from helpers.pipeline import Worker, arbstream_process
from helpers.prometheus import PrometheusServer, alert_exprs

# (a real Prometheus scraping real processes on a real broker)
pytestmark = [pytest.mark.prometheus, pytest.mark.kafka]

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
DEMO_CONFIG = REPO / "deploy" / "demo" / "silver.toml"
CNY_SCENARIO = SCENARIOS / "cny-holiday-2026-02"
CNY_CONFIG = REPO / "deploy" / "demo" / "cny-holiday.toml"
RUN_TO_120 = SCENARIOS / "run-to-120-2026-01"
RUN_TO_120_CONFIG = REPO / "deploy" / "demo" / "run-to-120.toml"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "arbstream.json"
JUNK_INSTRUMENTS = 40
JUNK_VENUES = 60

JUNK_FEEDS = """
[feeds.junkbin]
protocol = "binance"
url = "ws://127.0.0.1:{junk}/junkbin"
venue = "LBMA"
symbols = {{ XAGUSD = "XAG" }}

[feeds.junkbridge]
protocol = "native"
url = "ws://127.0.0.1:{junk}/junkbridge"
venue = "COMEX"
"""

PROMETHEUS = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: arbstream-worker
    static_configs: [{{targets: ["127.0.0.1:{worker}"]}}]
  - job_name: arbstream-feeds
    static_configs: [{{targets: ["127.0.0.1:{feeds}"]}}]
"""


def _quote(venue: str, instrument: str, ts: int) -> dict[str, object]:
    return {"type": "quote", "venue": venue, "instrument": instrument, "bid": 1.0, "ask": 1.1,
            "ts": ts}  # fmt: skip


class JunkVenue:
    """A WebSocket server sending what the config does not know: Binance frames of
    unmapped symbols (``/junkbin``) and bridge quotes of unlisted instruments."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: Server = serve(self._handle, "127.0.0.1", port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> JunkVenue:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(10)

    def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        seq = itertools.count(1)
        try:
            if path == "/junkbin":
                ws.recv(timeout=10)  # SUBSCRIBE
                ws.send('{"result":null,"id":1}')
            while True:
                n = next(seq)
                now = int(time.time() * 1000)
                if path == "/junkbin":
                    frame = {"e": "bookTicker", "u": n, "E": now, "T": now, "s": f"J{n}USDT",
                             "b": "1.0", "B": "1", "a": "1.1", "A": "1"}  # fmt: skip
                else:
                    frame = _quote("COMEX", f"J{n % JUNK_INSTRUMENTS}", now)
                ws.send(orjson.dumps(frame).decode())
                time.sleep(0.02)
        except (ConnectionClosed, TimeoutError, OSError):
            return


@dataclass
class Stack:
    prometheus: PrometheusServer
    worker_port: int
    feeds_port: int
    prefix: str
    logs: Path

    def values(self, expr: str) -> list[tuple[dict[str, str], float]]:
        result = self.prometheus.query(expr)["data"]["result"]
        return [(r["metric"], float(r["value"][1])) for r in result]


def _configs(tmp: Path, demo_config: Path, prefix: str, junk_port: int | None) -> tuple[Path, Path]:
    """The demo config on free ports and a fresh prefix, for the simulator; the same plus
    the junk feeds (if any) for the feeds and the worker (feeds do not enter the
    fingerprint)."""
    text = demo_config.read_text().replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    for port in sorted(set(re.findall(r"127\.0\.0\.1:(\d+)/", text))):
        text = text.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{free_port()}/")
    text = text.replace("[producer]", "[kafka]\npartitions = 4\n\n[producer]")
    simulator, feeds = tmp / "simulator.toml", tmp / "feeds.toml"
    simulator.write_text(text)
    junk = "" if junk_port is None else JUNK_FEEDS.format(junk=junk_port)
    feeds.write_text(text + junk)
    return simulator, feeds


def _http_status(url: str) -> int:
    return get(url, 5)[0]


@contextlib.contextmanager
def _pipeline(
    kafka_bootstrap: str,
    tmp: Path,
    demo_config: Path,
    scenario: Path,
    simulate_args: list[str],
    ready: Callable[[Stack], bool],
    junk: bool,
    ready_within_s: float = 90,
) -> Iterator[Stack]:
    """simulate -> feed -> Kafka -> worker, scraped by a Prometheus with the shipped alert
    rules; yields once ``ready(stack)`` holds (or after ``ready_within_s``, scaled)."""
    prefix = f"obs-{uuid.uuid4().hex[:8]}"
    junk_port, feeds_port = free_port(), free_port()
    simulator_config, feeds_config = _configs(tmp, demo_config, prefix, junk_port if junk else None)
    env = {
        **os.environ,
        "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}",
        "ARBSTREAM_FEED_METRICS_PORT": str(feeds_port),
        "MASSIVE_API_KEY": "test-key",
    }
    procs: list[subprocess.Popen[bytes]] = []
    worker = Worker(feeds_config, kafka_bootstrap, tmp / "worker.log")
    worker_port = worker.web_port
    prometheus = PrometheusServer(
        PROMETHEUS.format(worker=worker_port, feeds=feeds_port),
        files={"alerts.yml": ALERTS.read_text()},
    )
    try:
        with contextlib.ExitStack() as services:
            if junk:
                services.enter_context(JunkVenue(junk_port))
            services.enter_context(prometheus)
            worker.wait_ready()
            feed = ["feed", "--config", str(feeds_config)]
            procs.append(arbstream_process(feed, env, tmp / "feeds.log"))
            simulate = ["simulate", "--config", str(simulator_config), *simulate_args]
            simulate += ["--scenario", str(scenario / "ticks.jsonl")]
            procs.append(arbstream_process(simulate, env, tmp / "simulator.log"))
            if junk:
                unknown_venues = [
                    (b"XAG", orjson.dumps(_quote(f"NOWHERE{i}", "XAG", 1)), None)
                    for i in range(JUNK_VENUES)
                ]
                asyncio.run(produce(kafka_bootstrap, Topics(prefix).ticks, unknown_venues))
            stack = Stack(prometheus, worker_port, feeds_port, prefix, tmp)
            deadline = time.monotonic() + scaled(ready_within_s)
            while time.monotonic() < deadline and not ready(stack):
                time.sleep(1)
            yield stack
    finally:
        for proc in procs:
            if proc.alive():
                proc.terminate()
        for proc in procs:
            proc.wait(scaled(30))
        worker.stop()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The dislocation scenario looped at speed 20, with junk from every side."""

    def ready(stack: Stack) -> bool:
        # Enough history for rate() over 1m windows, and arbitrage opened meanwhile.
        opens = stack.values('arbstream_signals_total{kind="arb",event="open"}')
        return bool(opens) and opens[0][1] > 0 and _history_s(stack) >= 20

    with _pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("observability"),
        DEMO_CONFIG,
        SCENARIO,
        ["--loop", "--speed", "20"],
        ready,
        junk=True,
    ) as stack:
        yield stack


def _history_s(stack: Stack) -> float:
    samples = stack.values("count_over_time(arbstream_worker_ready[5m])")
    return samples[0][1] if samples else 0.0


def test_both_processes_are_scraped_and_healthy(stack: Stack) -> None:
    up = {m["job"]: v for m, v in stack.values("up")}
    assert up == {"arbstream-worker": 1.0, "arbstream-feeds": 1.0}
    for port in (stack.worker_port, stack.feeds_port):
        assert _http_status(f"http://127.0.0.1:{port}/healthz") == 200
    assert _http_status(f"http://127.0.0.1:{stack.worker_port}/readyz") == 200
    assert _http_status(f"http://127.0.0.1:{stack.feeds_port}/readyz") == 200
    assert [v for _, v in stack.values("arbstream_worker_ready")] == [1.0]
    assert [v for _, v in stack.values("arbstream_feeds_ready")] == [1.0]


def test_every_contract_metric_is_exported(stack: Stack) -> None:
    """All but market structure, which needs basis pairs and stock reports, and price
    levels, which need ``[[levels]]`` (the cny_stack and levels_stack tests below)."""
    worker = WORKER_METRICS - MARKET_METRICS - LEVEL_METRICS
    for job, names in (("arbstream-worker", worker), ("arbstream-feeds", FEED_METRICS)):
        exported = {
            m["__name__"] for m, _ in stack.values(f'count by (__name__) ({{job="{job}"}})')
        }
        want = {f"{n}_count" if n in HISTOGRAMS else n for n in names}
        assert want <= exported, f"{job} lacks {sorted(want - exported)}"
    assert stack.values("arbstream_arb_open == 1"), "an arbitrage is open in the scenario"


def test_label_values_stay_bounded_under_junk(stack: Stack) -> None:
    config = load_config(stack.logs / "feeds.toml")
    junk = stack.values('arbstream_feed_bad_frames_total{feed="junkbin"}')
    assert junk and junk[0][1] > 10, "the unmapped Binance symbols arrived as bad frames"
    unknown = stack.values('arbstream_rejected_total{reason="unknown_venue"}')
    assert unknown[0][1] >= JUNK_VENUES
    other = stack.values('arbstream_ticks_total{instrument="other"}')
    assert other and other[0][1] > 0, "the bridge's unlisted instruments were counted"

    def label_values(label: str) -> set[str]:
        return {m[label] for m, _ in stack.values(f'group by ({label}) ({{{label}!=""}})')}

    assert label_values("venue") == set(config.venue_names)
    assert label_values("instrument") == {"XAG", "other"}
    assert label_values("feed") == set(config.feeds)
    venues = config.venue_names
    assert label_values("pair") <= {f"{a}|{b}" for a in venues for b in venues} | {"USDCNY"}
    assert label_values("route") <= {f"{r.buy}>{r.sell}" for r in config.routes}
    series = stack.values('count({__name__=~"arbstream_.+"})')[0][1]
    assert series < 500, f"{series} arbstream series"  # histograms: about 130


def _without_series(stack: Stack, queries: list[tuple[str, str]]) -> list[str]:
    """The queries that returned no series within 30 s (scaled): a query on an event (an
    open arbitrage) may need a moment."""
    deadline = time.monotonic() + scaled(30)
    pending = list(queries)
    while pending:
        pending = [(t, q) for t, q in pending if not stack.values(q)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    return [f"{title}: {expr}" for title, expr in pending]


#: The panels and annotations of halts and price levels (levels_stack).
HALT_PANELS = {
    "Venue halts (halted/trading)",
    "Price levels: side now and crosses (time range)",
    "annotation: Level crossed",
    "annotation: Venue halted",
}
#: The panels of market structure: basis pairs and stock reports (cny_stack).
MARKET_PANELS = row_panel_titles(DASHBOARD, "Market structure") - HALT_PANELS


def test_every_dashboard_query_returns_series(stack: Stack) -> None:
    queries = dashboard_queries(DASHBOARD) + template_queries(DASHBOARD)
    assert len(queries) >= 20 and len(MARKET_PANELS) >= 5
    queries = [(t, q) for t, q in queries if t not in MARKET_PANELS | HALT_PANELS]
    empty = _without_series(stack, queries)
    assert not empty, "queries without series:\n" + "\n".join(empty)


#: Alerts whose expression has no comparison that `bool` can turn into a 0/1 series.
WITHOUT_BOOL_FORM = {"ArbstreamWorkerAbsent", "ArbstreamDlqRateHigh"}
#: Alerts on market structure: their series exist only with basis pairs and stock
#: reports (cny_stack).
MARKET_ALERTS = {"ArbstreamBackwardation", "ArbstreamLeaseRateHigh", "ArbstreamDeliveryCoverageLow"}


def _joins_nothing(stack: Stack, names: set[str]) -> list[str]:
    """The alerts among ``names`` whose expression's `bool` form returns no series: on
    healthy data an alert returns nothing, and so would a join that matches nothing."""
    out = []
    for name, expr in alert_exprs(ALERTS):
        stack.prometheus.query(expr)  # raises with Prometheus's error on a bad expression
        if name not in names or name in WITHOUT_BOOL_FORM:
            continue
        as_bool = re.sub(r"\s(==|>|<)\s", r" \1 bool ", expr, count=1)
        assert as_bool != expr, name
        if not stack.values(as_bool):
            out.append(f"{name}: {as_bool}")
    return out


def _rules(stack: Stack) -> list[dict[str, Any]]:
    """The alerting rules once each has been evaluated (or after 10 s, scaled)."""
    deadline = time.monotonic() + scaled(10)
    while True:
        rules = [r for g in stack.prometheus.rules() for r in g["rules"]]
        if all(r.get("lastEvaluation", "").startswith("20") for r in rules) or (
            time.monotonic() > deadline
        ):
            return rules
        time.sleep(0.5)


def test_every_alert_expression_evaluates(stack: Stack) -> None:
    names = {name for name, _ in alert_exprs(ALERTS)}
    joins_nothing = _joins_nothing(stack, names - MARKET_ALERTS)
    assert not joins_nothing, "\n".join(joins_nothing)
    rules = _rules(stack)
    assert names == {r["name"] for r in rules}
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    firing = {r["name"] for r in rules if r["state"] == "firing"}
    assert "ArbstreamFeedDown" not in firing
    assert "ArbstreamWorkerNotReady" not in firing


# ---- market structure: the Chinese New Year scenario ------------------------------------
# Friday 2026-02-13 from 06:30 UTC at speed 200: Shanghai closes for the day (15:30 local),
# London opens at 08:00, COMEX's stock report shows registered metal below half its open
# interest, SHUIBEI's dealer board falls silent, and at 08:45 UTC (about 41 s in) the
# scenario pauses for the weekend: every gauge then holds still.


@pytest.fixture(scope="module")
def cny_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    def ready(stack: Stack) -> bool:
        # The pause reached: the delivery signal opened, SHUIBEI's last quote (7,196 s in)
        # is more than 800 s behind the clock (at 8,101 s), Shanghai closed, London open.
        # (Not a count of closes: the feeds interleave venues differently run to run.)
        delivery = stack.values('arbstream_signals_total{kind="delivery",event="open"}')
        behind = stack.values(
            'min(arbstream_quote_age_seconds{clock="instrument",venue="SHUIBEI"}) > 800'
        )
        opened = {m["venue"]: v for m, v in stack.values("arbstream_venue_open")}
        return bool(delivery and delivery[0][1] >= 1 and behind) and opened == CNY_OPEN_AT_PAUSE

    with _pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("observability-cny"),
        CNY_CONFIG,
        CNY_SCENARIO,
        ["--speed", "200"],
        ready,
        junk=False,
        ready_within_s=150,  # the pause is 41 s of the scenario at 200x, after start-up
    ) as stack:
        yield stack


#: Which venues are in session at 08:45 UTC on Friday 2026-02-13.
CNY_OPEN_AT_PAUSE = {"COMEX_H6": 1.0, "LBMA": 1.0, "SGE": 0.0, "SHFE_AG2606": 0.0, "SHUIBEI": 1.0}


def test_market_structure_metrics_are_exported(cny_stack: Stack) -> None:
    exported = {
        m["__name__"] for m, _ in cny_stack.values('count by (__name__) ({job="arbstream-worker"})')
    }
    assert MARKET_METRICS | {"arbstream_venue_open"} <= exported
    opened = {m["venue"]: v for m, v in cny_stack.values("arbstream_venue_open")}
    assert opened == CNY_OPEN_AT_PAUSE
    # Shanghai was open earlier in the run, and closed for the day since
    was = {m["venue"]: v for m, v in cny_stack.values("max_over_time(arbstream_venue_open[5m])")}
    assert was["SGE"] == 1.0
    coverage = cny_stack.values("arbstream_delivery_coverage")
    assert [(m["venue"], v < 0.5) for m, v in coverage] == [("COMEX_H6", True)]
    assert [v for _, v in cny_stack.values("arbstream_delivery_open")] == [1.0]
    basis = {(m["spot"], m["future"]) for m, _ in cny_stack.values("arbstream_basis_bps")}
    assert basis == {("LBMA", "COMEX_H6")}  # Shanghai's pair is closed
    opens = cny_stack.values('arbstream_signals_total{kind="basis",event="open"}')
    assert opens and opens[0][1] >= 2


def test_market_structure_panels_return_series(cny_stack: Stack) -> None:
    queries = [(t, q) for t, q in dashboard_queries(DASHBOARD) if t in MARKET_PANELS]
    assert len(queries) >= 7
    empty = _without_series(cny_stack, queries)
    assert not empty, "queries without series:\n" + "\n".join(empty)


def test_market_structure_alerts_and_closed_venues(cny_stack: Stack) -> None:
    joins_nothing = _joins_nothing(cny_stack, MARKET_ALERTS | {"ArbstreamQuoteStale"})
    assert not joins_nothing, "\n".join(joins_nothing)
    # Shanghai's quotes are hours behind the instrument clock, as SHUIBEI's are minutes
    # behind: the closed venues are not stale, the silent dealer board is.
    behind = {
        m["venue"]
        for m, _ in cny_stack.values(
            'arbstream_quote_age_seconds{clock="instrument"} > on (venue) group_left () '
            "arbstream_venue_stale_seconds"
        )
    }
    assert {"SGE", "SHFE_AG2606", "SHUIBEI"} <= behind
    rules = {r["name"]: r for r in _rules(cny_stack)}
    unhealthy = [(n, r.get("lastError")) for n, r in rules.items() if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    stale = {a["labels"]["venue"] for a in rules["ArbstreamQuoteStale"]["alerts"]}
    assert stale == {"SHUIBEI"}
    low = [a["labels"]["venue"] for a in rules["ArbstreamDeliveryCoverageLow"]["alerts"]]
    assert low == ["COMEX_H6"]
    assert rules["ArbstreamDeliveryCoverageLow"]["state"] == "firing"


# ---- halts and price levels: the run to $120 ----------------------------------------------
# At speed 60 the hour passes in one minute (once: the simulator does not loop here):
# $100 at 4 s, $120 from 29 s (it crosses up and down twice), back under $100 at 38 s,
# and COMEX halted by its circuit breaker from 39 s to 47 s.


@pytest.fixture(scope="module")
def levels_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    def ready(stack: Stack) -> bool:
        # (over the last minutes: the halt lasts 8 s, and may fall between two looks)
        halted = stack.values('max_over_time(arbstream_venue_halted{venue="COMEX"}[5m]) == 1')
        crosses = stack.values("sum(arbstream_level_crosses_total)")
        return bool(halted) and bool(crosses) and crosses[0][1] >= 6

    with _pipeline(
        kafka_bootstrap,
        tmp_path_factory.mktemp("observability-levels"),
        RUN_TO_120_CONFIG,
        RUN_TO_120,
        ["--speed", "60"],
        ready,
        junk=False,
        ready_within_s=120,
    ) as stack:
        yield stack


def test_halts_and_levels_are_exported_as_the_scenario_says(levels_stack: Stack) -> None:
    halted = {
        m["venue"]: v for m, v in levels_stack.values("max_over_time(arbstream_venue_halted[10m])")
    }
    assert halted["COMEX"] == 1.0 and halted["LBMA"] == 0.0
    sides = {m["name"]: v for m, v in levels_stack.values("arbstream_level_side")}
    assert sides == {"100": -1.0, "resistance-120": -1.0, "support-54": 1.0, "support-56": 1.0}
    crosses = {
        (m["name"], m["direction"]): v
        for m, v in levels_stack.values("arbstream_level_crosses_total")
    }
    assert crosses[("100", "up")] == crosses[("100", "down")] == 1.0
    assert crosses[("resistance-120", "up")] == crosses[("resistance-120", "down")] == 2.0
    assert crosses[("support-54", "down")] == 0.0  # configured, never reached
    halts = levels_stack.values('arbstream_signals_total{kind="halt",event="open"}')
    assert halts and halts[0][1] == 2.0  # the ETF's creations, then COMEX's circuit breaker


def test_halt_and_level_panels_return_series(levels_stack: Stack) -> None:
    queries = [(t, q) for t, q in dashboard_queries(DASHBOARD) if t in HALT_PANELS]
    assert len(queries) == 6
    # over the last 10 minutes: the halt and the crosses are events, over by now
    over_time = [(t, f"max_over_time(({q})[10m:5s])") for t, q in queries]
    empty = _without_series(levels_stack, over_time)
    assert not empty, "queries without series:\n" + "\n".join(empty)
    rules = {r["name"]: r for r in _rules(levels_stack)}
    assert rules["ArbstreamVenueHalted"]["health"] == "ok"
    # at most pending: 8 minutes of event time (8 s here) is far from its 30 minutes
    assert all(a["state"] == "pending" for a in rules["ArbstreamVenueHalted"]["alerts"])
