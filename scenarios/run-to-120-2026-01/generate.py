"""Writes ticks.jsonl of this scenario (deterministic: seeded). Run from the repository:

    python scenarios/run-to-120-2026-01/generate.py
    arbstream replay scenarios/run-to-120-2026-01/ticks.jsonl \
        --config scenarios/run-to-120-2026-01/config.toml \
        --output scenarios/run-to-120-2026-01/expected.jsonl

One hour of event time, compressed from January 2026: COMEX from $96 through $100 to
about $120.80, a wobble under $120, then the steep drop to the high $60s, with a
circuit breaker halting COMEX for eight minutes on the way down; London a few cents
over New York; Shanghai (SGE, CNY/kg with 13% VAT) at a premium; and an ETF quoting per
share (0.865 oz), whose premium over spot widens as it suspends creations, halted
meanwhile, and narrows in the crash.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import orjson

HERE = Path(__file__).parent
START = 1769702400000  # 2026-01-29 16:00 UTC
MINUTE = 60_000
OZ_PER_KG = 32.1507466
SHARE_OZ = 0.865


def comex_path(minute: float) -> float:
    """COMEX mid (USD/oz) along the hour, before noise."""
    legs = [  # (minute, price): piecewise linear
        (0, 96.0), (4, 100.6), (20, 112.0), (29, 120.8), (31, 119.6), (33, 120.4),
        (34, 120.0), (38, 99.0), (40, 95.0), (48, 84.0), (52, 78.0), (60, 69.5),
    ]  # fmt: skip
    for (m0, p0), (m1, p1) in itertools.pairwise(legs):
        if m0 <= minute <= m1:
            return p0 + (p1 - p0) * (minute - m0) / (m1 - m0)
    return legs[-1][1]


def etf_premium(minute: float) -> float:
    """SLV's premium over spot: normal, widening as creations stop, then narrowing."""
    if minute < 10:
        return 0.003
    if minute < 35:
        return 0.003 + 0.04 * (minute - 10) / 25
    return max(0.004, 0.043 - 0.004 * (minute - 35))


def main() -> None:
    rng = random.Random(20260129)
    out: list[bytes] = []
    usdcny = 6.952

    def emit(record: dict[str, object]) -> None:
        out.append(orjson.dumps(record))

    emit({"type": "fx", "pair": "USDCNY", "bid": usdcny - 0.0005, "ask": usdcny + 0.0005,
          "ts": START})  # fmt: skip
    halts = {  # minute -> status record
        22.0: ("SLV", "halted", "creations suspended"),
        35.0: ("SLV", "trading", "creations resumed"),
        38.6: ("COMEX", "halted", "circuit breaker: limit down"),
        46.6: ("COMEX", "trading", "trading resumes"),
    }
    pending = sorted(halts)
    t = START
    end = START + 60 * MINUTE
    noise = 0.0
    while t < end:
        t += rng.choice([300, 500, 700, 900])
        minute = (t - START) / MINUTE
        while pending and minute >= pending[0]:
            venue, status, note = halts[pending.pop(0)]
            emit({"type": "status", "venue": venue, "instrument": "XAG", "status": status,
                  "ts": t, "note": note})  # fmt: skip
        noise = 0.85 * noise + rng.gauss(0, 0.05)
        mid = comex_path(minute) + noise
        venue = rng.choice(["COMEX", "COMEX", "LBMA", "SGE", "SLV"])
        if venue == "COMEX":
            bid, ask = mid - 0.02, mid + 0.02
            sizes = {"bid_size": rng.choice([5, 10, 20]), "ask_size": rng.choice([5, 10, 20])}
        elif venue == "LBMA":
            m = mid + 0.12
            bid, ask = m - 0.03, m + 0.03
            sizes = {"bid_size": 1, "ask_size": 1}
        elif venue == "SGE":
            premium = 0.05 + 0.04 * max(0.0, (34 - abs(minute - 34)) / 34)
            m = mid * (1 + premium) * 1.13 * usdcny * OZ_PER_KG
            bid, ask = round(m - 2.0), round(m + 2.0)
            sizes = {"bid_size": 30, "ask_size": 30}
        else:
            m = mid * SHARE_OZ * (1 + etf_premium(minute))
            bid, ask = round(m - 0.01, 2), round(m + 0.01, 2)
            sizes = {"bid_size": 5000, "ask_size": 5000}
        if venue == "COMEX" and 38.6 <= minute < 46.6 and rng.random() < 0.7:
            continue  # halted: few indicative quotes
        emit({"type": "quote", "venue": venue, "instrument": "XAG", "bid": round(bid, 4),
              "ask": round(ask, 4), "ts": t, **sizes})  # fmt: skip
        if rng.random() < 0.01:
            usdcny += rng.gauss(0, 0.002)
            emit({"type": "fx", "pair": "USDCNY", "bid": round(usdcny - 0.0005, 5),
                  "ask": round(usdcny + 0.0005, 5), "ts": t})  # fmt: skip
    (HERE / "ticks.jsonl").write_bytes(b"\n".join(out) + b"\n")
    assert not math.isnan(usdcny)


if __name__ == "__main__":
    main()
