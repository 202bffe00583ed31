"""Where the repository and its scenarios (scenarios/<name>/) are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
SCENARIO_NAMES = (
    "dislocation-2026-01-30",
    "random-101",
    "cny-holiday-2026-02",
    "random-202",
    "run-to-120-2026-01",
)
