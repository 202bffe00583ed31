"""arbstream on a secured broker (TLS, SCRAM users, ACLs enforced), every role as its own
user with exactly the ACLs docs/deploy.md grants: the topics made by the admin, the
feeds, the worker (both runtimes) and the gateway each doing their job, the output equal
to replay; every refusal fast, short and named; a right removed while the worker runs
stopping it with nothing lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from arbstream.agents.kafka.topics import Topics
from helpers.deployment import Deployment, deployment_config, generated
from helpers.gateway import Clients, GatewayProcess, final_view, topic_messages
from helpers.kafka import consume, end_offsets, free_port, scaled, wait_for
from helpers.paths import REPO, SCENARIOS
from helpers.pipeline import (
    arbstream_process,
    demo_config,
    expected_dlq,
    read_outputs,
    replay_by_key,
)
from helpers.secured import USERS, SecuredBroker, documented_acls, secured_broker


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    yield from secured_broker(tmp_path_factory.mktemp("secured"))


def run_as(
    env: dict[str, str], *args: str, timeout_s: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``arbstream ARGS`` with ``env`` over the test's environment (its own Kafka
    variables dropped): the result and how long it took."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARBSTREAM_KAFKA_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "arbstream.cli", *args],
        env={**base, "ARBSTREAM_WEB_PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=scaled(timeout_s),
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc, time.monotonic() - started


def secured_deployment(
    secured: SecuredBroker, tmp_path: Path, runtime: str = "default", n: int = 1500
) -> Deployment:
    """A generated deployment whose topics the admin made with ``arbstream topics``; its
    processes run as the launcher's users of the same names as their roles."""
    text, lines = generated(11, n)
    path, config = deployment_config(tmp_path, text)
    made, _ = run_as(secured.env("admin"), "topics", "--config", str(path), "--runtime", runtime)
    assert made.returncode == 0, made.stderr
    topics = Topics(config.topic_prefix)
    listed = {line.split("\t")[0] for line in made.stdout.splitlines()}
    assert listed == {*topics.all(), *topics.state_topics(runtime)}, made.stdout
    return Deployment(
        path,
        config,
        lines,
        f"127.0.0.1:{secured.port}",
        tmp_path,
        runtime,
        admin=secured.clients("admin"),
        role_env=secured.env,
    )


def assert_no_password(secured: SecuredBroker, *texts: str) -> None:
    for user in USERS:
        password = secured.password(user)
        for text in texts:
            assert password not in text, f"{user}'s password in {text[:200]!r}"


def test_the_documented_acls_are_one_prefixed_acl_per_resource_type() -> None:
    acls = documented_acls("arb")
    assert sorted(acls) == ["faust", "feed", "gateway", "worker"]
    resources = {
        user: sorted(
            (args[args.index(flag) + 1], args[-1] if "prefixed" in args else "literal")
            for args in commands
            for flag in ("--topic", "--group", "--transactional-id")
            if flag in args
        )
        for user, commands in acls.items()
    }
    assert resources == {
        "feed": [("arb.", "prefixed")],
        "gateway": [("arb.", "prefixed")],
        "worker": [
            ("arb.", "prefixed"),
            ("arbstream-arb", "literal"),
            ("arbstream-arb-", "prefixed"),
        ],
        "faust": [("arb.", "prefixed"), ("arbstream-arb-faust", "literal")],
    }


