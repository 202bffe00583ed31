"""Event-time sliding windows over one pair's spread samples (docs/evaluation.md, "Spreads
and their windows").

All windows of a pair share one sample buffer (time-ordered, since the instrument clock
never goes back). Each window keeps:

* the absolute index of its oldest sample: samples with ``ts`` in ``(t - W, t]``;
* compensated (Neumaier) sums of ``x - anchor`` and ``(x - anchor)**2``, so ``std`` stays
  accurate to ~1e-12 even when large samples have left the window and the ones left
  are equal or nearly so (the one-pass sum-of-squares formula loses everything there);
* its head positions in the pair's two monotonic queues of absolute indices, for
  ``min`` and ``max``. The queues are shared by all windows of the pair: a window's
  min-queue is the positions of the suffix minima among its samples, and those of a
  shorter window (the same latest samples) are exactly the longer window's from the first
  index inside the shorter one, so each window only keeps where its part begins. The
  queues are lists; the dead prefix is dropped in bulk.

Samples are appended cheaply and *folded* into the windows when statistics are asked
for (a spread record is due) or every ``FOLD_EVERY`` samples, in one tight loop: with
``spread_emit_ms`` > 0 most samples are never looked at one by one from Python's call
machinery. Every operation is O(1) amortised. A window's sums are rebuilt exactly from
the buffer (re-anchored at its mean) once ``REBUILD_AFTER`` times as many samples have
left as it holds, which bounds rounding drift at O(1) amortised cost. The buffer drops
the prefix that no window needs once that prefix is as long as the rest.

Samples, timestamps and queues are plain lists, not ``array``/``deque``: compiled with
mypyc (setup.py), list indexing, append and pop are native operations, where an array's
or a deque's go through Python's generic item and method protocols at every sample.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any, Final

#: ``z`` is null below this std (docs/evaluation.md).
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


#: Drop a monotonic queue's dead prefix once it is this long and longer than the rest.
_COMPACT_AT: Final = 256


def _sum(values: list[float]) -> float:
    """The correctly rounded sum, or where there is none the IEEE one: math.fsum raises
    on an infinity meeting its opposite (NaN) and on a finite sum beyond the largest
    double (infinity), which valid prices near that double produce."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return sum(values)


