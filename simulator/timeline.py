"""When the simulator sends each scenario record: event time turned into wall-clock offsets.

A scenario is a source of values in arrival order: the lines of a JSONL file (contract
records, and whatever else the file holds, which the router counts and skips) or the
endless generated market (simulator/generated.py). :func:`pace` maps each to
``(wall_offset_s, value)`` with ``wall_offset_s = (ts - first_ts) / speed``, measured
on the largest ``ts`` seen so far: a late, out-of-order tick is sent at once, the way a
venue would deliver it, and the clock never goes back.

File records keep their own ``ts``, so a live run carries the same records as
``arbstream replay`` of that file. Looping shifts every later pass forward by the
file's span plus a gap, so event time keeps moving and no pass looks out of order
against the one before.

Pure: no clock reads (the generated scenario's start time is a parameter); the only
I/O is reading the scenario file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from arbstream.feeds.errors import FeedError
from arbstream.simulator.generated import GeneratorSettings, generate_ticks
from arbstream.streams.config import EngineConfig

#: Event time left between two passes of a looped file.
LOOP_GAP_MS = 1000


def event_ts(value: Any) -> int | None:
    """The ``ts`` of a record if it is usable for pacing (integer epoch ms), else None."""
    if not isinstance(value, dict):
        return None
    ts = value.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        return None
    return ts


def pace(
    values: Iterable[Any], speed: float = 1.0, max_gap_s: float | None = None
) -> Iterator[tuple[float, Any]]:
    """``(wall_offset_s, value)`` for each value; offsets never decrease.

    A value without a usable ``ts`` (a malformed line) is due with the value before it.
    ``max_gap_s``: a quiet stretch of event time (a weekend, a holiday) lasts at most
    this long in wall time; the records keep their ``ts``.
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed!r}")
    if max_gap_s is not None and not max_gap_s > 0:
        raise ValueError(f"max_gap_s must be > 0, got {max_gap_s!r}")
    first: int | None = None
    latest: int | None = None
    skipped = 0.0  # wall seconds of quiet stretches left out
    for value in values:
        ts = event_ts(value)
        if ts is not None:
            if first is None:
                first = latest = ts
            elif latest is None or ts > latest:
                gap = 0.0 if latest is None else (ts - latest) / 1000.0 / speed
                if max_gap_s is not None and gap > max_gap_s:
                    skipped += gap - max_gap_s
                latest = ts
        offset = 0.0 if first is None or latest is None else (latest - first) / 1000.0 / speed
        yield offset - skipped, value


class ScenarioFile:
    """The values of a JSONL scenario in file order, once or looped forever.

    Each non-blank line becomes its JSON value, or the line's raw bytes if it is not
    JSON (so the caller can count it). The file is opened when this is made, so a
    missing file fails before any server starts.
    """

    def __init__(self, path: Path, loop: bool = False, gap_ms: int = LOOP_GAP_MS) -> None:
        self.path = Path(path)
        self.loop = loop
        self.gap_ms = gap_ms
        #: The pass being read: 0 for the first, k for the k-th repetition.
        self.pass_number = 0
        self._check_readable()

    def _check_readable(self) -> None:
        if self.path.is_dir():
            raise FeedError(f"cannot read scenario {self.path}: it is a directory")
        try:
            with self.path.open("rb"):
                pass
        except OSError as exc:
            raise FeedError(f"cannot read scenario {self.path}: {exc.strerror or exc}") from None

    def __iter__(self) -> Iterator[Any]:
        shift = 0
        span: int | None = None
        self.pass_number = 0
        while True:
            lowest: int | None = None
            highest: int | None = None
            for value in self._read():
                ts = event_ts(value)
                if ts is None:
                    yield value
                    continue
                lowest = ts if lowest is None else min(lowest, ts)
                highest = ts if highest is None else max(highest, ts)
                yield {**value, "ts": ts + shift} if shift else value
            if span is None:
                if lowest is None or highest is None:
                    return  # nothing timed: looping would only spin
                span = highest - lowest
            if not self.loop:
                return
            # Pass k starts a gap after pass k-1 ended, whatever order the file is in.
            self.pass_number += 1
            shift = self.pass_number * (span + self.gap_ms)

    def _read(self) -> Iterator[Any]:
        try:
            with self.path.open("rb") as lines:
                for line in lines:
                    if not line.strip():
                        continue  # blank lines are skipped, as replay does
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield line.rstrip(b"\r\n")
        except OSError as exc:
            raise FeedError(f"cannot read scenario {self.path}: {exc.strerror or exc}") from None


class GeneratedScenario:
    """The endless generated market, starting at the time ``clock_ms`` gives when iterated.

    The start is taken when the simulator's clock starts (after waiting for clients),
    so event time and wall time agree at speed 1.
    """

    def __init__(
        self,
        config: EngineConfig,
        seed: int,
        clock_ms: Callable[[], int],
        settings: GeneratorSettings | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.clock_ms = clock_ms
        self.settings = settings or GeneratorSettings()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return generate_ticks(self.config, self.seed, self.clock_ms(), self.settings)
