"""The feed benchmark's workload and settings: quotes, frames per protocol, the config
(benchmarks/feed_bench.py explains the benchmark)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arbstream.config import Config, parse_config
from arbstream.feeds.settings import FeedSettings
from arbstream.simulator.frames import make_venue

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("native", "binance")
#: The consumer's fetch_max_wait_ms, as in pipeline_bench (aiokafka's default is 500).
FETCH_WAIT_MS = int(os.environ.get("BENCH_FETCH_WAIT_MS", "5"))
START_TS = 1_769_990_400_000
#: (arbstream instrument, Binance symbol, starting mid price)
INSTRUMENTS = (
    ("XAG", "XAGUSDT", 78.0),
    ("XAU", "XAUUSDT", 2650.0),
    ("XPT", "XPTUSDT", 980.0),
    ("XPD", "XPDUSDT", 1010.0),
)
VENUE_OF = {"native": "COMEX", "binance": "BINANCE"}
SLICE_S = 0.010  # the paced venue sends rate * SLICE_S frames every SLICE_S
WARMUP_S = 1.0
PROCESS_TIMEOUT_S = 180.0

Json = dict[str, Any]


# --- workload and configuration --------------------------------------------------------


def quotes(n: int, venue: str, seed: int = 7) -> Iterator[Json]:
    """``n`` contract quotes, the instruments in turn, each a small random walk."""
    rng = random.Random(seed)
    mids = [mid for _, _, mid in INSTRUMENTS]
    gauss, randint = rng.gauss, rng.randint
    for i in range(n):
        k = i % len(INSTRUMENTS)
        mids[k] *= 1 + gauss(0, 0.00002)
        half = mids[k] * 0.00005
        yield {
            "type": "quote",
            "venue": venue,
            "instrument": INSTRUMENTS[k][0],
            "bid": round(mids[k] - half, 4),
            "ask": round(mids[k] + half, 4),
            "ts": START_TS + i,
            "bid_size": float(randint(1, 50)),
            "ask_size": float(randint(1, 50)),
        }


def feed_settings(protocol: str, url: str) -> Json:
    settings: Json = {"protocol": protocol, "url": url, "venue": VENUE_OF[protocol]}
    if protocol == "binance":
        settings["symbols"] = {symbol: name for name, symbol, _ in INSTRUMENTS}
    return settings


def bench_config(
    prefix: str, protocol: str, url: str, buffer_max: int, linger_ms: int | None = None
) -> Config:
    """One venue, one feed; producer settings are the defaults but for the buffer size
    (at least N, so that a burst drops nothing) and, if given, ``linger_ms``."""
    producer: Json = {"buffer_max_records": max(buffer_max, 100_000)}
    if linger_ms is not None:
        producer["linger_ms"] = linger_ms
    return parse_config(
        {
            "topic_prefix": prefix,
            "venues": {VENUE_OF[protocol]: {"currency": "USD", "unit": "oz"}},
            "feeds": {protocol: feed_settings(protocol, url)},
            "producer": producer,
        },
        f"<feed_bench {prefix}>",
    )


def encoded_frames(protocol: str, n: int) -> list[str]:
    venue = make_venue(FeedSettings(**feed_settings(protocol, "ws://127.0.0.1:1/")))
    return [venue.encode(record).text for record in quotes(n, VENUE_OF[protocol])]
