"""The pipeline benchmark's quix-streams peer: the core of arbstream's computation written
as a user of quix-streams would write it, exactly once, on the same broker, topics and
workload as ``arbstream worker`` (benchmarks/pipeline_bench.py, ``--agent quix``).

What it computes, from the ticks topic (quotes keyed by instrument, every FX record in
every partition), per ticks partition:

* each quote normalised to USD/oz: divided by (1 + vat), by the troy ounces of its unit
  and, for a non-USD venue, by the mid of the latest FX of its currency (``USD<CUR>``);
* the instrument clock (the largest ``ts`` seen) and, at it, freshness: a quote at most
  its venue's ``stale_ms`` old, its FX at most ``fx_stale_ms`` (and known at all);
* on each fresh quote, for every pair of its venue with a fresh other leg, the mid spread
  ``a_mid - b_mid`` (venues in name order), added to rolling event-time windows (every
  ``windows_ms``, samples in ``(t - W, t]``) with n, mean, std (population), min, max
  and z; a spread record per pair at most every ``spread_emit_ms`` (0: every sample) to
  the spreads topic, keyed ``instrument|A|B``, ``ts`` the instrument clock;
* on each quote, every route's net ``sell_bid - buy_ask - (cost_usd + (cost_bps + both
  venues' fee_bps) / 1e4 * buy_ask)`` through arbstream's lifecycle: pending once net >=
  ``open_usd``, open after ``persist_ms`` of it, ``update`` whenever net moved by
  ``update_usd`` since the last record, ``close`` (converged or stale) below
  ``close_usd`` or when a leg goes stale; the records to the signals topic, keyed
  ``instrument|arb|BUY>SELL``.

On this workload the spread and arb records carry arbstream's fields and values (to
rounding: tests/test_benchmarks.py compares them with the engine's).

What it skips, against ``arbstream worker``: input validation and the dead-letter topic
(it assumes well-formed records; an out-of-order quote or FX is dropped silently), the
wide-market, basis and delivery signals, trading sessions, quote sizes (``size_oz`` and
``edge_usd``), the per-key ``seq`` field, and metrics (it serves no /metrics).

How it is written: one ``Application`` with ``processing_guarantee="exactly-once"``
(outputs, state changelog and input offsets in one Kafka transaction per checkpoint,
every ``commit_interval``: quix-streams' batching knob), consumer group
``quix-<topic_prefix>`` (:func:`consumer_group`), a ``StreamingDataFrame`` over the
ticks topic with one ``apply(..., stateful=True, expand=True)`` whose ``State`` lives
in RocksDB with a changelog topic, and ``to_topic`` choosing the topic and key per
record. All state is in the ``State``: the FX book, each instrument's quotes and route
states, each pair's window sums with monotonic queues for min and max, and each
window sample under a key of its own (written once, read when it leaves a window,
deleted when it leaves the longest), so a checkpoint writes what changed and not whole
windows. Two adaptations:

* quix-streams scopes ``State`` by message key, and one State cannot read another
  key's entries; the FX book must reach every instrument of the partition (that is why
  FX is written to every partition), so the ticks topic's key deserializer maps every
  key to one scope: the partition is the state's scope, as arbstream's engine is per
  partition, and the instrument is part of each state key.
* an output record would carry its input's Kafka timestamp (the time the tick was
  produced); ``set_timestamp`` stamps it with the time it is produced, as arbstream's
  and Faust's outputs are, which the benchmark's throughput measure reads.

Run (in .venv-quix, see scripts/install-quix.sh): ``python benchmarks/quix_peer.py
CONFIG BOOTSTRAP WEB_PORT``; WEB_PORT is accepted for the benchmark's calling convention
and unused. ``BENCH_QUIX_COMMIT_INTERVAL_S`` sets ``commit_interval`` (default
:data:`COMMIT_INTERVAL_S`), and the consumer's poll timeout with it. This module
imports nothing from arbstream, and quixstreams only in :func:`main`, so its
computation can be tested without quix-streams.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any, Protocol

#: Troy ounces per named unit (arbstream's streams/config.py).
OZ_PER_UNIT = {"oz": 1.0, "kg": 32.1507466, "g": 0.0321507466}
#: z is null below this std (arbstream's contracts).
MIN_STD = 1e-9
#: quix-streams' ``commit_interval`` (s): each checkpoint is one transaction, and its
#: outputs become visible to ``read_committed`` readers when it commits.
COMMIT_INTERVAL_S = 0.1
#: The environment variable with the broker's security settings as librdkafka keys (JSON).
QUIX_KAFKA_CONFIG = "BENCH_QUIX_KAFKA_CONFIG"

IDLE, PENDING, OPEN = 0, 1, 2


def consumer_group(prefix: str) -> str:
    """The peer's consumer group (pipeline_bench waits for its committed offsets)."""
    return f"quix-{prefix}"


