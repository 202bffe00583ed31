"""Output sequence numbers (docs/records.md): per key and topic, 1, 2, 3, ... in emission
order, carried in the engine's state. (That a restored engine continues the numbering is
held by the restore properties of test_engine_properties.py, which compare whole records.)
"""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from arbstream.config import load_config
from arbstream.streams import changelog
from arbstream.streams.engine import Engine
from helpers.paths import SCENARIO_NAMES, SCENARIOS


def _outputs(name: str) -> list[tuple[str, str | None, dict[str, object]]]:
    engine = Engine(load_config(SCENARIOS / name / "config.toml"))
    lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()
    return [o for n, line in enumerate(lines, 1) for o in engine.process(line, n)]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_every_keyed_record_is_numbered_from_one_without_gaps(name: str) -> None:
    seen: dict[tuple[str, str], list[object]] = defaultdict(list)
    for stream, key, record in _outputs(name):
        if key is None:
            assert "seq" not in record, record  # rejected records have none
        else:
            seen[stream, key].append(record["seq"])
    assert seen
    for key, numbers in seen.items():
        assert numbers == list(range(1, len(numbers) + 1)), key


def test_a_spread_key_and_a_basis_key_that_are_the_same_string_are_numbered_apart() -> None:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for stream, key, record in _outputs("cny-holiday-2026-02"):
        if key == "XAG|SGE|SHFE_AG2606":
            counts[stream, key] += 1
            assert record["seq"] == counts[stream, key]
    assert counts["spreads", "XAG|SGE|SHFE_AG2606"] > 1
    assert counts["basis", "XAG|SGE|SHFE_AG2606"] > 1


def test_state_written_before_seq_loads_and_numbers_from_one() -> None:
    config = load_config(SCENARIOS / "dislocation-2026-01-30" / "config.toml")
    lines = (SCENARIOS / "dislocation-2026-01-30" / "ticks.jsonl").read_bytes().splitlines()
    engine = Engine(config)
    for n, line in enumerate(lines[:600], 1):
        engine.process(line, n)
    snapshot = dict(engine.snapshot())
    key = changelog.instrument_key("XAG")
    old = orjson.loads(snapshot[key])
    assert old.pop("seq")  # what an older build wrote has no seq
    snapshot[key] = orjson.dumps(old)
    resumed = Engine(config)
    resumed.load(snapshot)
    later = [o for n, line in enumerate(lines[600:], 601) for o in resumed.process(line, n)]
    firsts: dict[tuple[str, str | None], object] = {}
    for stream, k, record in later:
        if k is not None:
            firsts.setdefault((stream, k), record["seq"])
    assert firsts and set(firsts.values()) == {1}
