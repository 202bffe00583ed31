"""``arbstream demo --alerts`` (arbstream/demo_alerts.py): the demo's Prometheus and
Alertmanager configs are the shipped ones, shortened by the speed, and valid to the
real promtool and amtool; a missing binary stops the demo before it starts anything.
The whole chain at work: tests/gateway/test_browser.py (the run-to-120 demo)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from arbstream.demo_alerts import (
    WEBHOOK_PLACEHOLDER,
    alertmanager_config,
    prometheus_config,
    shortened_rules,
)
from arbstream.streams.errors import SetupError
from helpers.alertmanager import amtool
from helpers.paths import REPO
from helpers.prometheus import prometheus_bin_dir

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
ROUTES = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
TARGETS = {"arbstream-worker": 6066, "arbstream-feeds": 9464, "arbstream-gateway": 8080}


def _fors(text: str) -> list[str]:
    return re.findall(r"^\s+for: (\S+)", text, flags=re.M)


def test_every_for_is_divided_by_the_speed_rounded_up_and_zero_stays_zero() -> None:
    shipped = RULES.read_text()
    shortened = shortened_rules(shipped, 60)
    pairs = list(zip(_fors(shipped), _fors(shortened), strict=True))
    assert ("30m", "30s") in pairs and ("1m", "1s") in pairs and ("0m", "0s") in pairs
    assert ("30s", "1s") in pairs  # at least a second
    # only the `for`s changed
    assert re.sub(r"for: \S+", "", shipped) == re.sub(r"for: \S+", "", shortened)
    assert ("5m", "30s") in zip(_fors(shipped), _fors(shortened_rules(shipped, 10)), strict=True)


def test_a_rule_without_a_for_is_refused() -> None:
    with pytest.raises(SetupError, match="rules but"):
        shortened_rules("groups:\n  - rules:\n      - alert: X\n        expr: up == 0\n", 10)


def test_the_webhook_points_at_the_demo_and_group_timings_follow_the_speed() -> None:
    shipped = ROUTES.read_text()
    text = alertmanager_config(shipped, "http://127.0.0.1:5000/arbstream", 60)
    assert WEBHOOK_PLACEHOLDER not in text and "http://127.0.0.1:5000/arbstream" in text
    assert re.findall(r"group_wait: (\S+)", text) == ["1s", "1s", "1s"]  # 1m, 30s, 1m
    assert re.findall(r"repeat_interval: (\S+)", text) == re.findall(
        r"repeat_interval: (\S+)", shipped
    )
    with pytest.raises(SetupError, match="no webhook"):
        alertmanager_config(shipped.replace(WEBHOOK_PLACEHOLDER, "http://x"), "http://y", 1)


def test_the_prometheus_config_scrapes_the_shipped_jobs_on_loopback() -> None:
    config = orjson.loads(prometheus_config("alerts.yml", TARGETS, 9093))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs == {job: [f"127.0.0.1:{port}"] for job, port in TARGETS.items()}
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["external_labels"] == {"stack": "arbstream"}  # inhibitions' equal


@pytest.mark.prometheus
def test_the_demo_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    (tmp_path / "alerts.yml").write_text(shortened_rules(RULES.read_text(), 60))
    (tmp_path / "prometheus.yml").write_text(prometheus_config("alerts.yml", TARGETS, 9093))
    promtool = prometheus_bin_dir() / "promtool"
    checked = subprocess.run(
        [str(promtool), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 20 rules found" in checked.stdout + checked.stderr
    (tmp_path / "am.yml").write_text(alertmanager_config(ROUTES.read_text(), "http://h/a", 60))
    routes = amtool("check-config", tmp_path / "am.yml")
    assert routes.returncode == 0, routes.stdout + routes.stderr


def test_a_missing_binary_stops_the_demo_naming_its_option(tmp_path: Path) -> None:
    env = {**os.environ, "ARBSTREAM_BROKER": "kafka://127.0.0.1:1"}  # never reached
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "arbstream.cli",
            "demo",
            "--config",
            str(REPO / "deploy" / "demo" / "silver.toml"),
            "--alerts",
            f"--prometheus-bin={tmp_path / 'no-prometheus'}",
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--prometheus-bin: no executable" in proc.stderr
    assert not (tmp_path / "logs").exists()  # nothing started