def test_every_role_runs_with_exactly_its_acls_and_the_worker_output_equals_replay(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    dep = secured_deployment(secured, tmp_path)
    prefix = dep.config.topic_prefix
    for user in ("feed", "worker", "gateway"):
        secured.grant(user, prefix)
    gateway = GatewayProcess(
        dep.config_path, dep.bootstrap, tmp_path / "gateway.log", **secured.env("gateway")
    )
    clients = Clients()
    worker = dep.worker()
    try:
        gateway.wait_ready()
        everything, _ = clients.subscribe(gateway.url, {})
        wait_for(lambda: everything.snapshots_done > 0, 30, "the gateway's snapshot")
        worker.wait_ready()
        dep.produce_cli()  # as the feed
        dep.check_equals_replay()  # read as the admin
        # the gateway's client holds what the topics hold
        topics = dep.topics
        names = (topics.ticks, topics.spreads, topics.basis, topics.signals)
        committed = topic_messages(
            {
                name: asyncio.run(
                    consume(dep.kafka, name, 0, isolation_level="read_committed", linger_s=2)
                )
                for name in names
            },
            frozenset(dep.config.venues),
        )
        want = final_view(committed)
        metrics = gateway.get("/metrics")[1].decode() + worker.metrics()
        wait_for(
            lambda: final_view(everything.snapshot + everything.live) == want,
            60,
            "the gateway's view",
        )
    finally:
        clients.close()
        worker_status = worker.stop()
        gateway_status = gateway.stop()
    assert worker_status == 0, worker.log_tail()
    assert gateway_status == 0
    assert_no_password(secured, metrics, *(log.read_text() for log in tmp_path.glob("*.log")))


def test_the_faust_runtime_runs_with_exactly_its_acls(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    dep = secured_deployment(secured, tmp_path, runtime="faust", n=800)
    for user in ("feed", "faust"):
        secured.grant(user, dep.config.topic_prefix)
    worker = dep.worker()
    try:
        worker.wait_ready(120)
        dep.produce_cli()
        dep.check_equals_replay()
        assert worker.get("/readyz")[0] == 200
        metrics = worker.metrics()
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert_no_password(secured, worker.log_path.read_text(), metrics)


FEED = """
[feeds.shfe]
protocol = "native"
url = "ws://127.0.0.1:{port}/shfe"
venue = "SHFE"
"""


def test_the_feed_process_writes_over_mutual_tls_as_its_user(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    """``arbstream feed`` from the simulator, its client certificate naming its user."""
    scenario = SCENARIOS / "dislocation-2026-01-30"
    text = (scenario / "config.toml").read_text() + FEED.format(port=free_port())
    path, config = deployment_config(tmp_path, text)
    made, _ = run_as(secured.env("admin"), "topics", "--config", str(path))
    assert made.returncode == 0, made.stderr
    secured.grant("feed", config.topic_prefix)
    lines = [x for x in (scenario / "ticks.jsonl").read_bytes().splitlines() if b'"SHFE"' in x][
        :200
    ]
    ticks = tmp_path / "shfe.jsonl"
    ticks.write_bytes(b"\n".join(lines) + b"\n")
    env = {
        **os.environ,
        **secured.env("feed", mtls=True),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
    }
    feeds = arbstream_process(["feed", "--config", str(path)], env, tmp_path / "feed.log")
    simulate = ["simulate", "--config", str(path), "--scenario", str(ticks), "--speed", "50"]
    simulator = arbstream_process(simulate, env, tmp_path / "simulator.log")
    try:
        assert simulator.wait(scaled(90)) == 0, simulator.tail(20)
        got = asyncio.run(
            consume(secured.clients(), Topics(config.topic_prefix).ticks, len(lines), linger_s=2)
        )
    finally:
        if simulator.alive():
            simulator.terminate()
        assert feeds.stop(scaled(30)) == 0, feeds.tail(20)
    quotes = [orjson.loads(r.value) for r in got]
    assert [(q["venue"], q["ts"], q["bid"]) for q in quotes] == [
        (q["venue"], q["ts"], q["bid"]) for q in map(orjson.loads, lines)
    ]


@pytest.fixture(scope="module")
def refusals(secured: SecuredBroker, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A deployment whose topics exist, and whose roles hold their ACLs; its users may
    still run the wrong command, or with the wrong settings."""
    dep = secured_deployment(secured, tmp_path_factory.mktemp("refusals"), n=100)
    for user in ("feed", "worker", "gateway", "faust"):
        secured.grant(user, dep.config.topic_prefix)
    return dep


def _without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


@dataclass(frozen=True)
class Refusal:
    user: str
    changes: tuple[str, ...]  # to the user's settings: "-SSL_CAFILE" unsets one
    command: tuple[str, ...]
    words: tuple[str, ...]  # in the line that says why


REFUSALS = {
    "wrong password": Refusal(
        "worker", ("PASSWORD=not-it",), ("worker",), ("authentication failed", "'worker'")
    ),
    "unknown user": Refusal(
        "worker", ("USERNAME=ghost",), ("produce",), ("authentication failed", "'ghost'")
    ),
    "untrusted certificate": Refusal(
        "worker", ("-SSL_CAFILE",), ("gateway",), ("TLS verification failed", "certificate")
    ),
    "plaintext client on the TLS port": Refusal(
        "admin", ("PLAINTEXT",), ("topics",), ("closed the connection", "expect TLS")
    ),
    "no client certificate on the mutual-TLS port": Refusal(
        "worker",
        ("MTLS", "-SSL_CERTFILE", "-SSL_KEYFILE"),
        ("worker",),
        ("closed the connection", "client certificate"),
    ),
    "a user without ACLs runs the worker": Refusal(
        "nobody", (), ("worker",), ("denies user 'nobody' Describe on topic",)
    ),
    "a user without ACLs produces": Refusal(
        "nobody", (), ("produce",), ("denies user 'nobody' Describe on topic",)
    ),
    "a user without ACLs runs the gateway": Refusal(
        "nobody", (), ("gateway",), ("denies user 'nobody' Describe on topic",)
    ),
    "the gateway's user runs the worker": Refusal(
        "gateway",
        (),
        ("worker",),
        ("denies user 'gateway' Write on topic", "(allowed: Read, Describe)"),
    ),
    "the Faust runtime's user runs the default worker": Refusal(
        "faust",
        (),
        ("worker",),
        ("denies user 'faust' DescribeConfigs on topic", "(allowed: Read, Write, Describe)"),
    ),
    "the worker's user runs the Faust runtime": Refusal(
        "worker",
        (),
        ("worker", "--runtime", "faust"),
        ("denies user 'worker' Describe on group", "-faust'"),
    ),
    "the feed's user runs the gateway": Refusal(
        "feed", (), ("gateway",), ("denies user 'feed' Read on topic",)
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_refusal_is_fast_short_and_named(
    case: str, secured: SecuredBroker, refusals: Deployment, tmp_path: Path
) -> None:
    refusal = REFUSALS[case]
    command, words = list(refusal.command), refusal.words
    env = secured.env(refusal.user, mtls="MTLS" in refusal.changes)
    for change in refusal.changes:
        if change.startswith("-"):
            env.pop(f"ARBSTREAM_KAFKA_{change[1:]}")
        elif change == "PLAINTEXT":
            env = {"ARBSTREAM_BROKER": env["ARBSTREAM_BROKER"]}
        elif change.startswith("PASSWORD="):
            env = _without(env, "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE")
            env["ARBSTREAM_KAFKA_SASL_PASSWORD"] = change.split("=", 1)[1]
        elif change.startswith("USERNAME="):
            env["ARBSTREAM_KAFKA_SASL_USERNAME"] = change.split("=", 1)[1]
    args = [*command, "--config", str(refusals.config_path)]
    if command[0] == "produce":
        ticks = tmp_path / "ticks.jsonl"
        ticks.write_bytes(b"\n".join(refusals.lines) + b"\n")
        args = ["produce", str(ticks), "--config", str(refusals.config_path)]
    before = asyncio.run(end_offsets(refusals.kafka, refusals.topics.ticks))
    port = {"ARBSTREAM_GATEWAY_PORT": str(free_port()), "ARBSTREAM_GATEWAY_HOST": "127.0.0.1"}
    proc, took = run_as({**env, **port}, *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert took < 30, f"{took:.1f} s"
    assert 1 <= len(lines) <= 3, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("arbstream: "), lines
    for word in words:
        assert word in lines[-1], lines[-1]
    assert_no_password(secured, proc.stdout, proc.stderr)
    # the refused process wrote nothing
    assert asyncio.run(end_offsets(refusals.kafka, refusals.topics.ticks)) == before


def test_other_sasl_mechanisms(secured: SecuredBroker, refusals: Deployment) -> None:
    for mechanism in ("SCRAM-SHA-256", "PLAIN"):
        env = {**secured.env("admin"), "ARBSTREAM_KAFKA_SASL_MECHANISM": mechanism}
        proc, _ = run_as(env, "topics", "--config", str(refusals.config_path))
        assert proc.returncode == 0, (mechanism, proc.stderr)


def test_a_right_removed_while_the_worker_runs_stops_it_and_loses_nothing(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    dep = secured_deployment(secured, tmp_path, n=2000)
    prefix = dep.config.topic_prefix
    for user in ("feed", "worker"):
        secured.grant(user, prefix)
    half = len(dep.lines) // 2
    first = dep.worker("first")
    try:
        first.wait_ready()
        dep.produce_paced(1, 0.0, dep.lines[:half]).join(scaled(60))
        expected, rejected = replay_by_key(dep.lines[:half], dep.config)
        counts = Counter(stream for (stream, _), records in expected.items() for _ in records)
        counts["dlq"] = sum(expected_dlq(rejected, 4).values())
        read_outputs(dep.kafka, dep.topics, dict(counts), linger_s=0)
        write = [
            "--operation",
            "Write",
            "--topic",
            f"{prefix}.",
            "--resource-pattern-type",
            "prefixed",
        ]
        secured.acls("--remove", "--force", "--allow-principal", "User:worker", *write)
        dep.produce_paced(1, 0.0, dep.lines[half:]).join(scaled(60))
        status = first.wait(scaled(30))
    finally:
        first.stop()
    log = first.log_path.read_text()
    last = [line for line in log.splitlines() if line.startswith("arbstream: ")]
    assert status == 1, log[-3000:]
    assert len(last) == 1, last
    assert "Traceback" not in log
    line = last[0]
    assert f"denies user 'worker' Write on topic '{prefix}." in line, line
    assert "was committed; once granted, a worker resumes at ticks offset" in line, line
    # the right back, a worker finishes the job: exactly once, as if nothing happened
    secured.acls("--add", "--allow-principal", "User:worker", *write)
    dep.finish_with("second")


def test_the_demo_runs_on_a_secured_broker_as_one_user(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    """``make demo``'s script on a broker of one's own (DEMO_BROKER), every component as
    the user of the environment's credentials (here the admin, who holds every right)."""
    summary = tmp_path / "summary.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ARBSTREAM_", "KAFKA_"))},
        **secured.env("admin"),
        "DEMO_BROKER": f"127.0.0.1:{secured.port}",
        "DEMO_CONFIG": str(demo_config(tmp_path, f"sdemo{uuid.uuid4().hex[:8]}")),
        "DEMO_SECONDS": "15",
        "DEMO_SPEED": "20",
        "DEMO_SUMMARY": str(summary),
        "DEMO_LOG_DIR": str(tmp_path / "logs"),
        "ARBSTREAM_WEB_PORT": str(free_port()),
        "ARBSTREAM_FEED_METRICS_PORT": str(free_port()),
        "ARBSTREAM_GATEWAY_PORT": str(free_port()),
        # a port nobody listens on: the script must not start (or use) its own broker
        "KAFKA_PORT": str(free_port()),
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"on the broker at kafka://127.0.0.1:{secured.port}" in proc.stdout
    result = orjson.loads(summary.read_bytes())
    assert result["spreads"] > 50 and all(n > 0 for n in result["quotes"].values()), result
    logs = [log.read_text() for log in (tmp_path / "logs").glob("*.log")]
    assert_no_password(secured, proc.stdout, proc.stderr, *logs)
