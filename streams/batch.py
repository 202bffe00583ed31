"""An engine over many input records in one call: a replay's lines, a worker's batch.

The per-record loop runs here, compiled with the engine (setup.py), so the caller's
Python loop meets only the outputs, which in most streams are far fewer than the
inputs (throttled spread records, signals on change). Each function returns the outputs
of every record, in input order, as :meth:`streams.engine.Engine.process` gives them.
"""

from __future__ import annotations

from streams.engine import Engine, Output


def process_lines(engine: Engine, lines: list[bytes], lineno: int) -> tuple[list[Output], int]:
    """Apply ``lines`` (as read, terminators kept), the first being line ``lineno + 1``.

    Blank lines are skipped but counted as lines (contracts.md §7). Returns the outputs
    and the number of records (lines that are not blank).
    """
    out: list[Output] = []
    records = 0
    for line in lines:
        lineno += 1
        # Whitespace bytes are all <= 32: only such a first byte can begin a blank line,
        # so a record's line costs no ``isspace`` call.
        if not line or (line[0] <= 32 and line.isspace()):
            continue
        records += 1
        produced = engine.process(line, lineno)
        if produced:
            out.extend(produced)
    return out, records


def process_values(
    engine: Engine, values: list[bytes | None], positions: list[int]
) -> list[Output]:
    """Apply ``values`` (a Kafka record's value; None, a tombstone, is an empty input)
    at ``positions`` (their offsets, for a rejection's ``source``)."""
    if len(values) != len(positions):
        raise ValueError(f"{len(values)} values for {len(positions)} positions")
    out: list[Output] = []
    for i in range(len(values)):
        value = values[i]
        produced = engine.process(b"" if value is None else value, positions[i])
        if produced:
            out.extend(produced)
    return out
