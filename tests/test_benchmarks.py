"""The benchmarks' child-process code imports what exists: `make bench` runs it only
there, so a moved function (run_worker once left agents.worker) breaks no other test.
The quix-streams peer computes what the engine computes, and runs in its own venv. The
latency floor's relay loses no output in any of its modes."""

from __future__ import annotations

import ast
import asyncio
import importlib
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbstream.config import load_config
from arbstream.streams.batch import encode_values
from arbstream.streams.engine import Engine
from benchmarks import floor_relay, latency_floor, pipeline_bench, quix_peer, summary
from benchmarks.workload import CONFIG_TOML, ticks

CHILD_CODE = {"pipeline_bench.WORKER_CODE": pipeline_bench.WORKER_CODE}


@pytest.mark.parametrize("name", sorted(CHILD_CODE))
def test_child_process_code_imports_resolve(name: str) -> None:
    tree = ast.parse(CHILD_CODE[name])
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imports
    for node in imports:
        assert node.module is not None
        module = importlib.import_module(node.module)
        for alias in node.names:
            assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def test_phase_quantiles_interpolate_in_their_bucket_as_prometheus_does() -> None:
    # 10 values <= 1 ms, 80 in (1, 2] ms, 10 in (2, 5] ms
    cumulative = [(0.001, 10.0), (0.002, 90.0), (0.005, 100.0), (float("inf"), 100.0)]
    quantile = pipeline_bench._bucket_quantile
    assert quantile(cumulative, 50) == pytest.approx(0.0015)  # halfway into (1, 2]
    assert quantile(cumulative, 99) == pytest.approx(0.002 + 0.003 * 0.9)
    assert quantile(cumulative, 5) == pytest.approx(0.0005)  # the first bucket from 0
    assert quantile([(0.001, 0.0), (float("inf"), 3.0)], 2) == 0.001  # beyond the last


def test_the_summary_table_says_which_targets_are_met() -> None:
    def run(tput: int, p99: float) -> dict[str, object]:
        return {"throughput": {"ticks_per_s": tput}, "latency": {"p50_ms": 1.0, "p99_ms": p99}}

    def latency(p99: float) -> dict[str, object]:
        phases = {"flush": {"p50_ms": 2.0, "p99_ms": p99 / 2}}
        return {"p50_ms": 1.0, "p99_ms": p99, "phases": phases}

    def round_(plain: float, txn: float, eo: float, alo: float) -> dict[str, Any]:
        return {
            "plain": {"p50_ms": 1.0, "p99_ms": plain},
            "txn": {"p50_ms": 1.0, "p99_ms": txn},
            "exactly_once": latency(eo),
            "at_least_once": latency(alo),
            "exactly_once_vs_txn": round(eo / txn, 2),
            "at_least_once_vs_plain": round(alo / plain, 2),
        }

    results: dict[str, Any] = {
        "date": "2026-11-29",
        "machine": "x86_64",
        "replay": {"compiled": {"ticks_per_cpu_s": 260_000}, "source": {"ticks_per_cpu_s": 7}},
        "pipeline": {
            "batched": run(90_000, 25.0),
            "naive": run(15_000, 300.0),
            "quix": run(5_000, 4_000.0),
        },
        "pipeline_at_least_once": {"batched": run(95_000, 10.5)},
        # ratios per round: exactly once 1.25, 2.0, 1.0; at least once 1.3, 1.0, 2.0
        "rounds": [
            round_(plain=8.0, txn=20.0, eo=25.0, alo=10.4),
            round_(plain=12.0, txn=10.0, eo=20.0, alo=12.0),
            round_(plain=6.0, txn=40.0, eo=40.0, alo=12.0),
        ],
    }
    lines = summary.table(results).splitlines()
    met = {line.split("(")[0].strip(): line.split()[-1] for line in lines if "target" not in line}
    assert met["replay, whole process, compiled"] == "yes"  # 260,000 >= 250,000
    assert met["worker, preloaded"] == "no"  # 90,000 < 100,000
    # the median of the rounds' ratios (1.25), not the ratio of the medians (25 / 20)
    assert met["worker p99 / txn floor p99"] == "yes"
    assert "1.25" in next(line for line in lines if "worker p99 / txn floor p99" in line)
    assert met["worker at-least-once, p99 at 5,000 ticks/s"] == "no"  # median 12.0 ms > 10 ms
    assert met["worker at-least-once p99 / plain floor p99"] == "no"  # median 1.3 > 1.25
    assert met["floor txn, p99 at 5,000 ticks/s"] == "20.0"  # a figure, no target
    assert "2: exactly once 20.0 / txn 10.0 = 2.0x" in summary.table(results)
    assert any("flush" in line and "p99 12.5 ms" in line for line in lines)  # median phase
    # the peers' rows have figures and no target
    assert met["quix-streams peer, exactly-once, preloaded"] == "5,000"
    assert met["quix-streams peer, p99 at 5,000 ticks/s"] == "4,000.0"
    assert met["naive Faust agent, preloaded"] == "15,000"
    # results from before the quix peer still make a table
    del results["pipeline"]["quix"]
    assert "quix" not in summary.table(results)


