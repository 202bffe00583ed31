"""The project's own wiring: one Kafka version everywhere, CI runs what the README says."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

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
    "simulator": {"streams", "feeds"},
    "gateway": {"streams", "agents"},
    "arbstream": {"streams", "feeds", "agents", "simulator", "gateway"},
}


#: The layers, each a top-level folder linked into the arbstream namespace.
LAYERS = ("streams", "feeds", "agents", "simulator", "gateway")


def modules(root: Path, package: str) -> list[Path]:
    """The modules of ``package`` (a top-level folder), not those of the layers that
    arbstream/ links in."""
    folder = root / package
    linked = [folder / layer for layer in LAYERS if (folder / layer).is_symlink()]
    return sorted(
        p for p in folder.rglob("*.py") if not any(p.is_relative_to(link) for link in linked)
    )


def project_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, package) of every import of a project package in ``path``: the layer an
    ``arbstream.<layer>`` import reaches, ``arbstream`` for the command line's modules,
    and ``bare <name>`` for a layer imported outside the namespace."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "arbstream":
                yield (
                    node.lineno,
                    parts[1] if len(parts) > 1 and parts[1] in LAYERS else "arbstream",
                )
            elif parts[0] in LAYERS:
                yield node.lineno, f"bare {parts[0]}"


def layering_violations(root: Path) -> list[str]:
    problems = []
    for package, allowed in ALLOWED_IMPORTS.items():
        for path in modules(root, package):
            for line, top in sorted(set(project_imports(path))):
                if top != package and top not in allowed:
                    problems.append(f"{path.relative_to(root)}:{line} imports {top}")
    return problems


def test_packages_import_only_downward() -> None:
    assert layering_violations(REPO) == []


def test_the_layering_check_catches_an_upward_import(tmp_path: Path) -> None:
    for package in ALLOWED_IMPORTS:
        (tmp_path / package).mkdir()
    (tmp_path / "feeds" / "bad.py").write_text("from arbstream.agents.sink import KafkaSink\n")
    (tmp_path / "agents" / "bad.py").write_text("import arbstream.process\n")
    (tmp_path / "agents" / "worse.py").write_text("from arbstream import demo\n")
    (tmp_path / "gateway" / "bare.py").write_text("from streams.engine import Engine\n")
    (tmp_path / "simulator" / "ok.py").write_text("from arbstream.feeds import settings\n")
    assert sorted(layering_violations(tmp_path)) == [
        "agents/bad.py:1 imports arbstream",
        "agents/worse.py:1 imports arbstream",
        "feeds/bad.py:1 imports agents",
        "gateway/bare.py:1 imports bare streams",
    ]


def test_every_layer_is_in_the_namespace_and_only_there() -> None:
    """``pip install .`` installs ``arbstream`` alone: each layer is linked into it, and
    nothing in the project, its tests or its benchmarks imports a layer by a bare name."""
    for layer in LAYERS:
        link = REPO / "arbstream" / layer
        assert link.is_symlink() and link.resolve() == (REPO / layer).resolve(), layer
    bare = [
        f"{path.relative_to(REPO)}:{line}"
        for root in ("arbstream", *LAYERS, "tests", "benchmarks")
        for path in modules(REPO, root)
        if "vendor" not in path.parts and path.name not in ("v1_digests.py", "v2_digests.py")
        for line, top in project_imports(path)
        if top.startswith("bare ")
    ]
    assert bare == []


def test_every_package_says_what_it_is_for() -> None:
    for package in ALLOWED_IMPORTS:
        doc = ast.get_docstring(ast.parse((REPO / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, package


def test_no_module_is_much_over_400_lines() -> None:
    roots = [*ALLOWED_IMPORTS, "benchmarks"]
    sizes = {p: len(p.read_text().splitlines()) for r in roots for p in modules(REPO, r)}
    assert {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > 450} == {}


def test_streams_core_imports_no_io_layers() -> None:
    forbidden = re.compile(
        # (arbstream but for arbstream.streams itself)
        r"^\s*(from|import)\s+(arbstream(?!\.streams\b)|faust|aiokafka|asyncio|websockets|"
        r"socket|prometheus_client|pathlib|os|tomllib)\b",
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


@pytest.mark.parametrize(
    ("demo", "scenario", "served", "natively"),
    [
        ("cny-holiday.toml", "cny-holiday-2026-02", b'"stock"', {"COMEX_H6", "SHFE_AG2606"}),
        ("run-to-120.toml", "run-to-120-2026-01", b'"status"', {"COMEX", "SLV"}),
    ],
)
def test_a_demo_config_is_its_scenario_plus_feeds(
    demo: str, scenario: str, served: bytes, natively: set[str]
) -> None:
    """The demo's engine computes what a replay of its scenario computes, every venue has
    a feed, and the records only a bridge carries (stock reports, status records) have
    one: the venues that send them are served natively."""
    config = load_config(REPO / "deploy" / "demo" / demo)
    expected = load_config(SCENARIOS / scenario / "config.toml")
    assert config.fingerprint() == expected.fingerprint()
    assert {f.venue for f in config.feeds.values() if f.venue} == set(expected.venue_names)
    sending = {
        orjson.loads(line)["venue"]
        for line in (SCENARIOS / scenario / "ticks.jsonl").read_bytes().splitlines()
        if served in line and line.startswith(b"{")
    } - {None}
    native = {f.venue for f in config.feeds.values() if f.protocol == "native"}
    assert sending == natively and sending <= native
    assert f"deploy/demo/{demo}" in (REPO / "scripts" / "demo.sh").read_text()
