"""The benchmarks' child-process code imports what exists: `make bench` runs it only
there, so a moved function (run_worker once left agents.worker) breaks no other test."""

from __future__ import annotations

import ast
import importlib

import pytest

from benchmarks import pipeline_bench, summary

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

    results = {
        "date": "2026-11-29",
        "machine": "x86_64",
        "replay": {"compiled": {"ticks_per_cpu_s": 260_000}, "source": {"ticks_per_cpu_s": 7}},
        "pipeline": {"batched": run(90_000, 10.0), "naive": run(15_000, 300.0)},
    }
    lines = summary.table(results).splitlines()
    met = {line.split("(")[0].strip(): line.split()[-1] for line in lines if "target" not in line}
    assert met["replay, whole process, compiled"] == "yes"  # 260,000 >= 250,000
    assert met["worker, preloaded"] == "no"  # 90,000 < 100,000
    assert met["worker, tick-to-output p99 at 5,000 ticks/s"] == "yes"  # 10 ms <= 10 ms