@pytest.mark.parametrize("mode", floor_relay.MODES)
def test_the_latency_floor_relays_every_tick_in_each_mode(kafka_bootstrap: str, mode: str) -> None:
    """A short run on the real broker, its relay in a process of its own: every output
    reaches the read_committed subscriber (``measure`` raises otherwise) and each is
    timed."""
    run = asyncio.run(
        latency_floor.measure(kafka_bootstrap, mode, rate=300, seconds=1.0, warm_up_s=0)
    )
    assert run["ticks"] == run["timed_ticks"] == 300
    assert run["outputs"] == 300 * floor_relay.OUTPUTS_PER_TICK
    assert run["batches"] >= 1  # the relay process's own count, reported at its stop
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]


def test_the_latency_floor_does_not_time_its_warm_up(kafka_bootstrap: str) -> None:
    """The ticks of the first ``warm_up_s`` seconds are relayed and not timed, as
    ``pipeline_bench`` times the worker: only the later ticks' outputs are samples."""
    run = asyncio.run(
        latency_floor.measure(kafka_bootstrap, "plain", rate=300, seconds=2.0, warm_up_s=1.0)
    )
    assert run["ticks"] == 600
    assert 250 <= run["timed_ticks"] <= 350  # the second second's, give or take a slice
    assert run["outputs"] == run["timed_ticks"] * floor_relay.OUTPUTS_PER_TICK


def test_a_relay_process_that_fails_ends_the_measurement_with_its_reason() -> None:
    """A relay that cannot start (here: no broker at that address) fails ``measure``
    within its timeout, naming the mode, and leaves no process behind."""

    async def start_and_wait() -> None:
        relay = floor_relay.RelayProcess("127.0.0.1:1", "txn", "x", 0)
        await relay.start()
        try:
            await relay.ready(timeout_s=60)
        finally:
            relay.kill()
            assert relay.proc is not None
            assert await relay.proc.wait() != 0

    with pytest.raises(RuntimeError, match=r"txn: the relay process exited \(1\) before"):
        asyncio.run(start_and_wait())


def test_the_latency_floor_carries_outputs_of_the_workers_size(kafka_bootstrap: str) -> None:
    """``--value-bytes``: every output has that size and carries its tick's number, by
    which the subscriber times it (a missing or misread output fails ``measure``)."""
    run = asyncio.run(
        latency_floor.measure(
            kafka_bootstrap, "txn", rate=300, seconds=1.0,
            value_bytes=latency_floor.WORKER_OUTPUT_BYTES, warm_up_s=0,
        )
    )  # fmt: skip
    assert run["outputs"] == 300 * floor_relay.OUTPUTS_PER_TICK
    assert run["value_bytes"] == latency_floor.WORKER_OUTPUT_BYTES
    output = floor_relay.sized(b"1234", latency_floor.WORKER_OUTPUT_BYTES)
    assert len(output) == latency_floor.WORKER_OUTPUT_BYTES
    assert orjson.loads(output)["ts"] == 1234
    assert floor_relay.sized(b"1234", 0) == b"1234"


