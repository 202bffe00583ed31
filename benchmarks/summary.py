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
come from benchmarks/pipeline_bench.py (its docstring says how).

The worker's latency is measured in ``ROUNDS`` rounds, each of the two floors and the
worker under both guarantees, one after the other (in reverse order every other round):
a ratio against a floor is the median of the rounds' own ratios, so that the worker is
compared with a floor measured minutes apart on the same machine, not with one measured
before another load came and went (one pair ran 0.40-2.33x across nine rounds on
2026-12-07). Each round's figures are in the table and the JSON.

The results are also written as JSON to benchmarks/results/summary-<date>.json.
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
#: Rounds of the two floors and the worker's latency under both guarantees.
ROUNDS = 3


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


def floor_round() -> dict[str, Any]:
    """One run of the ``plain`` and of the ``txn`` floor: ``{mode: {p50_ms, p99_ms}}``."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.latency_floor", "--modes", "plain,txn",
         "--pairs", "1", "--json"],
        check=True, stdout=subprocess.PIPE,
    )  # fmt: skip
    runs = orjson.loads(done.stdout)["runs"]
    return {r["mode"]: {"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in runs}


def worker_latency(guarantee: str) -> dict[str, Any]:
    """One latency run of the worker (``pipeline_bench --latency-only``)."""
    run = pipeline_figures("--agent", "batched", "--latency-only", "--guarantee", guarantee)
    latency: dict[str, Any] = run["batched"]["latency"]
    return latency


def latency_rounds(rounds: int) -> list[dict[str, Any]]:
    """``rounds`` rounds of the floors and the worker's latency, the order reversed every
    other round; each with the worker's p99 over its floor's."""
    out = []
    for i in range(rounds):
        print(f"summary: latency round {i + 1} of {rounds} ...", file=sys.stderr)
        steps = [
            ("floor", floor_round),
            ("exactly_once", lambda: worker_latency("exactly-once")),
            ("at_least_once", lambda: worker_latency("at-least-once")),
        ]
        measured = {name: run() for name, run in (steps if i % 2 == 0 else steps[::-1])}
        floor, eo, alo = measured["floor"], measured["exactly_once"], measured["at_least_once"]
        out.append(
            {
                "plain": floor["plain"],
                "txn": floor["txn"],
                "exactly_once": eo,
                "at_least_once": alo,
                "exactly_once_vs_txn": round(eo["p99_ms"] / floor["txn"]["p99_ms"], 2),
                "at_least_once_vs_plain": round(alo["p99_ms"] / floor["plain"]["p99_ms"], 2),
            }
        )
    return out


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each latency figure and ratio over the rounds, and every round's
    ratios."""

    def median(key: str, figure: str) -> float:
        return round(float(statistics.median(r[key][figure] for r in rounds)), 2)

    out: dict[str, Any] = {
        key: {"p50_ms": median(key, "p50_ms"), "p99_ms": median(key, "p99_ms")}
        for key in ("plain", "txn", "exactly_once", "at_least_once")
    }
    for ratio in ("exactly_once_vs_txn", "at_least_once_vs_plain"):
        runs = [r[ratio] for r in rounds]
        out[ratio] = {"median": round(statistics.median(runs), 2), "runs": runs}
    for key in ("exactly_once", "at_least_once"):
        phases = [r[key].get("phases", {}) for r in rounds]
        out[key]["phases"] = {
            phase: {
                q: round(statistics.median(p[phase][q] for p in phases if phase in p), 2)
                for q in ("p50_ms", "p99_ms")
            }
            for phase in phases[0]
        }
    return out


def table(results: dict[str, Any]) -> str:
    replay, pipeline = results["replay"], results["pipeline"]
    batched, naive = pipeline["batched"], pipeline["naive"]
    alo_tput = results["pipeline_at_least_once"]["batched"]["throughput"]
    rounds = results["rounds"]
    m = medians(rounds)
    eo, alo = m["exactly_once"], m["at_least_once"]
    n = f"median of {len(rounds)}"
    rows = [
        ("replay, whole process, compiled (ticks/CPU-s)", replay["compiled"]["ticks_per_cpu_s"],
         "replay_compiled"),
        ("replay, whole process, Python sources (ticks/CPU-s)",
         replay["source"]["ticks_per_cpu_s"], None),
        ("worker, preloaded (ticks/s)", batched["throughput"]["ticks_per_s"],
         "worker_ticks_per_s"),
        (f"worker, p50 at 5,000 ticks/s ({n}, ms)", eo["p50_ms"], None),
        (f"worker, p99 at 5,000 ticks/s ({n}, ms)", eo["p99_ms"], None),
        (f"floor txn, p99 at 5,000 ticks/s ({n}, ms)", m["txn"]["p99_ms"], None),
        (f"worker p99 / txn floor p99 ({n} rounds' x)", m["exactly_once_vs_txn"]["median"],
         "exactly_once_vs_txn"),
        ("worker at-least-once, preloaded (ticks/s)", alo_tput["ticks_per_s"], None),
        (f"worker at-least-once, p50 at 5,000 ticks/s ({n}, ms)", alo["p50_ms"], None),
        (f"worker at-least-once, p99 at 5,000 ticks/s ({n}, ms)", alo["p99_ms"],
         "at_least_once_p99_ms"),
        (f"floor plain, p99 at 5,000 ticks/s ({n}, ms)", m["plain"]["p99_ms"], None),
        (f"worker at-least-once p99 / plain floor p99 ({n} rounds' x)",
         m["at_least_once_vs_plain"]["median"], "at_least_once_vs_plain"),
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
        f"  {'figure':68} {'measured':>10} {'target':>10}  met",
    ]
    for label, value, target_key in rows:
        target, met = "", ""
        if target_key is not None:
            goal, more_is_better = TARGETS[target_key]
            target = f"{goal:,}"
            met = "yes" if (value >= goal if more_is_better else value <= goal) else "no"
        lines.append(f"  {label:68} {value:>10,} {target:>10}  {met}")
    lines.append("  the latency rounds, p99 ms (worker / floor = x):")
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"    {i}: exactly once {r['exactly_once']['p99_ms']} / txn {r['txn']['p99_ms']}"
            f" = {r['exactly_once_vs_txn']}x; at least once {r['at_least_once']['p99_ms']}"
            f" / plain {r['plain']['p99_ms']} = {r['at_least_once_vs_plain']}x"
        )
    for who, figures in (("exactly-once", eo), ("at-least-once", alo)):
        lines.append(f"  the worker's commit phases, {who} ({n}):")
        for phase, q in figures["phases"].items():
            lines.append(f"    {phase:8} p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="replay runs per engine")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="latency rounds")
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
    print("summary: pipeline ...", file=sys.stderr)
    results["pipeline"] = pipeline_figures()
    print("summary: pipeline, the worker at least once ...", file=sys.stderr)
    # its latency comes from the rounds below
    results["pipeline_at_least_once"] = pipeline_figures(
        "--agent", "batched", "--guarantee", "at-least-once", "--throughput-only"
    )
    results["rounds"] = latency_rounds(args.rounds)
    results["latency"] = medians(results["rounds"])
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"summary-{results['date']}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2)
    )
    print(table(results))


if __name__ == "__main__":
    main()
