"""The speed targets in one table: the whole `arbstream replay` process (compiled engine
and Python sources), the worker's throughput and its tick-to-output latency on the real
broker, exactly once and at least once, each beside the latency floor of its kind
measured on the same broker in the same run (benchmarks/latency_floor.py: ``txn`` for
exactly once, ``plain`` for at least once), and beside the Faust runtime
(at-least-once), the naive per-event Faust agent and the quix-streams peer
(exactly-once, benchmarks/quix_peer.py); each against its target (the others have none).

    KAFKA_BOOTSTRAP=host:port python -m benchmarks.summary   (make bench starts a broker)

Replay figures are CPU time of the whole process (start-up included) on 300,000 ticks of
the standard workload (benchmarks/workload.py), the median of three runs. Pipeline figures
come from benchmarks/pipeline_bench.py (its docstring says how). The results are also
written as JSON to benchmarks/results/summary-<date>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from benchmarks.workload import CONFIG_TOML, ticks

REPLAY_TICKS = 300_000
#: (figure, target, whether more is better)
TARGETS = {
    "replay_compiled": (250_000, True),
    "worker_ticks_per_s": (100_000, True),
    "exactly_once_vs_txn": (1.25, False),
    "at_least_once_p99_ms": (10.0, False),
    "at_least_once_vs_plain": (1.25, False),
}
#: Rounds of each floor (the median p99 is the floor).
FLOOR_PAIRS = 3


def replay_cpu_s(input_path: Path, config_path: Path, env: dict[str, str]) -> float:
    """CPU seconds of one whole ``arbstream replay`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "arbstream.cli", "replay", str(input_path), "--config",
         str(config_path), "--output", os.devnull],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def replay_figures(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as tmp_name:
        tmp = Path(tmp_name)
        input_path, config_path = tmp / "ticks.jsonl", tmp / "config.toml"
        with input_path.open("wb") as f:
            for line in ticks(REPLAY_TICKS):
                f.write(line + b"\n")
        config_path.write_text(CONFIG_TOML)
        out: dict[str, Any] = {}
        for name, extra in (("compiled", {}), ("source", {"ARBSTREAM_ENGINE": "python"})):
            env = {k: v for k, v in os.environ.items() if k != "ARBSTREAM_ENGINE"} | extra
            cpu = [replay_cpu_s(input_path, config_path, env) for _ in range(runs)]
            median = statistics.median(cpu)
            out[name] = {
                "cpu_s": round(median, 3),
                "cpu_s_runs": [round(c, 3) for c in cpu],
                "ticks_per_cpu_s": round(REPLAY_TICKS / median),
            }
        return out


def pipeline_figures(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline_bench", "--json", *args],
        check=True, stdout=subprocess.PIPE,
    )  # fmt: skip
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def floor_figures() -> dict[str, Any]:
    """The ``plain`` and ``txn`` floors: the median p50 and p99 of ``FLOOR_PAIRS`` runs
    each, taken in turn."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.latency_floor", "--modes", "plain,txn",
         "--pairs", str(FLOOR_PAIRS), "--json"],
        check=True, stdout=subprocess.PIPE,
    )  # fmt: skip
    runs = orjson.loads(done.stdout)["runs"]
    out: dict[str, Any] = {}
    for mode in ("plain", "txn"):
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {
            "p50_ms": statistics.median(r["p50_ms"] for r in mine),
            "p99_ms": statistics.median(r["p99_ms"] for r in mine),
            "p99_ms_runs": [r["p99_ms"] for r in mine],
        }
    return out


def table(results: dict[str, Any]) -> str:
    replay, pipeline, floor = results["replay"], results["pipeline"], results["floor"]
    batched, naive = pipeline["batched"], pipeline["naive"]
    alo = results["pipeline_at_least_once"]["batched"]
    txn, plain = floor["txn"]["p99_ms"], floor["plain"]["p99_ms"]
    rows = [
        ("replay, whole process, compiled (ticks/CPU-s)", replay["compiled"]["ticks_per_cpu_s"],
         "replay_compiled"),
        ("replay, whole process, Python sources (ticks/CPU-s)",
         replay["source"]["ticks_per_cpu_s"], None),
        ("worker, preloaded (ticks/s)", batched["throughput"]["ticks_per_s"],
         "worker_ticks_per_s"),
        ("worker, tick-to-output p50 at 5,000 ticks/s (ms)", batched["latency"]["p50_ms"], None),
        ("worker, tick-to-output p99 at 5,000 ticks/s (ms)", batched["latency"]["p99_ms"],
         None),
        ("floor txn, p99 at 5,000 ticks/s (ms)", txn, None),
        ("worker p99 / txn floor p99 (x)", round(batched["latency"]["p99_ms"] / txn, 2),
         "exactly_once_vs_txn"),
        ("worker at-least-once, preloaded (ticks/s)", alo["throughput"]["ticks_per_s"],
         None),
        ("worker at-least-once, p50 at 5,000 ticks/s (ms)", alo["latency"]["p50_ms"], None),
        ("worker at-least-once, p99 at 5,000 ticks/s (ms)", alo["latency"]["p99_ms"],
         "at_least_once_p99_ms"),
        ("floor plain, p99 at 5,000 ticks/s (ms)", plain, None),
        ("worker at-least-once p99 / plain floor p99 (x)",
         round(alo["latency"]["p99_ms"] / plain, 2), "at_least_once_vs_plain"),
        ("naive Faust agent, preloaded (ticks/s)", naive["throughput"]["ticks_per_s"], None),
        ("naive Faust agent, p99 at 5,000 ticks/s (ms)", naive["latency"]["p99_ms"], None),
    ]  # fmt: skip
    # absent from results older than the Faust runtime or the quix peer
    for name, who, guarantee in (
        ("faust", "Faust runtime", "at-least-once"),
        ("quix", "quix-streams peer", "exactly-once"),
    ):
        if name in pipeline:
            peer = pipeline[name]
            rows += [
                (f"{who}, {guarantee}, preloaded (ticks/s)",
                 peer["throughput"]["ticks_per_s"], None),
                (f"{who}, p99 at 5,000 ticks/s (ms)", peer["latency"]["p99_ms"], None),
            ]  # fmt: skip
    lines = [
        f"speed, {results['date']}, {results['machine']}",
        f"  {'figure':56} {'measured':>10} {'target':>10}  met",
    ]
    for label, value, target_key in rows:
        target, met = "", ""
        if target_key is not None:
            goal, more_is_better = TARGETS[target_key]
            target = f"{goal:,}"
            met = "yes" if (value >= goal if more_is_better else value <= goal) else "no"
        lines.append(f"  {label:56} {value:>10,} {target:>10}  {met}")
    for who, figures in (("exactly-once", batched), ("at-least-once", alo)):
        lines.append(f"  the worker's commit phases, {who}:")
        for phase, q in figures["latency"].get("phases", {}).items():
            lines.append(f"    {phase:8} p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="replay runs per engine")
    args = parser.parse_args()
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        sys.exit("summary: KAFKA_BOOTSTRAP is not set (run it with `make bench`)")
    results: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
    }
    print("summary: replay ...", file=sys.stderr)
    results["replay"] = replay_figures(args.runs)
    print("summary: latency floors ...", file=sys.stderr)
    results["floor"] = floor_figures()
    print("summary: pipeline ...", file=sys.stderr)
    results["pipeline"] = pipeline_figures()
    print("summary: pipeline, the worker at least once ...", file=sys.stderr)
    results["pipeline_at_least_once"] = pipeline_figures(
        "--agent", "batched", "--guarantee", "at-least-once"
    )
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"summary-{results['date']}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2)
    )
    print(table(results))


if __name__ == "__main__":
    main()