def test_the_floors_output_size_is_the_workers_in_the_latency_benchmark(tmp_path: Path) -> None:
    """WORKER_OUTPUT_BYTES is the mean size of what the engine writes for the latency
    benchmark's ticks at its settings (within 5%): if the outputs grow or shrink, the
    sized floor must follow."""
    config_path, _ = pipeline_bench.deployment(tmp_path, spread_emit_ms=0)
    engine = Engine(load_config(config_path))
    values = list(ticks(5000, seed=11))
    outputs = encode_values(engine, list(values), list(range(len(values))))
    mean = sum(len(value) for _, _, value in outputs) / len(outputs)
    assert len(outputs) > 3 * len(values)  # about four spreads per tick
    assert mean == pytest.approx(latency_floor.WORKER_OUTPUT_BYTES, rel=0.05)


def test_the_quix_peer_runs_in_its_own_venv(tmp_path: Path) -> None:
    """It imports no arbstream package (its venv has none) and quixstreams only inside
    functions (this venv has none), and pipeline_bench starts it with .venv-quix's Python;
    its consumer group is the one the benchmark waits for."""
    tree = ast.parse(Path(quix_peer.__file__).read_text())
    ours = {"streams", "agents", "arbstream", "feeds", "gateway", "simulator", "benchmarks"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                a.name for a in node.names
            ]  # fmt: skip
            assert not {n.split(".")[0] for n in names} & ours, ast.unparse(node)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            assert "quixstreams" not in ast.unparse(node)
    assert Path(quix_peer.__file__).resolve() == pipeline_bench.QUIX_PEER
    assert pipeline_bench.QUIX_PYTHON.parts[-3:] == (".venv-quix", "bin", "python")
    (tmp_path / "config.toml").write_text(CONFIG_TOML)
    config = load_config(tmp_path / "config.toml")
    assert pipeline_bench.group_of("quix", config) == f"quix-{config.topic_prefix}"
    assert pipeline_bench.group_of("batched", config) == f"arbstream-{config.topic_prefix}"


class JsonState:
    """quix-streams' State as the peer sees it: values stored as JSON, read back as
    copies."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else orjson.loads(value)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def assert_close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (where, got, want)
    else:
        assert got == want, where


def test_the_quix_peer_computes_the_engines_spreads_and_arb_signals(tmp_path: Path) -> None:
    """On the standard workload, with short windows so that samples leave them (the
    longest listed first) and every sample emitted, the peer's outputs are the engine's
    spread and arb records (without seq, size_oz, edge_usd), in order and to rounding."""
    text = re.sub(r"(?m)^windows_ms = .*$", "windows_ms = [2000, 500]", CONFIG_TOML)
    text = re.sub(r"(?m)^spread_emit_ms = .*$", "spread_emit_ms = 0", text)
    path = tmp_path / "config.toml"
    path.write_text(text)
    engine = Engine(load_config(path))
    monitor = quix_peer.Monitor(quix_peer.Settings(tomllib.loads(text)))
    state = JsonState()
    counts = {"spreads": 0, "signals": 0}
    for i, line in enumerate(ticks(6000)):
        want = [
            (stream, key, record)
            for stream, key, record in engine.process(line, i)
            if stream == "spreads" or (stream == "signals" and record["kind"] == "arb")
        ]
        got = monitor.process(orjson.loads(line), state)
        assert len(got) == len(want), f"tick {i}"
        for (stream, key, record), out in zip(want, got, strict=True):
            for field in ("seq", "size_oz", "edge_usd"):
                record.pop(field, None)
            assert quix_peer.output_key(out) == key
            assert_close(out, record, f"tick {i} {key}")
            counts[stream] += 1
    assert counts["spreads"] > 20_000
    assert counts["signals"] > 100
    # samples that left the longest window were deleted: ~2 s of samples per pair remain
    samples = sum(key.startswith("s/") for key in state.data)
    assert samples < 10 * 2000 * 2 // 5 * 1.1
