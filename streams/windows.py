"""Event-time sliding windows over one pair's spread samples (contracts.md §4).

All windows of a pair share one sample buffer (time-ordered, since the instrument clock
never goes back). Each window keeps:

* the absolute index of its oldest sample: samples with ``ts`` in ``(t - W, t]``;
* compensated (Neumaier) sums of ``x - anchor`` and ``(x - anchor)**2``, so ``std`` stays
  accurate to ~1e-12 even when large samples have left the window and the ones left
  are equal or nearly so (the one-pass sum-of-squares formula loses everything there);
* monotonic queues of absolute indices for ``min`` and ``max`` (lists with a head
  index: a popped-left entry is skipped, and the dead prefix is dropped in bulk).

Samples are appended cheaply and *folded* into the windows when statistics are asked
for (a spread record is due) or every ``FOLD_EVERY`` samples, in one tight loop: with
``spread_emit_ms`` > 0 most samples are never looked at one by one from Python's call
machinery. Every operation is O(1) amortised. A window's sums are rebuilt exactly from
the buffer (re-anchored at its mean) once as many samples have left as it holds, which
bounds rounding drift at O(1) amortised cost. The buffer drops the prefix that no
window needs once that prefix is as long as the rest.

Samples, timestamps and queues are plain lists, not ``array``/``deque``: compiled with
mypyc (setup.py), list indexing, append and pop are native operations, where an array's
or a deque's go through Python's generic item and method protocols at every sample.
"""

from __future__ import annotations

import math
from typing import Any, Final

#: ``z`` is null below this std (contracts.md §4).
MIN_STD: Final = 1e-9
#: Fold pending samples at least this often, so the buffer stays O(window contents).
FOLD_EVERY: Final = 1024

#: Rebuild a window's sums once this many times as many samples have left as it holds:
#: the compensated sums drift by about eps per sample removed, so this still bounds the
#: drift, and a rebuild (two exact sums over the window) costs a quarter per sample of
#: what rebuilding after one window's worth did.
REBUILD_AFTER: Final = 4

#: Re-anchor when (mean - anchor)**2 exceeds this many variances: var = E[d²] - m1² then
#: loses about eps * m1² to cancellation, so this keeps std's error near 1e-14 * std.
REANCHOR: Final = 64.0

#: (n, mean, variance, min, max) of one window.
Stats = tuple[int, float, float, float, float]


#: A clock before every sample: folding with it evicts nothing.
_NO_EVICTION = -(2**63)
#: Drop a monotonic queue's dead prefix once it is this long and longer than the rest.
_COMPACT_AT: Final = 256


