"""Figures computed one way for every benchmark: latency percentiles (nearest rank, in
ms) and a child process's peak memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``ordered`` (sorted, not empty), by nearest rank."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(samples: list[float]) -> dict[str, Any]:
    """p50, p99, p99.9 and max of ``samples`` (seconds) in ms; None for no samples."""
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    ordered = sorted(samples)

    def pct(q: float) -> float:
        return round(nearest_rank(ordered, q) * 1000, 2)

    return {
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), where /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
