"""The docker compose stack: docker-compose.yml, Dockerfile, .dockerignore and
deploy/compose/silver.toml, checked without a Docker engine.

- The file is valid Compose: against the Compose Specification's JSON schema (the copy
  check-jsonschema ships, ``vendor.compose-spec``) always, and with ``docker compose config
  -q`` too where the compose plugin is installed.
- What the schema cannot see: every arbstream service runs an arbstream command that
  exists with options it accepts; every ``--config`` is a file the image has (mapped
  back through the Dockerfile's COPY to the repo file) and loads; the compose config is
  the demo config but for the feed hosts, which are compose services; bind mounts exist;
  depends_on names services that can satisfy the condition; the worker scales; the image
  is multi-stage and runs as a non-root user; Prometheus, Alertmanager and Grafana see the
  files of deploy/prometheus, deploy/alertmanager and deploy/grafana where their configs
  expect them, and Prometheus sends its alerts to the stack's Alertmanager.

The Kafka image version is test_layout.py's business (it must equal the launcher's).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from arbstream.config import load_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DEMO_CONFIG = REPO / "deploy" / "demo" / "silver.toml"
COMPOSE_CONFIG = REPO / "deploy" / "compose" / "silver.toml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

#: The console script of the interpreter running the tests (.venv/bin/arbstream).
ARBSTREAM = Path(sys.executable).with_name("arbstream")
#: Services built from ./Dockerfile (the shared x-arbstream anchor).
ARBSTREAM_SERVICES = {"topics", "worker", "feeds", "simulator", "gateway"}
#: Host ports of the stack (the metrics contract: kafka, feeds, prometheus, grafana; and
#: Alertmanager's API).
PUBLISHED = {
    "kafka": 9092,
    "feeds": 9464,
    "gateway": 8080,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
}
TIMEOUT_S = 120


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())  # resolves anchors and `<<` merges


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = _yaml(COMPOSE)
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


# ---- validity --------------------------------------------------------------------------
def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", path],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _docker_compose() -> list[str] | None:
    """``docker compose`` if the plugin answers ``version``, else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if probe.returncode == 0 else None


def test_compose_file_is_valid_compose() -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    docker_compose = _docker_compose()
    if docker_compose is not None:  # the real parser as well, where it is installed
        config = subprocess.run(
            [*docker_compose, "-f", str(COMPOSE), "config", "-q"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("  init: true", "  inti: true"),  # a misspelt key, inside the merged anchor
        ("service_completed_successfully", "service_completed"),  # an unknown condition
        # a wrong type (the schema takes any string for a port: _published() parses them)
        ('    ports:\n      - "9464:9464"', '    ports: "9464:9464"'),
    ],
)
def test_the_schema_check_catches_mistakes(tmp_path: Path, good: str, bad: str) -> None:
    text = COMPOSE.read_text()
    assert good in text
    path = tmp_path / "docker-compose.yml"
    path.write_text(text.replace(good, bad, 1))
    assert _check_jsonschema(path).returncode != 0


# ---- the arbstream services ------------------------------------------------------------
def test_arbstream_services_share_one_image_build_and_broker(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == ARBSTREAM_SERVICES
    # one anchor, not copies: a single build section in the file
    assert len(re.findall(r"^\s+build:", COMPOSE.read_text(), re.MULTILINE)) == 1
    first = services["worker"]
    for name in ARBSTREAM_SERVICES:
        service = services[name]
        assert service["image"] == first["image"], name
        assert service["build"] == first["build"], name
        assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]) == (DOCKERFILE)
        assert service["environment"]["ARBSTREAM_BROKER"] == "kafka://kafka:29092", name


