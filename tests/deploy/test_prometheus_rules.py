"""The Prometheus side of the deployment: config and alert rules are valid, the alert unit
tests pass, the rules use only contract metric names, and the test server helper works.

Needs Debian's Prometheus 2.42 binaries (``scripts/install-prometheus.sh``); no Kafka.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers.kafka import scaled
from helpers.metric_names import FEED_METRICS, HISTOGRAMS, KAFKA_METRICS, WORKER_METRICS
from helpers.prometheus import (
    REPO,
    PrometheusError,
    PrometheusServer,
    alert_exprs,
    prometheus_bin_dir,
)

# (promtool, and a real Prometheus for its helper)
pytestmark = pytest.mark.prometheus

PROM_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
ALERTS = PROM_DIR / "alerts.yml"
ALERT_TESTS = PROM_DIR / "tests" / "alerts_test.yml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(prometheus_bin_dir() / "promtool"), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
        cwd=REPO,
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(proc.args)}` exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def test_config_is_valid() -> None:
    # also loads and checks rule_files; the dns_sd name "worker" is not resolved here
    assert_ok(promtool("check", "config", CONFIG))


def test_alert_rules_are_valid() -> None:
    assert_ok(promtool("check", "rules", ALERTS))


def test_alert_rules_unit_tests_pass() -> None:
    assert_ok(promtool("test", "rules", ALERT_TESTS))


def test_config_scrapes_the_contract_jobs() -> None:
    text = CONFIG.read_text()
    for job in ("arbstream-worker", "arbstream-feeds", "prometheus"):
        assert re.search(rf"job_name:\s*{job}\s*$", text, re.MULTILINE), job
    assert "feeds:9464" in text
    assert re.search(r"names:\s*\[worker\]", text) and "port: 6066" in text


def test_every_alert_has_a_unit_test() -> None:
    tested = set(re.findall(r"alertname:\s*(\w+)", ALERT_TESTS.read_text()))
    alerts = {name for name, _ in alert_exprs(ALERTS)}
    assert alerts, "no alerting rules found"
    assert alerts - tested == set(), "alerts without a promtool unit test"
    assert tested - alerts == set(), "unit tests of alerts that do not exist"


def test_alerts_use_only_contract_metric_names() -> None:
    # the whole file: exprs, but also names in annotation templates and comments
    used = set(re.findall(r"\barbstream_[a-z0-9_]+", ALERTS.read_text()))
    assert used, "alerts.yml names no arbstream_* metric"
    known = WORKER_METRICS | FEED_METRICS
    histogram_series = {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
    unknown = used - known - histogram_series
    assert not unknown, f"alerts.yml uses metrics outside the contract: {sorted(unknown)}"


def test_metric_name_sets_are_disjoint_and_well_formed() -> None:
    # (both processes serve their view of the cluster's partitions)
    assert WORKER_METRICS & FEED_METRICS == KAFKA_METRICS
    assert HISTOGRAMS <= WORKER_METRICS | FEED_METRICS
    for name in WORKER_METRICS | FEED_METRICS:
        assert re.fullmatch(r"arbstream_[a-z0-9_]+", name), name


def test_prometheus_server_helper_scrapes_and_reports_query_errors() -> None:
    config = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    with PrometheusServer(config) as prom:
        series = prom.wait_for_series('up{job="self"} == 1')
        assert [s["metric"]["instance"] for s in series] == [f"127.0.0.1:{prom.port}"]

        answer = prom.query("up")
        assert answer["status"] == "success"
        assert answer["data"]["resultType"] == "vector"
        assert answer["data"]["result"][0]["value"][1] == "1"

        active = prom.targets()["activeTargets"]
        assert [(t["labels"]["job"], t["health"]) for t in active] == [("self", "up")]

        with pytest.raises(PrometheusError, match=r"bad_data: .*parse error"):
            prom.query("sum(up")


def test_alert_exprs_parse_on_a_real_server() -> None:
    # every rule's expr is accepted by the query API, i.e. by the same engine that
    # evaluates the rules (no series yet, so results are empty but valid)
    with PrometheusServer("global:\n  scrape_interval: 1h\n") as prom:
        for name, expr in alert_exprs(ALERTS):
            assert prom.query(expr)["status"] == "success", name


def test_the_real_config_loads_its_rules_and_jobs() -> None:
    # the deploy config as is, in a real server: rule_files resolves beside the config, all
    # alerts load, and the jobs exist (their compose hostnames do not resolve here, so
    # the feeds and gateway targets are down and dns_sd finds no worker)
    with PrometheusServer(CONFIG.read_text(), files={"alerts.yml": ALERTS.read_text()}) as prom:
        loaded = [
            (group["name"], rule["name"]) for group in prom.rules() for rule in group["rules"]
        ]
        assert loaded == [("arbstream", name) for name, _ in alert_exprs(ALERTS)]
        for rule in prom.rules()[0]["rules"]:
            assert rule["health"] in {"ok", "unknown"}, rule

        prom.wait_for_series('up{job="arbstream-feeds"}')
        jobs = {t["labels"]["job"] for t in prom.targets()["activeTargets"]}
        assert jobs == {"arbstream-feeds", "arbstream-gateway", "prometheus"}


def test_bin_dir_missing_names_the_install_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("helpers.prometheus.TOOLS_BIN", tmp_path / "nothing")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssertionError, match=r"scripts/install-prometheus\.sh"):
        prometheus_bin_dir()
