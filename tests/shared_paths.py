"""Where ../shared lives: beside the repository, or wherever ARBSTREAM_SHARED says."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARBSTREAM_SHARED", REPO.parent / "shared"))
SCENARIOS = SHARED / "scenarios"
SCENARIO_NAMES = ("dislocation-2026-01-30", "random-101")
