"""The project's own wiring: one Kafka version everywhere, CI runs what the README says."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from arbstream.config import load_config
from helpers.paths import REPO, SCENARIOS


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


#: What each package may import of the project (besides itself): streams is the pure
#: core; feeds (venue side) and agents (Kafka side) stand on it and never on each other;
#: the simulator plays the venues' side of the feeds; the gateway serves the committed
#: outputs to subscribers outside Kafka; the command line wires them all.
ALLOWED_IMPORTS = {
    "streams": set(),
    "feeds": {"streams"},
    "agents": {"streams"},
    "simulator": {"streams", "feeds", "agents"},
    "gateway": {"streams", "agents"},
    "arbstream": {"streams", "feeds", "agents", "simulator", "gateway"},
}


def project_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every import of a project package in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ALLOWED_IMPORTS or top in {"benchmarks", "tests"}:
                yield node.lineno, top


def layering_violations(root: Path) -> list[str]:
    problems = []
    for package, allowed in ALLOWED_IMPORTS.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, top in project_imports(path):
                if top != package and top not in allowed:
                    problems.append(f"{path.relative_to(root)}:{line} imports {top}")
    return problems


def test_packages_import_only_downward() -> None:
    assert layering_violations(REPO) == []


def test_the_layering_check_catches_an_upward_import(tmp_path: Path) -> None:
    for package in ALLOWED_IMPORTS:
        (tmp_path / package).mkdir()
    (tmp_path / "feeds" / "bad.py").write_text("from agents.sink import KafkaSink\n")
    (tmp_path / "agents" / "bad.py").write_text("import arbstream.process\n")
    (tmp_path / "simulator" / "ok.py").write_text("from feeds.settings import FeedSettings\n")
    assert sorted(layering_violations(tmp_path)) == [
        "agents/bad.py:1 imports arbstream",
        "feeds/bad.py:1 imports agents",
    ]


def test_every_package_says_what_it_is_for() -> None:
    for package in ALLOWED_IMPORTS:
        doc = ast.get_docstring(ast.parse((REPO / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, package


def test_no_module_is_much_over_400_lines() -> None:
    roots = [*ALLOWED_IMPORTS, "benchmarks"]
    sizes = {p: len(p.read_text().splitlines()) for r in roots for p in (REPO / r).rglob("*.py")}
    assert {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > 450} == {}


def test_streams_core_imports_no_io_layers() -> None:
    forbidden = re.compile(
        r"^\s*(from|import)\s+(agents|feeds|arbstream|simulator|faust|aiokafka|asyncio|"
        r"websockets|socket|prometheus_client|pathlib|os|tomllib)\b",
        re.MULTILINE,
    )
    for path in (REPO / "streams").glob("*.py"):
        if path.name in ("_native.py", "_build.py"):
            continue  # the choice of compiled or source modules, at import (its docstring)
        assert not forbidden.search(path.read_text()), f"{path.name} imports an I/O layer"


def test_demo_config_is_the_dislocation_scenario_plus_feeds() -> None:
    demo = load_config(REPO / "deploy" / "demo" / "silver.toml")
    scenario = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    # the engine computes the same: the live demo is the replay scenario, served live
    assert demo.fingerprint() == scenario.fingerprint()
    assert {f.venue for f in demo.feeds.values() if f.venue} == set(scenario.venue_names)


def test_the_cny_demo_config_is_its_scenario_plus_feeds() -> None:
    demo = load_config(REPO / "deploy" / "demo" / "cny-holiday.toml")
    scenario = load_config(SCENARIOS / "cny-holiday-2026-02" / "config.toml")
    assert demo.fingerprint() == scenario.fingerprint()
    assert {f.venue for f in demo.feeds.values() if f.venue} == set(scenario.venue_names)
    # the bridges carry the stock reports: every venue with one is served natively
    stocks = {
        orjson.loads(line)["venue"]
        for line in (SCENARIOS / "cny-holiday-2026-02" / "ticks.jsonl").read_bytes().splitlines()
        if b'"stock"' in line and line.startswith(b"{")
    } - {None}
    native = {f.venue for f in demo.feeds.values() if f.protocol == "native"}
    assert stocks and stocks <= native
    demo_sh = (REPO / "scripts" / "demo.sh").read_text()
    assert "deploy/demo/cny-holiday.toml" in demo_sh
