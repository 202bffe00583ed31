"""An engine over many input records in one call: a replay's lines, a worker's batch.

The per-record loop runs here, compiled with the engine (setup.py), and so does the
encoding of each output: the caller's Python loop meets only encoded outputs, which in
most streams are far fewer than the inputs (throttled spread records, signals on
change). Outputs are encoded as they are made, so their records are freed at once:
holding a batch's records (several dicts each) until the caller encoded them made the
interpreter's cyclic collector walk them again and again (a 500-tick batch of a stream
where every tick has outputs cost 87% more CPU that way).
"""

from __future__ import annotations

import orjson

from arbstream.streams.engine import Engine

#: One encoded output: (stream, key as bytes or None for a rejected record, JSON bytes).
Encoded = tuple[str, bytes | None, bytes]


def replay_lines(
    engine: Engine, lines: list[bytes], lineno: int, out: list[bytes]
) -> tuple[int, int, int]:
    """Apply ``lines`` (as read, terminators kept), the first being line ``lineno + 1``;
    append each output record's JSON to ``out``.

    Blank lines are skipped but counted as lines (docs/cli.md, "replay"). Returns the number
    of records (lines that are not blank), spread records and basis records; the
    engine's counters have the signals and rejections.
    """
    dumps = orjson.dumps
    records = spreads = basis = 0
    for line in lines:
        lineno += 1
        # Whitespace bytes are all <= 32: only such a first byte can begin a blank line,
        # so a record's line costs no ``isspace`` call.
        if not line or (line[0] <= 32 and line.isspace()):
            continue
        records += 1
        for stream, _key, record in engine.process(line, lineno):
            out.append(dumps(record))
            if stream == "spreads":
                spreads += 1
            elif stream == "basis":
                basis += 1
    return records, spreads, basis


def encode_values(
    engine: Engine, values: list[bytes | None], positions: list[int]
) -> list[Encoded]:
    """Apply ``values`` (Kafka records' values; None, a tombstone, is an empty input) at
    ``positions`` (their offsets, for a rejection's ``source``); return every output,
    encoded, in order."""
    if len(values) != len(positions):
        raise ValueError(f"{len(values)} values for {len(positions)} positions")
    dumps = orjson.dumps
    out: list[Encoded] = []
    for i in range(len(values)):
        value = values[i]
        for stream, key, record in engine.process(b"" if value is None else value, positions[i]):
            out.append((stream, None if key is None else key.encode(), dumps(record)))
    return out
