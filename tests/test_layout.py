"""The project's own wiring: one Kafka version everywhere, CI runs what the README says."""

from __future__ import annotations

import re

from scenario_paths import REPO, SCENARIOS

from streams.config import load_config


def _pom_kafka_version() -> str:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match, "deploy/kafka/pom.xml pins no <kafka.version>"
    return match.group(1)


def test_compose_and_readme_use_the_launcher_kafka_version() -> None:
    version = _pom_kafka_version()
    compose = (REPO / "docker-compose.yml").read_text()
    assert re.findall(r"image:\s*apache/kafka:(\S+)", compose) == [version]
    assert f"Kafka {version}" in (REPO / "README.md").read_text()


def test_ci_runs_make_test_and_readme_gives_the_two_commands() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_streams_core_imports_no_io_layers() -> None:
    forbidden = re.compile(
        r"^\s*(from|import)\s+(agents|feeds|arbstream|faust|aiokafka|asyncio|websockets|"
        r"socket|prometheus_client)\b",
        re.MULTILINE,
    )
    for path in (REPO / "streams").glob("*.py"):
        assert not forbidden.search(path.read_text()), f"{path.name} imports an I/O layer"


def test_demo_config_is_the_dislocation_scenario_plus_feeds() -> None:
    demo = load_config(REPO / "deploy" / "demo" / "silver.toml")
    scenario = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    # the engine computes the same: the live demo is the replay scenario, served live
    assert demo.fingerprint() == scenario.fingerprint()
    assert {f.venue for f in demo.feeds.values() if f.venue} == set(scenario.venue_names)