class StateLike(Protocol):
    """What the computation uses of quix-streams' ``State``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class Settings:
    """The parts of an arbstream config TOML that the peer computes with."""

    def __init__(self, doc: dict[str, Any]) -> None:
        defaults = doc.get("defaults", {})
        self.prefix: str = doc["topic_prefix"]
        self.windows_ms: list[int] = list(defaults.get("windows_ms", [60000, 300000]))
        self.spread_emit_ms: int = defaults.get("spread_emit_ms", 0)
        self.fx_stale_ms: int = defaults.get("fx_stale_ms", 60000)
        arb = doc.get("arb", {})
        self.open_usd: float = arb.get("open_usd", 0.50)
        self.close_usd: float = arb.get("close_usd", 0.25)
        self.persist_ms: int = arb.get("persist_ms", 1000)
        self.update_usd: float = arb.get("update_usd", 0.10)
        venues: dict[str, dict[str, Any]] = doc["venues"]
        self.venues = sorted(venues)
        #: venue -> (normalisation factor before FX, FX pair or None, stale_ms)
        self.quote_terms: dict[str, tuple[float, str | None, int]] = {}
        for name, v in venues.items():
            unit = v["unit"]
            oz = OZ_PER_UNIT[unit] if isinstance(unit, str) else float(unit)
            factor = 1.0 / (1.0 + v.get("vat", 0.0)) / oz
            pair = None if v["currency"] == "USD" else "USD" + v["currency"]
            stale = v.get("stale_ms", defaults.get("stale_ms", 5000))
            self.quote_terms[name] = (factor, pair, stale)
        #: each venue's pairs (a, b, a is this venue), a < b by name
        self.pairs_of: dict[str, list[tuple[str, str, bool]]] = {
            name: [(min(name, o), max(name, o), name < o) for o in self.venues if o != name]
            for name in self.venues
        }
        fee = {name: v.get("fee_bps", 0.0) for name, v in venues.items()}
        routes = doc.get("routes") or [
            {"buy": b, "sell": s} for b in self.venues for s in self.venues if b != s
        ]
        #: (buy, sell, cost_usd, cost fraction of buy_ask), in arbstream's order
        self.routes: list[tuple[str, str, float, float]] = sorted(
            (
                r["buy"],
                r["sell"],
                float(r.get("cost_usd", 0.0)),
                (r.get("cost_bps", 0.0) + fee[r["buy"]] + fee[r["sell"]]) / 10000.0,
            )
            for r in routes
        )


def load_settings(path: str | Path) -> Settings:
    with open(path, "rb") as f:
        return Settings(tomllib.load(f))


class Monitor:
    """The computation, one input record at a time, on a quix-streams ``State``.

    State keys (all in the partition's scope): ``fx`` the FX book {pair: [mid, ts]};
    ``i/<instrument>`` {"clock", "quotes": {venue: [bid, ask, ts]}, "routes": [[state,
    opened_ts, peak, last_net], ...]}; ``p/<instrument>|A|B`` a pair's [next sample
    index, last emit ts, anchor, [window, ...]] with a window [head index, head ts, head
    x, n, sum, sum of squares, min queue, max queue] (sums of x - anchor; queues of
    [index, x]); ``s/<instrument>|A|B/<index>`` a sample [ts, x].
    """

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self._longest = max(range(len(settings.windows_ms)), key=settings.windows_ms.__getitem__)
        self._window_names = [str(w) for w in settings.windows_ms]

    def process(self, value: dict[str, Any], state: StateLike) -> list[dict[str, Any]]:
        """The output records of one input record (spreads first, then signals)."""
        kind = value.get("type")
        if kind == "fx":
            book = state.get("fx") or {}
            last = book.get(value["pair"])
            if last is not None and value["ts"] < last[1]:
                return []
            book[value["pair"]] = [(value["bid"] + value["ask"]) / 2.0, value["ts"]]
            state.set("fx", book)
            return []
        if kind != "quote" or value.get("venue") not in self.s.quote_terms:
            return []
        return self._quote(value, state)

    def _quote(self, value: dict[str, Any], state: StateLike) -> list[dict[str, Any]]:
        s = self.s
        instrument, venue, ts = value["instrument"], value["venue"], value["ts"]
        ikey = "i/" + instrument
        inst = state.get(ikey) or {
            "clock": ts,
            "quotes": {},
            "routes": [[IDLE, 0, 0.0, 0.0] for _ in s.routes],
        }
        quotes = inst["quotes"]
        previous = quotes.get(venue)
        if previous is not None and ts < previous[2]:
            return []
        quotes[venue] = [value["bid"], value["ask"], ts]
        t = inst["clock"] = max(inst["clock"], ts)
        fx = state.get("fx") or {}
        # venue -> (normalised bid, ask, fresh), for the venues that can be normalised
        norm: dict[str, tuple[float, float, bool]] = {}
        for name, (bid, ask, qts) in quotes.items():
            factor, pair, stale_ms = s.quote_terms[name]
            if pair is None:
                k, fresh = factor, t - qts <= stale_ms
            else:
                book = fx.get(pair)
                if book is None:
                    continue
                k = factor / book[0]
                fresh = t - qts <= stale_ms and t - book[1] <= s.fx_stale_ms
            norm[name] = (bid * k, ask * k, fresh)
        out: list[dict[str, Any]] = []
        mine = norm.get(venue)
        if mine is not None and mine[2]:
            for a, b, _ in s.pairs_of[venue]:
                qa, qb = norm.get(a), norm.get(b)
                if qa is None or qb is None or not (qa[2] and qb[2]):
                    continue
                a_mid, b_mid = (qa[0] + qa[1]) / 2.0, (qb[0] + qb[1]) / 2.0
                spread = a_mid - b_mid
                windows = self._sample(state, f"{instrument}|{a}|{b}", t, spread)
                if windows is not None:
                    out.append(
                        {
                            "type": "spread",
                            "instrument": instrument,
                            "a": a,
                            "b": b,
                            "ts": t,
                            "a_mid": a_mid,
                            "b_mid": b_mid,
                            "spread": spread,
                            "spread_bps": spread / b_mid * 10000.0,
                            "windows": windows,
                        }
                    )
        for (buy, sell, cost_usd, cost_frac), route in zip(s.routes, inst["routes"], strict=True):
            qb, qs = norm.get(buy), norm.get(sell)
            if qb is None or qs is None:
                continue
            buy_ask, sell_bid = qb[1], qs[0]
            net = sell_bid - buy_ask - (cost_usd + cost_frac * buy_ask)
            legs = (instrument, buy, sell)
            signal = self._route(route, legs, qb[2] and qs[2], buy_ask, sell_bid, net, t)
            if signal is not None:
                out.append(signal)
        state.set(ikey, inst)
        return out

    def _sample(self, state: StateLike, pair: str, t: int, x: float) -> dict[str, Any] | None:
        """Add sample ``x`` at ``t`` to the pair's windows; their statistics if a spread
        record is due."""
        pkey = "p/" + pair
        pstate = state.get(pkey)
        if pstate is None:
            pstate = [0, None, x, [[0, t, x, 0, 0.0, 0.0, [], []] for _ in self.s.windows_ms]]
        index, last_emit, anchor, windows = pstate
        state.set(f"s/{pair}/{index}", [t, x])
        d = x - anchor
        for w, length in enumerate(self.s.windows_ms):
            win = windows[w]
            head, head_ts, head_x, n, s1, s2, minq, maxq = win
            if n == 0:
                head, head_ts, head_x = index, t, x
            n, s1, s2 = n + 1, s1 + d, s2 + d * d
            while minq and minq[-1][1] >= x:
                minq.pop()
            minq.append([index, x])
            while maxq and maxq[-1][1] <= x:
                maxq.pop()
            maxq.append([index, x])
            limit = t - length
            while head_ts <= limit:  # the sample at head leaves the window
                e = head_x - anchor
                n, s1, s2 = n - 1, s1 - e, s2 - e * e
                if w == self._longest:
                    state.delete(f"s/{pair}/{head}")
                head += 1
                head_ts, head_x = state.get(f"s/{pair}/{head}")
            while minq[0][0] < head:
                minq.pop(0)
            while maxq[0][0] < head:
                maxq.pop(0)
            windows[w] = [head, head_ts, head_x, n, s1, s2, minq, maxq]
        pstate[0] = index + 1
        due = last_emit is None or t - last_emit >= self.s.spread_emit_ms
        if due:
            pstate[1] = t
        state.set(pkey, pstate)
        if not due:
            return None
        stats: dict[str, dict[str, Any]] = {}
        for name, (_, _, _, n, s1, s2, minq, maxq) in zip(self._window_names, windows, strict=True):
            m1 = s1 / n
            var = s2 / n - m1 * m1
            std = math.sqrt(var) if var > 0.0 else 0.0
            mean = anchor + m1
            stats[name] = {
                "n": n,
                "mean": mean,
                "std": std,
                "min": minq[0][1],
                "max": maxq[0][1],
                "z": (x - mean) / std if n >= 2 and std >= MIN_STD else None,
            }
        return stats

    def _route(
        self,
        r: list[Any],
        legs: tuple[str, str, str],
        eligible: bool,
        buy_ask: float,
        sell_bid: float,
        net: float,
        t: int,
    ) -> dict[str, Any] | None:
        """Advance one route's lifecycle ``r`` = [state, opened_ts, peak, last_net];
        ``legs`` is (instrument, buy, sell)."""
        s = self.s
        if r[0] == IDLE:
            if not eligible or net < s.open_usd:
                return None
            r[0], r[1] = PENDING, t
        if r[0] == PENDING:
            if not eligible or net < s.open_usd:
                r[0] = IDLE
                return None
            if t - r[1] < s.persist_ms:
                return None
            r[0], r[2], r[3] = OPEN, net, net
            return _arb("open", legs, r, t, buy_ask, sell_bid, net)
        if not eligible or net < s.close_usd:
            r[0] = IDLE
            record = _arb("close", legs, r, t, buy_ask, sell_bid, net)
            record["reason"] = "converged" if eligible else "stale"
            record["duration_ms"] = t - r[1]
            return record
        r[2] = max(r[2], net)
        if abs(net - r[3]) >= s.update_usd:
            r[3] = net
            return _arb("update", legs, r, t, buy_ask, sell_bid, net)
        return None


def _arb(
    event: str,
    legs: tuple[str, str, str],
    r: list[Any],
    t: int,
    buy_ask: float,
    sell_bid: float,
    net: float,
) -> dict[str, Any]:
    instrument, buy, sell = legs
    return {
        "type": "signal",
        "kind": "arb",
        "event": event,
        "instrument": instrument,
        "buy": buy,
        "sell": sell,
        "ts": t,
        "opened_ts": r[1],
        "buy_px": buy_ask,
        "sell_px": sell_bid,
        "gross": sell_bid - buy_ask,
        "net": net,
        "net_bps": net / buy_ask * 10000.0,
        "peak_net": r[2],
        "reason": None,
    }


def output_key(record: dict[str, Any]) -> str:
    """An output's key, as arbstream keys it (docs/records.md)."""
    if record["type"] == "spread":
        return f"{record['instrument']}|{record['a']}|{record['b']}"
    return f"{record['instrument']}|arb|{record['buy']}>{record['sell']}"


