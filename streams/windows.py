"""Event-time sliding windows over one pair's spread samples (contracts.md §4).

All windows of a pair share one sample buffer (time-ordered, since the instrument clock
never goes back). Each window keeps:

* an index range into the buffer: samples with ``ts`` in ``(t - W, t]``;
* compensated (Neumaier) sums of ``x - anchor`` and ``(x - anchor)**2``, so ``std`` stays
  accurate to ~1e-12 even when large samples have left the window and the ones left
  are equal or nearly so (the one-pass sum-of-squares formula loses everything there);
* monotonic deques for ``min`` and ``max``.

Every operation is O(1) amortised. The sums are rebuilt from the buffer (and the anchor
moved to the window's mean) once as many samples have left as the window holds, which
bounds rounding drift at O(1) amortised cost. The buffer drops the prefix no window
needs once that prefix is as long as the rest.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

#: ``z`` is null below this std (contracts.md §4).
MIN_STD = 1e-9


class Window:
    """Running statistics of the samples of one window length."""

    __slots__ = (
        "anchor",
        "c1",
        "c2",
        "evicted",
        "length_ms",
        "maxq",
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
        self.s1 = 0.0  # sum of (x - anchor), compensation in c1
        self.c1 = 0.0
        self.s2 = 0.0  # sum of (x - anchor)**2, compensation in c2
        self.c2 = 0.0
        self.evicted = 0  # samples removed since the sums were last rebuilt
        self.minq: deque[int] = deque()  # absolute indices, values increasing
        self.maxq: deque[int] = deque()  # absolute indices, values decreasing

    def rebuild(self, xs: list[float], base: int, end: int) -> None:
        """Recompute the sums exactly from the buffer, re-anchored at the mean."""
        values = xs[self.start - base : end - base]
        self.n = len(values)
        self.anchor = math.fsum(values) / self.n if values else 0.0
        devs = [x - self.anchor for x in values]
        self.s1, self.c1 = math.fsum(devs), 0.0
        self.s2, self.c2 = math.fsum(d * d for d in devs), 0.0
        self.evicted = 0

    def to_state(self) -> list[Any]:
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
            list(self.minq),
            list(self.maxq),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> Window:
        w = cls(int(state[0]))
        (w.start, w.n, w.anchor, w.s1, w.c1, w.s2, w.c2, w.evicted) = state[1:9]
        w.minq = deque(state[9])
        w.maxq = deque(state[10])
        return w


class PairWindows:
    """The shared sample buffer and every window of one pair."""

    __slots__ = ("base", "ts", "windows", "xs")

    def __init__(self, windows_ms: tuple[int, ...]) -> None:
        self.xs: list[float] = []
        self.ts: list[int] = []
        self.base = 0  # absolute index of xs[0]
        self.windows = [Window(w) for w in windows_ms]

    def add(self, t: int, x: float) -> list[tuple[int, float, float, float, float, int]]:
        """Add sample ``x`` at clock ``t``; return per window (n, mean, var, min, max, W)."""
        xs = self.xs
        tss = self.ts
        base = self.base
        xs.append(x)
        tss.append(t)
        end = base + len(xs)
        idx = end - 1
        out = []
        for w in self.windows:
            # Enter: compensated sums of the deviation from the anchor.
            if w.n == 0:
                w.anchor = x
                w.s1 = w.c1 = w.s2 = w.c2 = 0.0
            d = x - w.anchor
            s = w.s1
            tot = s + d
            w.c1 += (s - tot) + d if abs(s) >= abs(d) else (d - tot) + s
            w.s1 = tot
            dd = d * d
            s = w.s2
            tot = s + dd
            w.c2 += (s - tot) + dd if abs(s) >= dd else (dd - tot) + s
            w.s2 = tot
            w.n += 1
            q = w.minq
            while q and xs[q[-1] - base] >= x:
                q.pop()
            q.append(idx)
            q = w.maxq
            while q and xs[q[-1] - base] <= x:
                q.pop()
            q.append(idx)
            # Leave: samples with ts <= t - W.
            limit = t - w.length_ms
            start = w.start
            while tss[start - base] <= limit:
                d = xs[start - base] - w.anchor
                s = w.s1
                tot = s - d
                w.c1 += (s - tot) - d if abs(s) >= abs(d) else (-d - tot) + s
                w.s1 = tot
                dd = d * d
                s = w.s2
                tot = s - dd
                w.c2 += (s - tot) - dd if abs(s) >= dd else (-dd - tot) + s
                w.s2 = tot
                w.n -= 1
                w.evicted += 1
                start += 1
            if start != w.start:
                w.start = start
                q = w.minq
                while q[0] < start:
                    q.popleft()
                q = w.maxq
                while q[0] < start:
                    q.popleft()
                if w.evicted >= w.n:
                    w.rebuild(xs, base, end)
            n = w.n
            m1 = (w.s1 + w.c1) / n
            var = (w.s2 + w.c2) / n - m1 * m1
            out.append(
                (
                    n,
                    w.anchor + m1,
                    var if var > 0.0 else 0.0,
                    xs[w.minq[0] - base],
                    xs[w.maxq[0] - base],
                    w.length_ms,
                )
            )
        # Drop the prefix that no window needs once it is as long as what remains.
        first = min(w.start for w in self.windows) - base
        if first and first * 2 >= len(xs):
            del xs[:first]
            del tss[:first]
            self.base = base + first
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "xs": list(self.xs),
            "ts": list(self.ts),
            "windows": [w.to_state() for w in self.windows],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PairWindows:
        pw = cls(())
        pw.base = int(state["base"])
        pw.xs = [float(x) for x in state["xs"]]
        pw.ts = [int(t) for t in state["ts"]]
        pw.windows = [Window.from_state(w) for w in state["windows"]]
        return pw
