"""The shared scenarios reproduce their expected output record by record."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from arbstream.config import load_config
from arbstream.replay import replay
from arbstream.streams.engine import Engine
from helpers.compare import diff_streams
from helpers.paths import SCENARIO_NAMES, SCENARIOS
from helpers.schemas import check_outputs

NAMES = list(SCENARIO_NAMES)


def _expected(name: str) -> list[object]:
    return [
        orjson.loads(line)
        for line in (SCENARIOS / name / "expected.jsonl").read_bytes().splitlines()
    ]


def _replay_args(name: str, *extra: str) -> list[str]:
    ticks, config = SCENARIOS / name / "ticks.jsonl", SCENARIOS / name / "config.toml"
    return [
        sys.executable,
        "-m",
        "arbstream.cli",
        "replay",
        str(ticks),
        "--config",
        str(config),
        *extra,
    ]


@pytest.mark.parametrize("name", NAMES)
def test_replay_reproduces_expected(name: str) -> None:
    engine = Engine(load_config(SCENARIOS / name / "config.toml"))
    out = io.BytesIO()
    with open(SCENARIOS / name / "ticks.jsonl", "rb") as lines:
        summary = replay(lines, engine, out)
    actual = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert diff_streams(actual, _expected(name)) == []
    assert summary.records_in > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_summary_counts_what_was_written(name: str) -> None:
    """Counted from the records written, also for an engine that counted before (the
    summary's signals and rejections come from the engine's counters)."""
    lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines(keepends=True)
    engine = Engine(load_config(SCENARIOS / name / "config.toml"))
    for half in (lines[: len(lines) // 2], lines[len(lines) // 2 :]):
        out = io.BytesIO()
        summary = replay(half, engine, out)
        records = [orjson.loads(line) for line in out.getvalue().splitlines()]
        signals = Counter(f"{r['kind']}.{r['event']}" for r in records if r["type"] == "signal")
        assert summary.signals == signals
        assert summary.rejected == Counter(r["reason"] for r in records if r["type"] == "rejected")
        assert summary.spreads == sum(r["type"] == "spread" for r in records)
        assert summary.basis == sum(r["type"] == "basis" for r in records)
        assert summary.records_in == sum(1 for line in half if line.strip())


def test_cli_replay_writes_output_file_and_summary(tmp_path: Path) -> None:
    name = "dislocation-2026-01-30"
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        _replay_args(name, "--output", str(out)), capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    actual = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    check_outputs(actual)  # the CLI runs in its own process: conftest's check misses it
    assert diff_streams(actual, _expected(name)) == []
    summary = proc.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("replay: 1809 records in; 2 rejected (bad_json 1, crossed 1)")
    assert "1666 spreads" in summary and "arb.open 14" in summary and "wide.open 1" in summary


def test_cli_replay_reads_stdin_and_writes_stdout() -> None:
    name = "random-101"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "arbstream.cli",
            "replay",
            "-",
            "--config",
            str(SCENARIOS / name / "config.toml"),
        ],
        input=(SCENARIOS / name / "ticks.jsonl").read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    actual = [orjson.loads(line) for line in proc.stdout.splitlines()]
    check_outputs(actual)
    assert diff_streams(actual, _expected(name)) == []


def test_progress_bar_only_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    name = "random-101"
    args = _replay_args(name, "--output", str(tmp_path / "o.jsonl"))
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stderr=slave, stdout=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(master)
    on_tty = b"".join(chunks).decode(errors="replace")
    assert "replay ticks.jsonl" in on_tty and "kB" in on_tty  # the bar: name, bytes read
    assert "replay: 2002 records in" in on_tty
    piped = subprocess.run(args, capture_output=True, check=True).stderr.decode()
    # the summary line (after the engine's start-up line when it runs from source)
    summary = piped.strip().splitlines()[-1]
    assert summary.startswith("replay: 2002 records in") and "\x1b[" not in piped
