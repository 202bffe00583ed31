"""``arbstream produce`` on the real broker: routing, fan-out of FX, order, topic creation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

from arbstream.agents.routing import route
from helpers.kafka import Record, consume, topic_partitions
from helpers.paths import SCENARIOS

SCENARIO = SCENARIOS / "dislocation-2026-01-30"
GARBAGE = [b"{not json", b"[1,2,3]", b'{"type": "trade"}', b"\xff\xfe", b'{"type": "fx"}']


def _config(tmp_path: Path, prefix: str, partitions: int) -> Path:
    text = (SCENARIO / "config.toml").read_text()
    text = text.replace('topic_prefix = "arb"', f'topic_prefix = "{prefix}"')
    path = tmp_path / "config.toml"
    path.write_text(text + f"\n[kafka]\npartitions = {partitions}\nreplication = 1\n")
    return path


def _run_produce(kafka_bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARBSTREAM_BROKER": f"kafka://{kafka_bootstrap}"}
    return subprocess.run(
        [sys.executable, "-m", "arbstream.cli", "produce", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_produce_routes_every_line_as_the_contract_says(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"p{uuid.uuid4().hex[:10]}"
    partitions = 4
    lines = (SCENARIO / "ticks.jsonl").read_bytes().splitlines()
    xau = (
        b'{"type": "quote", "venue": "COMEX", "instrument": "XAU", '
        b'"bid": 2650.1, "ask": 2650.5, "ts": 1769781600300}'
    )
    halt = (
        b'{"type": "status", "venue": "COMEX", "instrument": "XAG", "status": "halted", '
        b'"ts": 1769781600400}'
    )
    lines = [*lines[:10], xau, b"", *GARBAGE, halt, *lines[10:], xau]
    data = tmp_path / "ticks.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")

    proc = _run_produce(
        kafka_bootstrap, str(data), "--config", str(_config(tmp_path, prefix, partitions))
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [route(line)[0] for line in lines if line.strip()]
    n_quote, n_fx, n_stock, n_status, n_other = (
        kinds.count(k) for k in ("quote", "fx", "stock", "status", "other")
    )
    assert proc.stderr.strip().endswith(
        f"produce: {n_quote} quotes, {n_fx} fx, {n_stock} stock, {n_status} status, "
        f"{n_other} other to {prefix}.ticks"
    )
    assert n_status == 1
    # '{"type": "fx"}' without a pair still travels as fx (each partition's worker rejects
    # it); the scenario has one malformed line of its own.
    assert n_fx >= 5 and n_other == len(GARBAGE) - 1 + 1

    for suffix in (
        "ticks",
        "fx",
        "spreads",
        "signals",
        "dlq",
    ):  # all created with the config's partitions
        assert asyncio.run(topic_partitions(kafka_bootstrap, f"{prefix}.{suffix}")) == list(
            range(partitions)
        )

    total = n_quote + n_stock + n_status + n_other + n_fx * partitions
    ticks = asyncio.run(
        consume(kafka_bootstrap, f"{prefix}.ticks", total, timeout_s=60, linger_s=1.0)
    )
    assert len(ticks) == total
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for rec in sorted(ticks, key=lambda r: (r.partition, r.offset)):
        by_partition[rec.partition].append(rec)

    instrument_partition: dict[bytes, int] = {}
    other_partition: list[int] = []
    for p, recs in by_partition.items():
        for rec in recs:
            kind, key = route(rec.value)
            if kind in ("quote", "stock", "status"):
                assert rec.key == key  # keyed by instrument
                assert instrument_partition.setdefault(key, p) == p  # one partition per instrument
            elif kind == "other":
                assert rec.key is None
                other_partition.append(p)
            else:  # fx: keyed by pair on every partition (docs/records.md)
                assert (kind, rec.key) == ("fx", key)
    assert set(instrument_partition) == {b"XAG", b"XAU"}

    # Each partition holds, in file order, exactly: its instruments' quotes and status
    # records, every fx record,
    # and the unkeyed lines the producer put there.
    for p in range(partitions):
        values = [r.value for r in by_partition.get(p, [])]
        others_here = [r.value for r in by_partition.get(p, []) if route(r.value)[0] == "other"]
        expected = [
            line
            for line in lines
            if line.strip()
            and (
                route(line)[0] == "fx"
                or (
                    route(line)[0] in ("quote", "stock", "status")
                    and instrument_partition[route(line)[1] or b""] == p
                )
                or (route(line)[0] == "other" and line in others_here)
            )
        ]
        assert values == expected, f"partition {p}"

    fx = asyncio.run(consume(kafka_bootstrap, f"{prefix}.fx", n_fx, timeout_s=30, linger_s=0.5))
    fx_lines = [line for line in lines if line.strip() and route(line)[0] == "fx"]
    assert sorted(r.value for r in fx) == sorted(fx_lines)  # once each
    for p in range(partitions):  # and in file order within each partition
        here = [r.value for r in sorted(fx, key=lambda r: r.offset) if r.partition == p]
        rest = iter(fx_lines)
        assert all(value in rest for value in here)
    assert all(r.key == route(r.value)[1] for r in fx)


def test_produce_with_bad_broker_setting_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "ARBSTREAM_BROKER": "kafka://nohostport"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "arbstream.cli",
            "produce",
            str(SCENARIO / "ticks.jsonl"),
            "--config",
            str(SCENARIO / "config.toml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "ARBSTREAM_BROKER" in proc.stderr
