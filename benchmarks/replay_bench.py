"""Replay benchmark: decode + evaluate + encode on the standard workload, one core.

    python -m benchmarks.replay_bench [--ticks N] [--sessions] [--spread-emit-ms MS] [--profile]

Reports ticks per CPU-second of the replay loop (the input is generated into memory
first and not timed), the resident memory at checkpoints (to show it stops growing
once the 300 s window is full) and, with --profile, where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import re
import resource
import sys
import time
import tomllib
from datetime import UTC, datetime

import orjson

from arbstream import streams
from arbstream.config import parse_config
from arbstream.streams.engine import Engine
from benchmarks.workload import CONFIG_TOML, ticks


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


#: ``--sessions``: every venue trades in sessions (one a day, around the clock, so the
#: workload's outputs stay the same), which costs a calendar check per quote per venue.
SESSIONS = 'timezone = "Asia/Shanghai"\nsessions = ["00:00-00:00"]\ndays = ' + str(
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
).replace("'", '"')


def config_text(sessions: bool, spread_emit_ms: int | None = None) -> str:
    """The workload's config; ``spread_emit_ms`` as the latency benchmark sets it (0: a
    spread record for every sample, where the workload's config throttles them)."""
    text = CONFIG_TOML
    if spread_emit_ms is not None:
        text = re.sub(r"(?m)^spread_emit_ms = .*$", f"spread_emit_ms = {spread_emit_ms}", text)
    if not sessions:
        return text
    return text.replace('\nunit = "', f'\n{SESSIONS}\nunit = "')


def run(
    n: int, checkpoint: int, sessions: bool = False, spread_emit_ms: int | None = None
) -> dict[str, object]:
    lines = list(ticks(n))
    engine = Engine(parse_config(tomllib.loads(config_text(sessions, spread_emit_ms))))
    dumps = orjson.dumps
    outputs = 0
    out_bytes = 0
    memory: list[tuple[int, float]] = [(0, rss_mib())]
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    process = engine.process
    for start in range(0, n, checkpoint):
        for i in range(start, min(start + checkpoint, n)):
            for _stream, _key, rec in process(lines[i], i + 1):
                out_bytes += len(dumps(rec))
                outputs += 1
        memory.append((min(start + checkpoint, n), rss_mib()))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "ticks": n,
        "outputs": outputs,
        "output_bytes": out_bytes,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "ticks_per_cpu_s": round(n / cpu),
        "us_per_tick": round(cpu / n * 1e6, 3),
        "rss_mib_at": [(k, round(m, 1)) for k, m in memory],
        "input_mib": round(sum(len(x) for x in lines) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--checkpoint", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="cProfile a 200k-tick run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--sessions", action="store_true", help="every venue has sessions")
    parser.add_argument(
        "--spread-emit-ms",
        type=int,
        default=None,
        help="the config's spread_emit_ms (0 as in the latency benchmark: every sample)",
    )
    args = parser.parse_args()
    result = run(args.ticks, args.checkpoint, args.sessions, args.spread_emit_ms)
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    result["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    implementation = streams.IMPLEMENTATION
    result["engine"] = (
        "compiled (mypyc)" if implementation.compiled else f"Python ({implementation.reason})"
    )
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        print(f"replay benchmark, {result['date']}, {result['machine']}")
        print(f"  engine: {result['engine']}")
        print(f"  {result['ticks']:,} ticks -> {result['outputs']:,} output records")
        rate = result["ticks_per_cpu_s"]
        print(f"  {rate:,} ticks per CPU-second ({result['us_per_tick']} us/tick)")
        print(
            "  RSS MiB by ticks processed (input held in memory: "
            f"{result['input_mib']} MiB): {result['rss_mib_at']}"
        )
    if args.profile:
        lines = list(ticks(200_000))
        engine = Engine(parse_config(tomllib.loads(CONFIG_TOML)))
        prof = cProfile.Profile()
        prof.enable()
        for i, line in enumerate(lines):
            for _s, _k, rec in engine.process(line, i + 1):
                orjson.dumps(rec)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        print(buf.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    main()