def main() -> None:
    config_path, bootstrap = sys.argv[1:3]  # argv[3], the web port, is not used
    settings = load_settings(config_path)
    from quixstreams import Application  # type: ignore[import-not-found]  # noqa: PLC0415
    from quixstreams.models.serializers import (  # type: ignore[import-not-found]  # noqa: PLC0415
        Deserializer,
    )

    class PartitionScope(Deserializer):  # type: ignore[misc]
        """Every ticks key read as one: the State's scope is the partition (see above)."""

        def __call__(self, value: bytes, ctx: Any) -> str:
            return "partition"

    commit_interval = float(os.environ.get("BENCH_QUIX_COMMIT_INTERVAL_S", COMMIT_INTERVAL_S))
    monitor = Monitor(settings)
    state_dir = tempfile.mkdtemp(prefix="arbstream-quix-")
    try:
        # the broker's security settings, as librdkafka keys (pipeline_bench passes them)
        security = json.loads(os.environ.get(QUIX_KAFKA_CONFIG) or "{}")
        app = Application(
            broker_address=bootstrap,
            consumer_extra_config=security,
            producer_extra_config=security,
            consumer_group=consumer_group(settings.prefix),
            processing_guarantee="exactly-once",
            auto_offset_reset="earliest",
            commit_interval=commit_interval,
            # A checkpoint is committed after a poll returns: when the input pauses, a
            # poll of the default 1 s would hold the last outputs that long.
            consumer_poll_timeout=commit_interval,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        ticks = app.topic(
            f"{settings.prefix}.ticks", key_deserializer=PartitionScope(), value_deserializer="json"
        )
        spreads = app.topic(
            f"{settings.prefix}.spreads", key_serializer="str", value_serializer="json"
        )
        signals = app.topic(
            f"{settings.prefix}.signals", key_serializer="str", value_serializer="json"
        )
        sdf = app.dataframe(ticks)
        sdf = sdf.apply(monitor.process, stateful=True, expand=True)
        sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
        sdf.to_topic(
            lambda value, key, timestamp, headers: (
                spreads if value["type"] == "spread" else signals
            ),
            key=output_key,
        )
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
