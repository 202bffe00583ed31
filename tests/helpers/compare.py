"""Compare output records with the tolerance of scenarios/README.md.

Identities, events, reasons and times must be equal; numbers within 1e-6 relative or
absolute; ``std`` and ``z`` within 1e-4.
"""

from __future__ import annotations

import math
from typing import Any

NUM_TOL = 1e-6
STAT_TOL = 1e-4
LOOSE_KEYS = frozenset({"std", "z"})


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol or abs(a - b) <= tol * max(abs(a), abs(b))


def diff(actual: Any, expected: Any, path: str = "", tol: float = NUM_TOL) -> list[str]:
    """Differences between two decoded records, as readable lines (empty when equal)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if actual is expected else [f"{path}: {actual!r} != {expected!r}"]
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if path.endswith(".ts") or path.endswith("_ts") or path.endswith("duration_ms"):
            ok = actual == expected  # times are exact
        elif isinstance(expected, int) and isinstance(actual, int):
            ok = actual == expected
        else:
            ok = math.isfinite(actual) and _close(float(actual), float(expected), tol)
        return [] if ok else [f"{path}: {actual!r} != {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(expected) | set(actual)):
            sub = f"{path}.{k}"
            if k not in actual:
                out.append(f"{sub}: missing")
            elif k not in expected:
                continue  # fields may be added to any record (scenarios/README.md)
            else:
                out += diff(actual[k], expected[k], sub, STAT_TOL if k in LOOSE_KEYS else tol)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: length {len(actual)} != {len(expected)}"]
        out = []
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            out += diff(a, e, f"{path}[{i}]", tol)
        return out
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def diff_streams(actual: list[Any], expected: list[Any], limit: int = 10) -> list[str]:
    """Record-by-record differences of two output streams (first ``limit`` shown)."""
    out = []
    if len(actual) != len(expected):
        out.append(f"record count {len(actual)} != expected {len(expected)}")
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        d = diff(a, e, f"record {i + 1}")
        if d:
            out += d
            if len(out) >= limit:
                break
    return out