def test_the_broker_address_is_kafkas_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka_env = services["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    broker = services["worker"]["environment"]["ARBSTREAM_BROKER"].removeprefix("kafka://")
    assert f"INTERNAL://{broker}" in advertised
    assert f"INTERNAL://0.0.0.0:{broker.rpartition(':')[2]}" in (
        kafka_env["KAFKA_LISTENERS"].split(",")
    )


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _config_path(command: list[str]) -> str:
    for i, arg in enumerate(command):
        if arg == "--config":
            return command[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    raise AssertionError(f"no --config in {command}")


@pytest.mark.parametrize("name", sorted(ARBSTREAM_SERVICES))
def test_each_service_runs_an_arbstream_command_that_exists(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    command = _command(services[name])
    expected = {
        "topics": "topics",
        "worker": "worker",
        "feeds": "feed",
        "simulator": "simulate",
        "gateway": "gateway",
    }
    assert command[0] == expected[name]
    # the service's own arguments plus --help: click rejects unknown options (status 2)
    # before it honours --help, so this checks the subcommand and every option name
    result = subprocess.run(
        [str(ARBSTREAM), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Usage: arbstream {command[0]}" in result.stdout


# ---- the image -------------------------------------------------------------------------
def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (also inside a continuation) and blank lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY instructions from the build context."""
    copies = []
    for keyword, args in stage:
        if keyword not in {"COPY", "ADD"}:
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        copies.append((paths[:-1], paths[-1]))
    return copies


def _repo_file_at(image_path: str) -> Path | None:
    """The repo file the final stage COPYs to ``image_path``, if any (later COPYs win)."""
    found = None
    target = PurePosixPath(image_path)
    for sources, dest in _copies(_stages()[-1]):
        into_dir = dest.endswith("/") or len(sources) > 1
        for source in sources:
            base = (
                PurePosixPath(dest) / PurePosixPath(source).name
                if into_dir
                else (PurePosixPath(dest))
            )
            if target == base:
                found = REPO / source
            elif (REPO / source).is_dir() and target.is_relative_to(base):
                found = REPO / source / target.relative_to(base)
    return found


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    stages = _stages()
    assert len(stages) >= 2
    bases = [args.split()[0] for (_, args), *_ in stages]
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    final = dict(stages[-1])  # last of each instruction in the runtime stage
    user = final["USER"].split(":")[0]
    assert user not in {"root", "0"}, user
    assert json.loads(final["ENTRYPOINT"]) == ["arbstream"]
    assert {"6066", "9464"} <= set(final["EXPOSE"].split())
    # the runtime stage takes the venv from a build stage and installs nothing itself
    assert any(k == "COPY" and "--from=builder" in a for k, a in stages[-1])
    assert not any(k == "RUN" and "pip install" in a for k, a in stages[-1])


def test_the_builder_installs_with_the_pins() -> None:
    builder = _stages()[0]
    copied = {source for sources, _ in _copies(builder) for source in sources}
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= copied
    installs = [a for k, a in builder if k == "RUN" and "pip install" in a]
    assert installs
    for run in installs:  # every install in the builder is held to constraints.txt
        for install in re.findall(r"pip install[^&]*", run):
            assert "-c constraints.txt" in install, install
    # every package setuptools would find is copied in
    for package in ("streams", "agents", "feeds", "arbstream"):
        assert package in copied, package


def _dockerignore_excludes(relative: str) -> bool:
    """Whether .dockerignore keeps ``relative`` (or a folder holding it) out of the build
    context. Last matching pattern wins, `!` re-includes, `**/` matches at any depth."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = PurePosixPath(relative).parts
    for depth in range(1, len(parts) + 1):
        candidate = parts[:depth]
        excluded = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            glob = pattern.removeprefix("!").strip("/")
            if glob.startswith("**/"):
                hit = any(
                    fnmatch.fnmatchcase("/".join(candidate[i:]), glob[3:])
                    for i in range(len(candidate))
                )
            else:
                hit = fnmatch.fnmatchcase("/".join(candidate), glob)
            if hit:
                excluded = not negated
        if excluded:
            return True
    return False


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    sources = [s for stage in _stages() for sources, _ in _copies(stage) for s in sources]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _dockerignore_excludes(source), f".dockerignore excludes {source}"
    # and the big local directories stay out
    for local in (".venv", ".git", ".tools", ".kafka", "out", "benchmarks/results"):
        assert _dockerignore_excludes(local), local


# ---- configs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARBSTREAM_SERVICES))
def test_each_config_is_a_file_in_the_image_and_loads(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    image_path = _config_path(_command(services[name]))
    source = _repo_file_at(image_path)
    assert source is not None, f"the Dockerfile copies nothing to {image_path}"
    assert source.is_file(), source
    config = load_config(source)
    if name in {"feeds", "simulator"}:
        assert config.feeds, f"{source} has no [feeds.*] for `{name}`"


def test_every_service_uses_the_compose_config(services: dict[str, dict[str, Any]]) -> None:
    paths = {_repo_file_at(_config_path(_command(services[n]))) for n in ARBSTREAM_SERVICES}
    assert paths == {COMPOSE_CONFIG}


def test_compose_config_is_the_demo_config_but_for_feed_hosts() -> None:
    demo = tomllib.loads(DEMO_CONFIG.read_text())
    ours = tomllib.loads(COMPOSE_CONFIG.read_text())
    assert ours["feeds"].keys() == demo["feeds"].keys()
    for name, feed in ours["feeds"].items():
        mine, theirs = urlsplit(feed["url"]), urlsplit(demo["feeds"][name]["url"])
        assert (mine.hostname, theirs.hostname) == ("simulator", "127.0.0.1"), name
        assert mine._replace(netloc=theirs.netloc) == theirs, name
        assert mine.port == theirs.port, name
        feed["url"] = demo["feeds"][name]["url"]
    assert ours == demo
    assert load_config(COMPOSE_CONFIG).fingerprint() == load_config(DEMO_CONFIG).fingerprint()


def test_feeds_reach_the_simulator_and_have_their_keys(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_config(COMPOSE_CONFIG)
    hosts = {urlsplit(feed.url).hostname for feed in config.feeds.values()}
    assert hosts == {"simulator"}
    assert services["simulator"].get("hostname") == "simulator"
    assert "simulator" in services["feeds"]["depends_on"]
    environment = services["feeds"]["environment"]
    for name, feed in config.feeds.items():
        if feed.api_key_env:  # a placeholder is enough for the simulator; never empty
            assert str(environment.get(feed.api_key_env, "")).strip(), name


# ---- wiring ----------------------------------------------------------------------------
def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, _, rest = volume.partition(":")
        if source.startswith((".", "/", "~")):
            mounts.append((source, rest.partition(":")[0]))
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repo path that a bind mount puts at ``container_path`` (deepest mount wins)."""
    target = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for source, destination in _bind_mounts(service):
        mount = PurePosixPath(destination)
        if target.is_relative_to(mount) and (best is None or len(mount.parts) > best[0]):
            best = (len(mount.parts), REPO / source / target.relative_to(mount))
    return None if best is None else best[1]


def test_bind_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source, _ in _bind_mounts(service):
            assert source.startswith("./"), f"{name}: {source} is not inside the repo"
            assert (REPO / source).exists(), f"{name}: {source}"
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.startswith((".", "/", "~")):
                assert volume.partition(":")[0] in declared, f"{name}: {volume}"


def test_depends_on_names_services_that_can_satisfy_it(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for other, spec in depends.items():
            assert other in services, f"{name} depends on unknown {other}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[other], f"{other} has no healthcheck"
            if condition == "service_completed_successfully":
                # a one-shot: a restart policy of always/unless-stopped would rerun it
                assert services[other].get("restart", "no") in {"no", "on-failure"} or (
                    str(services[other]["restart"]).startswith("on-failure")
                ), other
    assert services["worker"]["depends_on"]["topics"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")  # `--scale worker=3` would fight over a host port
    assert "hostname" not in worker
    health = " ".join(worker["healthcheck"]["test"])
    assert "/readyz" in health and "ARBSTREAM_WEB_PORT" in health


def _published(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.add(int(port["published"]))
        elif ":" in str(port):  # [host_ip:]published:target[/protocol]
            ports.add(int(str(port).split(":")[-2].split("-")[0]))
    return ports


def test_published_ports_are_the_documented_ones(services: dict[str, dict[str, Any]]) -> None:
    for name, port in PUBLISHED.items():
        assert _published(services[name]) == {port}, name
    env = services["feeds"]["environment"]
    assert int(env["ARBSTREAM_FEED_METRICS_PORT"]) == PUBLISHED["feeds"]
    assert int(services["worker"]["environment"]["ARBSTREAM_WEB_PORT"]) == 6066


def test_prometheus_reads_deploy_prometheus(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert ("./deploy/prometheus", "/etc/prometheus") in _bind_mounts(prometheus)
    flags = dict(arg.split("=", 1) for arg in _command(prometheus) if "=" in arg)
    assert _host_path(prometheus, flags["--config.file"]) == PROMETHEUS_CONFIG


def test_prometheus_scrapes_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    # the jobs' hosts are compose services and their ports the ones those services serve
    ports = {
        "worker": int(services["worker"]["environment"]["ARBSTREAM_WEB_PORT"]),
        "feeds": int(services["feeds"]["environment"]["ARBSTREAM_FEED_METRICS_PORT"]),
        "gateway": int(services["gateway"]["environment"]["ARBSTREAM_GATEWAY_PORT"]),
        "prometheus": 9090,
    }
    config = _yaml(PROMETHEUS_CONFIG)
    seen = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                if host != "localhost":
                    assert host in services and int(port) == ports[host], target
                    seen.add(host)
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                assert host in services and int(dns["port"]) == ports[host], host
                seen.add(host)
    assert {"worker", "feeds", "gateway"} <= seen


def test_alertmanager_reads_deploy_alertmanager(services: dict[str, dict[str, Any]]) -> None:
    alertmanager = services["alertmanager"]
    assert ("./deploy/alertmanager", "/etc/alertmanager") in _bind_mounts(alertmanager)
    flags = dict(arg.split("=", 1) for arg in _command(alertmanager) if "=" in arg)
    assert _host_path(alertmanager, flags["--config.file"]) == ALERTMANAGER_CONFIG
    # its silences and notification log survive a restart (else it notifies again)
    assert any(
        isinstance(v, str) and v.endswith(":" + flags["--storage.path"])
        for v in alertmanager["volumes"]
    )


def test_prometheus_sends_alerts_to_the_compose_alertmanager(
    services: dict[str, dict[str, Any]],
) -> None:
    config = _yaml(PROMETHEUS_CONFIG)
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    # the service's name and the port it listens on inside the network (its image's
    # default, 9093: no --web.listen-address), which it also publishes on the host
    command = " ".join(_command(services["alertmanager"]))
    assert "--web.listen-address" not in command
    [port] = services["alertmanager"]["ports"]
    assert targets == [f"alertmanager:{str(port).split(':')[-1]}"] == ["alertmanager:9093"]
    # the gateway's page shows what the same Alertmanager holds
    url = services["gateway"]["environment"]["ARBSTREAM_GATEWAY_ALERTMANAGER_URL"]
    assert url == f"http://{targets[0]}"


def test_grafana_reads_deploy_grafana(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = _bind_mounts(grafana)
    assert ("./deploy/grafana/provisioning", "/etc/grafana/provisioning") in mounts
    assert ("./deploy/grafana/dashboards", "/var/lib/grafana/dashboards") in mounts
    env = grafana["environment"]
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = _host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == REPO / "deploy" / "grafana" / "dashboards" / "arbstream.json"
    assert home.is_file()


def test_the_simulator_plays_the_demo_scenario_from_the_image(
    services: dict[str, dict[str, Any]],
) -> None:
    """As ``make demo`` does: the 30 Jan 2026 dislocation, which the image carries."""
    command = _command(services["simulator"])
    image_path = command[command.index("--scenario") + 1]
    source = _repo_file_at(image_path)
    assert source == REPO / "scenarios" / "dislocation-2026-01-30" / "ticks.jsonl", image_path
    assert "--loop" in command
    demo = (REPO / "scripts" / "demo.sh").read_text()
    assert "scenarios/dislocation-2026-01-30/ticks.jsonl" in demo


def test_the_builder_copies_every_package_the_wheel_includes() -> None:
    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {s for sources, _ in _copies(_stages()[0]) for s in sources}
    assert packages <= copied, packages - copied


def test_the_gateway_serves_other_hosts_with_tokens_only(
    services: dict[str, dict[str, Any]],
) -> None:
    """It listens on the container's address (the published port), so it must ask for
    tokens; its tokens file is mounted from the repository and holds no secret, and the
    settings are ones the gateway accepts."""
    from arbstream.agents.kafka.clients import KafkaClients  # noqa: PLC0415
    from arbstream.gateway.access import TokenBook  # noqa: PLC0415
    from arbstream.gateway.settings import gateway_settings  # noqa: PLC0415

    gateway = services["gateway"]
    env = {k: str(v) for k, v in gateway["environment"].items()}
    settings = gateway_settings(KafkaClients("kafka:29092"), env)
    assert settings.host == "0.0.0.0" and not settings.open_access
    assert settings.tokens_file is not None
    source = _host_path(gateway, str(settings.tokens_file))
    assert source == REPO / "deploy" / "compose" / "gateway-tokens"
    book = TokenBook.load(source)
    assert book.entries == {}, "the repository's tokens file lets nobody in"
