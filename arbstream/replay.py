"""``arbstream replay``: run the engine over a JSONL file (docs/cli.md, "replay").

A thin shell: read lines, hand them to :class:`streams.Engine` a chunk at a time
(streams/batch.py), write every output record as one JSON line. Progress and the
summary go to stderr, records to stdout or the output file, so the output stays a clean
JSONL stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from arbstream.streams.batch import replay_lines
from arbstream.streams.engine import Engine

#: Output records are written once this many are buffered (spread records average about
#: 500 bytes).
WRITE_RECORDS = 1024
#: Input lines are handed to the engine this many at a time: enough to leave the per-line
#: loop to compiled code, few enough that the chunk's lines stay in cache (4,096 cost 15%
#: more CPU than 256, in page faults of the allocator's arenas).
READ_CHUNK = 256


@dataclass
class ReplaySummary:
    """What a replay read and wrote."""

    records_in: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    spreads: int = 0
    basis: int = 0
    signals: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        rejected = sum(self.rejected.values())
        by_reason = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected.items()))
        signals = sum(self.signals.values())
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(self.signals.items()))
        return (
            f"replay: {self.records_in} records in; {rejected} rejected"
            + (f" ({by_reason})" if by_reason else "")
            + f"; {self.spreads} spreads"
            + (f"; {self.basis} basis" if self.basis else "")
            + f"; {signals} signals"
            + (f" ({by_kind})" if by_kind else "")
        )


def replay(
    lines: Iterable[bytes],
    engine: Engine,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Feed ``lines`` (with their line terminators) to ``engine``; write outputs to ``out``.

    ``progress`` is called with the number of bytes consumed since the last call.
    """
    summary = ReplaySummary()
    counters = engine.counters
    signals_before, rejected_before = dict(counters.signals), dict(counters.rejected)
    it = iter(lines)
    lineno = 0
    buf: list[bytes] = []
    # Lines go to the engine a chunk at a time: the loop over them, and the encoding of
    # the outputs, are compiled with it (streams/batch.py).
    while chunk := list(islice(it, READ_CHUNK)):
        # JSON ignores the line terminator: it reaches the engine as read (a rejected
        # record's raw text has it stripped there)
        records, spreads, basis = replay_lines(engine, chunk, lineno, buf)
        lineno += len(chunk)
        summary.records_in += records
        summary.spreads += spreads
        summary.basis += basis
        if len(buf) >= WRITE_RECORDS:
            out.write(b"\n".join(buf) + b"\n")
            buf.clear()
        if progress is not None:
            progress(sum(map(len, chunk)))
    if buf:
        out.write(b"\n".join(buf) + b"\n")
    out.flush()
    # the engine counted the signals and rejections it emitted
    for (kind, event), n in counters.signals.items():
        if n := n - signals_before.get((kind, event), 0):
            summary.signals[f"{kind}.{event}"] = n
    for reason, n in counters.rejected.items():
        if n := n - rejected_before.get(reason, 0):
            summary.rejected[reason] = n
    return summary


class ProgressBar:
    """A rich progress bar over the input's bytes, on stderr."""

    def __init__(self, total: int, name: str, verb: str = "replay") -> None:
        # rich is imported only when a bar is shown (an interactive stderr)
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(f"{verb} {Path(name).name}", total=total)

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, n: int) -> None:
        self._progress.advance(self._task, n)