class Window:
    """Running statistics of the samples of one window length."""

    __slots__ = (
        "anchor",
        "c1",
        "c2",
        "evicted",
        "length_ms",
        "maxhead",
        "maxq",
        "minhead",
        "minq",
        "n",
        "s1",
        "s2",
        "start",
    )

    def __init__(self, length_ms: int) -> None:
        self.length_ms = length_ms
        self.start = 0  # absolute index of the oldest sample inside the window
        self.n = 0
        self.anchor = 0.0
        self.s1 = 0.0  # sum of (x - anchor); Neumaier compensation in c1
        self.c1 = 0.0
        self.s2 = 0.0  # sum of (x - anchor)**2; compensation in c2
        self.c2 = 0.0
        self.evicted = 0  # samples removed since the sums were last rebuilt
        # absolute indices; live from the head index on; values increasing (min) and
        # decreasing (max) from the head
        self.minq: list[int] = []
        self.minhead = 0
        self.maxq: list[int] = []
        self.maxhead = 0

    def fold(
        self, xs: list[float], tss: list[int], base: int, begin: int, end: int, t: int
    ) -> None:
        """Add samples ``[begin, end)`` (absolute indices), then drop those with ts <= t - W."""
        anchor, s1, c1, s2, c2, n = self.anchor, self.s1, self.c1, self.s2, self.c2, self.n
        minq, maxq = self.minq, self.maxq
        minhead, maxhead = self.minhead, self.maxhead
        if n == 0 and begin < end:
            anchor = xs[begin - base]
            s1 = c1 = s2 = c2 = 0.0
        for i in range(begin - base, end - base):
            x = xs[i]
            d = x - anchor
            tot = s1 + d
            c1 += (s1 - tot) + d if abs(s1) >= abs(d) else (d - tot) + s1
            s1 = tot
            dd = d * d
            tot = s2 + dd
            c2 += (s2 - tot) + dd if abs(s2) >= dd else (dd - tot) + s2
            s2 = tot
            while len(minq) > minhead and xs[minq[-1] - base] >= x:
                minq.pop()
            minq.append(i + base)
            while len(maxq) > maxhead and xs[maxq[-1] - base] <= x:
                maxq.pop()
            maxq.append(i + base)
        n += end - begin
        limit = t - self.length_ms
        start = self.start
        first = start
        while tss[start - base] <= limit:
            d = xs[start - base] - anchor
            tot = s1 - d
            c1 += (s1 - tot) - d if abs(s1) >= abs(d) else (-d - tot) + s1
            s1 = tot
            dd = d * d
            tot = s2 - dd
            c2 += (s2 - tot) - dd if abs(s2) >= dd else (-dd - tot) + s2
            s2 = tot
            start += 1
        self.anchor, self.s1, self.c1, self.s2, self.c2 = anchor, s1, c1, s2, c2
        if start != first:
            n -= start - first
            self.start = start
            while minq[minhead] < start:
                minhead += 1
            while maxq[maxhead] < start:
                maxhead += 1
            if minhead >= _COMPACT_AT and minhead * 2 >= len(minq):
                del minq[:minhead]
                minhead = 0
            if maxhead >= _COMPACT_AT and maxhead * 2 >= len(maxq):
                del maxq[:maxhead]
                maxhead = 0
            self.evicted += start - first
        self.minhead, self.maxhead = minhead, maxhead
        self.n = n
        if self.evicted >= REBUILD_AFTER * n:
            self.rebuild(xs, base)

    def rebuild(self, xs: list[float], base: int) -> None:
        """Recompute the sums exactly from the buffer, re-anchored at the window's mean."""
        values = xs[self.start - base : self.start - base + self.n]
        self.anchor = math.fsum(values) / len(values) if values else 0.0
        devs = [x - self.anchor for x in values]
        self.s1, self.c1 = math.fsum(devs), 0.0
        self.s2, self.c2 = math.fsum([d * d for d in devs]), 0.0
        self.evicted = 0

    def stats(self, xs: list[float], base: int) -> Stats:
        n = self.n
        m1 = (self.s1 + self.c1) / n
        var = (self.s2 + self.c2) / n - m1 * m1
        if m1 * m1 > REANCHOR * var and m1 != 0.0:
            # The mean has moved far from the anchor relative to the spread: var is a
            # difference of nearly equal numbers now. Re-anchor at the mean, exactly.
            self.rebuild(xs, base)
            m1 = (self.s1 + self.c1) / n
            var = (self.s2 + self.c2) / n - m1 * m1
        return (
            n,
            self.anchor + m1,
            var if var > 0.0 else 0.0,
            xs[self.minq[self.minhead] - base],
            xs[self.maxq[self.maxhead] - base],
        )

    def to_state(self) -> list[Any]:
        """The window's numbers; its min/max queues are derived from the samples."""
        return [
            self.length_ms,
            self.start,
            self.n,
            self.anchor,
            self.s1,
            self.c1,
            self.s2,
            self.c2,
            self.evicted,
        ]

    @classmethod
    def from_state(
        cls, state: list[Any], xs: list[float], tss: list[int], base: int, folded: int
    ) -> Window:
        """Rebuild from ``to_state`` and the pair's samples (``xs[0]`` has absolute index
        ``base``; samples before ``folded`` have been folded in)."""
        length_ms, start, n, anchor, s1, c1, s2, c2, evicted = state
        w = cls(int(length_ms))
        # The min/max queues are what folding the window's samples builds: fold them
        # again, with a clock that evicts nothing, then restore the saved sums as they
        # were (a restored engine continues bit for bit).
        w.start = int(start)
        w.fold(xs, tss, base, w.start, folded, _NO_EVICTION)
        w.n, w.evicted = int(n), int(evicted)
        w.anchor, w.s1, w.c1, w.s2, w.c2 = (float(x) for x in (anchor, s1, c1, s2, c2))
        return w


class PairWindows:
    """The shared sample buffer and every window of one pair."""

    __slots__ = ("base", "folded", "longest", "ts", "windows", "xs")

    def __init__(self, windows_ms: tuple[int, ...]) -> None:
        self.xs: list[float] = []
        self.ts: list[int] = []
        self.base = 0  # absolute index of xs[0]
        self.folded = 0  # absolute index of the first sample not yet folded
        self.windows = [Window(w) for w in windows_ms]
        self.longest = max(self.windows, key=lambda w: w.length_ms) if self.windows else None

    def add(self, t: int, x: float) -> None:
        """Append sample ``x`` at clock ``t`` (t never decreases)."""
        self.xs.append(x)
        self.ts.append(t)
        if len(self.xs) + self.base - self.folded >= FOLD_EVERY:
            self._fold()

    def stats(self) -> list[Stats]:
        """Statistics of every window (in constructor order) at the latest sample's clock."""
        self._fold()
        xs, base = self.xs, self.base
        return [w.stats(xs, base) for w in self.windows]

    def _fold(self) -> None:
        xs, tss, base = self.xs, self.ts, self.base
        end = base + len(xs)
        t = tss[-1]
        for w in self.windows:
            w.fold(xs, tss, base, self.folded, end, t)
        self.folded = end
        # Drop the prefix that no window needs once it is as long as what remains.
        assert self.longest is not None
        first = self.longest.start - base
        if first and first * 2 >= len(xs):
            del xs[:first]
            del tss[:first]
            self.base = base + first

    def to_state(self) -> list[Any]:
        """``[base, folded, end, [window state, ...]]``: everything but the samples, which
        the caller stores (streams/changelog.py keeps them in chunks)."""
        end = self.base + len(self.xs)
        return [self.base, self.folded, end, [w.to_state() for w in self.windows]]

    @classmethod
    def from_state(cls, state: list[Any], ts: list[int], xs: list[float]) -> PairWindows:
        """Rebuild from ``to_state`` and the samples ``[base, end)``."""
        base, folded, end, windows = state
        if len(xs) != len(ts) or len(xs) != int(end) - int(base):
            raise ValueError(f"{len(xs)} samples for [{base}, {end})")
        pw = cls(())
        pw.base, pw.folded, pw.ts, pw.xs = int(base), int(folded), ts, xs
        pw.windows = [Window.from_state(w, xs, ts, pw.base, pw.folded) for w in windows]
        pw.longest = max(pw.windows, key=lambda w: w.length_ms) if pw.windows else None
        return pw
