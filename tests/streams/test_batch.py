"""An engine over many records in one call (streams/batch.py) gives what it gives one
record at a time: the same outputs in the same order, encoded as one record at a time
would be, with the same line numbers and offsets in rejections, blank lines skipped but
counted."""

from __future__ import annotations

import random

import orjson
import pytest

from arbstream.config import load_config
from arbstream.streams.batch import encode_values, replay_lines
from arbstream.streams.engine import Engine, Output
from helpers.paths import SCENARIO_NAMES, SCENARIOS

#: Blank lines (skipped) and lines that only begin with whitespace (records).
BLANKS = [b"", b"\n", b"  \n", b"\t\r\n", b"\x0b\x0c \n"]


def _engine(name: str) -> Engine:
    return Engine(load_config(SCENARIOS / name / "config.toml"))


def _lines(name: str, seed: int) -> list[bytes]:
    """The scenario's lines with blank lines, indented records and a bad one mixed in."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for line in (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines(keepends=True):
        if rng.random() < 0.05:
            out.append(rng.choice(BLANKS))
        if rng.random() < 0.02:
            out.append(b" \t" + line)  # still a record
        if rng.random() < 0.01:
            out.append(b" {not json\n")
        out.append(line)
    return out


def _one_at_a_time(engine: Engine, lines: list[bytes]) -> tuple[list[Output], int]:
    out: list[Output] = []
    records = 0
    for n, line in enumerate(lines, start=1):
        if line.strip():
            records += 1
            out += engine.process(line, n)
    return out, records


@pytest.mark.parametrize("name", SCENARIO_NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_lines_in_chunks_of_any_size_give_the_outputs_of_one_line_at_a_time(
    name: str, seed: int
) -> None:
    lines = _lines(name, seed)
    expected, expected_records = _one_at_a_time(_engine(name), lines)
    assert any(r["type"] == "rejected" for _, _, r in expected)
    rng = random.Random(seed)
    engine = _engine(name)
    out: list[bytes] = []
    records = spreads = basis = lineno = 0
    while lineno < len(lines):
        chunk = lines[lineno : lineno + rng.choice([1, 3, 256, 1000])]
        n, s, b = replay_lines(engine, chunk, lineno, out)
        records, spreads, basis = records + n, spreads + s, basis + b
        lineno += len(chunk)
    assert records == expected_records
    assert out == [orjson.dumps(r) for _, _, r in expected]
    assert spreads == sum(stream == "spreads" for stream, _, _ in expected)
    assert basis == sum(stream == "basis" for stream, _, _ in expected)


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_values_give_the_outputs_of_one_value_at_a_time_at_their_offsets(name: str) -> None:
    lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()
    rng = random.Random(7)
    values: list[bytes | None] = [None if rng.random() < 0.01 else line for line in lines]
    offsets = sorted(rng.sample(range(10 * len(values)), len(values)))  # gaps, as in Kafka
    single = _engine(name)
    expected = [
        o for v, p in zip(values, offsets, strict=True) for o in single.process(v or b"", p)
    ]
    assert any(r.get("source") == {"line": offsets[values.index(None)]} for _, _, r in expected)
    assert encode_values(_engine(name), values, offsets) == [
        (stream, None if key is None else key.encode(), orjson.dumps(record))
        for stream, key, record in expected
    ]


def test_values_and_positions_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 1 positions"):
        encode_values(_engine(SCENARIO_NAMES[0]), [b"{}", b"{}"], [0])
