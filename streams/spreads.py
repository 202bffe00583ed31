"""Spreads (docs/evaluation.md, "Spreads and their windows"): on a fresh quote, one
sample per pair of its venue with a fresh other leg, into the pair's windows, and a
spread record when the pair's last one is ``spread_emit_ms`` old.

Venues and pairs are numbered by the engine; each venue's :class:`PairLink` list says
which pairs its quotes sample, so the per-quote loop reads lists, never dicts of names.
"""

from __future__ import annotations

from typing import Any

from arbstream.streams.config import EngineConfig
from arbstream.streams.state import InstrumentState, PairState, VenueQuote
from arbstream.streams.windows import MIN_STD, PairWindows

#: One output: (stream, key, record), as the engine's.
Output = tuple[str, str | None, dict[str, Any]]


class PairLink:
    """One venue's side of one pair: the other venue's number, whether this venue is the
    pair's ``a`` (names sorted), and the pair's number, names and key part ``"A|B"``."""

    __slots__ = ("a", "b", "first", "index", "key", "other", "pair")

    def __init__(
        self, venue_index: dict[str, int], pairs: list[tuple[str, str]], pair: tuple[str, str],
        venue: str,
    ) -> None:  # fmt: skip
        self.a, self.b = pair
        self.first = venue == self.a
        self.other = venue_index[self.b if self.first else self.a]
        self.index = pairs.index(pair)
        self.key = f"{self.a}|{self.b}"
        # ``Any``: one object in compiled code (a value typed as the tuple is boxed anew
        # at every use), the key of InstrumentState.pairs
        self.pair: Any = pair


class Spreads:
    """The spread sampling of one engine: its pairs' links and the settings it reads per
    quote."""

    def __init__(
        self, config: EngineConfig, venue_index: dict[str, int], pairs: list[tuple[str, str]]
    ) -> None:
        self._links: list[list[PairLink]] = [
            [PairLink(venue_index, pairs, p, name) for p in pairs if name in p]
            for name in config.venue_names
        ]
        self._emit_ms = config.spread_emit_ms
        self._windows_ms = config.windows_ms
        self._window_names = [str(w) for w in config.windows_ms]
        #: The last spread record emitted per (instrument, "A|B") (the engine's
        #: ``latest_spreads``).
        self.latest: dict[tuple[str, str], dict[str, Any]] = {}

    def sample(
        self,
        instrument: str,
        state: InstrumentState,
        vi: int,
        quote: VenueQuote,
        t: int,
        out: list[Output],
    ) -> None:
        """Sample every pair of ``quote``'s venue (number ``vi``) with a fresh other leg."""
        emit_ms = self._emit_ms
        window_names = self._window_names
        slots = state.slots
        pair_slots = state.pair_slots
        t_shared: Any = t  # boxed once for every pair's samples (PairWindows.add)
        for link in self._links[vi]:
            q_other = slots[link.other]
            if q_other is None or not q_other.fresh:
                continue
            qa, qb = (quote, q_other) if link.first else (q_other, quote)
            a_mid = (qa.nbid + qa.nask) / 2.0
            b_mid = (qb.nbid + qb.nask) / 2.0
            spread = a_mid - b_mid
            ps = pair_slots[link.index]
            if ps is None:
                ps = PairState(PairWindows(self._windows_ms))
                pair_slots[link.index] = state.pairs[link.pair] = ps
            ps.windows.add(t_shared, spread)
            if ps.last_emit is not None and t - ps.last_emit < emit_ms:
                continue
            ps.last_emit = t
            windows: dict[str, dict[str, Any]] = {}
            for name, (n, mean, var, lo, hi) in zip(window_names, ps.windows.stats(), strict=True):
                std = var**0.5
                windows[name] = {
                    "n": n,
                    "mean": mean,
                    "std": std,
                    "min": lo,
                    "max": hi,
                    "z": (spread - mean) / std if n >= 2 and std >= MIN_STD else None,
                }
            record = {
                "type": "spread",
                "instrument": instrument,
                "a": link.a,
                "b": link.b,
                "ts": t,
                "a_mid": a_mid,
                "b_mid": b_mid,
                "spread": spread,
                "spread_bps": spread / b_mid * 10000.0,
                "windows": windows,
            }
            out.append(("spreads", f"{instrument}|{link.key}", record))
            self.latest[instrument, link.key] = record