class Window:
    """Running statistics of the samples of one window length."""

    __slots__ = (
        "anchor",
        "c1",
        "c2",
        "evicted",
        "length_ms",
        "maxhead",
        "minhead",
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
        # where this window's part of the pair's min and max queues begins
        self.minhead = 0
        self.maxhead = 0

    def fold(
        self,
        xs: list[float],
        tss: list[int],
        base: int,
        begin: int,
        end: int,
        t: int,
        minq: list[int],
        maxq: list[int],
    ) -> None:
        """Add samples ``[begin, end)`` (absolute indices; already in the pair's queues
        ``minq`` and ``maxq``), then drop those with ts <= t - W."""
        anchor, s1, c1, s2, c2, n = self.anchor, self.s1, self.c1, self.s2, self.c2, self.n
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
            minhead, maxhead = self.minhead, self.maxhead
            while minq[minhead] < start:
                minhead += 1
            while maxq[maxhead] < start:
                maxhead += 1
            self.minhead, self.maxhead = minhead, maxhead
            self.evicted += start - first
        self.n = n
        if self.evicted >= REBUILD_AFTER * n:
            self.rebuild(xs, base)

    def rebuild(self, xs: list[float], base: int) -> None:
        """Recompute the sums exactly from the buffer, re-anchored at the window's mean."""
        values = xs[self.start - base : self.start - base + self.n]
        self.anchor = _sum(values) / len(values) if values else 0.0
        devs = [x - self.anchor for x in values]
        self.s1, self.c1 = _sum(devs), 0.0
        self.s2, self.c2 = _sum([d * d for d in devs]), 0.0
        self.evicted = 0

    def stats(self, xs: list[float], base: int, minq: list[int], maxq: list[int]) -> Stats:
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
            xs[minq[self.minhead] - base],
            xs[maxq[self.maxhead] - base],
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
    def from_state(cls, state: list[Any]) -> Window:
        """Rebuild from ``to_state``; its queue heads are the pair's to place
        (``PairWindows.from_state``)."""
        length_ms, start, n, anchor, s1, c1, s2, c2, evicted = state
        w = cls(int(length_ms))
        w.start, w.n, w.evicted = int(start), int(n), int(evicted)
        w.anchor, w.s1, w.c1, w.s2, w.c2 = (float(x) for x in (anchor, s1, c1, s2, c2))
        return w


class PairWindows:
    """The shared sample buffer and every window of one pair."""

    __slots__ = ("base", "folded", "longest", "maxq", "minq", "ts", "windows", "xs")

    def __init__(self, windows_ms: tuple[int, ...]) -> None:
        self.xs: list[float] = []
        self.ts: list[int] = []
        self.base = 0  # absolute index of xs[0]
        self.folded = 0  # absolute index of the first sample not yet folded
        # absolute indices of the folded samples' suffix minima (values increasing) and
        # maxima (decreasing); each window's part begins at its head
        self.minq: list[int] = []
        self.maxq: list[int] = []
        self.windows = [Window(w) for w in windows_ms]
        self.longest = max(self.windows, key=lambda w: w.length_ms) if self.windows else None

    def add(self, t: Any, x: float) -> None:
        """Append sample ``x`` at clock ``t`` (an int; t never decreases).

        ``t`` is typed ``Any`` so compiled code appends the caller's int object as it is:
        the pairs sampled at one tick then share one boxed timestamp, where an ``int``
        parameter would be boxed anew (an allocation) for every pair's list."""
        self.xs.append(x)
        self.ts.append(t)
        if len(self.xs) + self.base - self.folded >= FOLD_EVERY:
            self._fold()

    def stats(self) -> list[Stats]:
        """Statistics of every window (in constructor order) at the latest sample's clock."""
        self._fold()
        xs, base, minq, maxq = self.xs, self.base, self.minq, self.maxq
        return [w.stats(xs, base, minq, maxq) for w in self.windows]

    def _push(self, begin: int, end: int) -> None:
        """Put samples ``[begin, end)`` into the min and max queues.

        In one backward pass over the batch: of its samples, the queues keep exactly its
        strict suffix minima (maxima), since pushing a sample pops every queued one that
        is not below (above) it; and the batch pops the queued samples that are not below
        its minimum (above its maximum), down to the lowest window head at most. The same
        queues as pushing one sample at a time (``_push_each``), without boxing and
        appending every sample's index only to pop most of them.

        A NaN (a spread of two mids that overflowed) compares false with everything, so
        pushed one at a time it pops nothing and is never popped: a batch holding one is
        pushed one sample at a time, which keeps that order exactly.
        """
        if end - begin <= 1:
            # One sample (the worker's usual fold, a tick at a time): the one-at-a-time
            # push is the same without the batch's two lists.
            if begin < end:
                self._push_each(begin, end)
            return
        xs, base, minq, maxq = self.xs, self.base, self.minq, self.maxq
        last = end - 1 - base
        lo = hi = xs[last]
        if math.isnan(lo):
            self._push_each(begin, end)
            return
        lows = [last]  # positions in xs, latest first
        highs = [last]
        for i in range(last - 1, begin - base - 1, -1):
            x = xs[i]
            if x < lo:
                lo = x
                lows.append(i)
            elif x > hi:
                hi = x
                highs.append(i)
            elif math.isnan(x):
                self._push_each(begin, end)
                return
        minfloor, maxfloor = self._floors()
        while len(minq) > minfloor and xs[minq[-1] - base] >= lo:
            minq.pop()
        minlow = len(minq)
        for k in range(len(lows) - 1, -1, -1):
            minq.append(lows[k] + base)
        while len(maxq) > maxfloor and xs[maxq[-1] - base] <= hi:
            maxq.pop()
        maxlow = len(maxq)
        for k in range(len(highs) - 1, -1, -1):
            maxq.append(highs[k] + base)
        self._lower_heads(minlow, maxlow)

    def _push_each(self, begin: int, end: int) -> None:
        """Put samples ``[begin, end)`` into the min and max queues one at a time."""
        xs, base, minq, maxq = self.xs, self.base, self.minq, self.maxq
        minfloor, maxfloor = self._floors()
        minlow, maxlow = len(minq), len(maxq)
        for i in range(begin - base, end - base):
            x = xs[i]
            while len(minq) > minfloor and xs[minq[-1] - base] >= x:
                minq.pop()
            minlow = min(minlow, len(minq))
            minq.append(i + base)
            while len(maxq) > maxfloor and xs[maxq[-1] - base] <= x:
                maxq.pop()
            maxlow = min(maxlow, len(maxq))
            maxq.append(i + base)
        self._lower_heads(minlow, maxlow)

    def _floors(self) -> tuple[int, int]:
        """The lowest window head in the min queue and in the max queue: the entries
        before it are dead, in every window."""
        # A loop, not min() of two lists: this runs twice per fold, and the lists were
        # most of its cost.
        first = self.windows[0]
        minfloor, maxfloor = first.minhead, first.maxhead
        for w in self.windows:
            minfloor = min(minfloor, w.minhead)
            maxfloor = min(maxfloor, w.maxhead)
        return minfloor, maxfloor

    def _lower_heads(self, minlow: int, maxlow: int) -> None:
        """After a push cut the queues back to ``minlow`` and ``maxlow`` entries, a window
        whose part was popped begins there (the new samples there are inside every
        window)."""
        for w in self.windows:
            w.minhead = min(w.minhead, minlow)
            w.maxhead = min(w.maxhead, maxlow)

    def _compact(self) -> None:
        """Drop the queues' prefix that every window has left, once it is long."""
        windows = self.windows
        minfloor, maxfloor = self._floors()
        if minfloor >= _COMPACT_AT and minfloor * 2 >= len(self.minq):
            del self.minq[:minfloor]
            for w in windows:
                w.minhead -= minfloor
        if maxfloor >= _COMPACT_AT and maxfloor * 2 >= len(self.maxq):
            del self.maxq[:maxfloor]
            for w in windows:
                w.maxhead -= maxfloor

    def _fold(self) -> None:
        xs, tss, base = self.xs, self.ts, self.base
        end = base + len(xs)
        if not self.windows:
            self.folded = end
            return
        t = tss[-1]
        if self.folded < end:
            self._push(self.folded, end)
        minq, maxq = self.minq, self.maxq
        for w in self.windows:
            w.fold(xs, tss, base, self.folded, end, t, minq, maxq)
        self.folded = end
        self._compact()
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
        pw.windows = [Window.from_state(w) for w in windows]
        pw.longest = max(pw.windows, key=lambda w: w.length_ms) if pw.windows else None
        if pw.windows:
            # The queues are what pushing the windows' folded samples builds; each window's
            # part begins at its first entry inside it.
            pw._push(min(w.start for w in pw.windows), pw.folded)
            for w in pw.windows:
                w.minhead = bisect_left(pw.minq, w.start)
                w.maxhead = bisect_left(pw.maxq, w.start)
        return pw
