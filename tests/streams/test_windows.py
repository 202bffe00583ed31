"""Window statistics against a brute-force recomputation, and std accuracy."""

from __future__ import annotations

import math
import statistics

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbstream.streams.windows import PairWindows

WINDOWS = (50, 400)


def brute(
    samples: list[tuple[int, float]], t: int, w: int
) -> tuple[int, float, float, float, float]:
    xs = [x for ts, x in samples if t - w < ts <= t]
    return len(xs), math.fsum(xs) / len(xs), statistics.pstdev(xs), min(xs), max(xs)


values = st.one_of(
    st.floats(-1e4, 1e4, allow_nan=False),
    st.sampled_from([0.0, 1.0, -6.785, 1e-7, 123456.789]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), values), min_size=1, max_size=400))
def test_stats_equal_brute_force(steps: list[tuple[int, float]]) -> None:
    pw = PairWindows(WINDOWS)
    t = 0
    samples: list[tuple[int, float]] = []
    for dt, x in steps:
        t += dt
        samples.append((t, x))
        pw.add(t, x)
        for (n, mean, var, lo, hi), w in zip(pw.stats(), WINDOWS, strict=True):
            bn, bmean, bstd, blo, bhi = brute(samples, t, w)
            scale = max(1.0, *(abs(x) for _, x in samples))
            assert n == bn
            assert math.isclose(mean, bmean, rel_tol=1e-12, abs_tol=1e-12 * scale)
            assert abs(math.sqrt(var) - bstd) <= 1e-9 * scale
            assert (lo, hi) == (blo, bhi)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.5]), st.booleans()),
        min_size=1,
        max_size=600,
    )
)
def test_min_and_max_of_batched_samples_equal_brute_force(
    steps: list[tuple[int, float, bool]],
) -> None:
    """Samples folded in batches of any length (statistics asked now and then), with many
    ties: the queues built a batch at a time give every window's exact min and max."""
    pw = PairWindows(WINDOWS)
    t = 0
    samples: list[tuple[int, float]] = []
    for dt, x, ask in steps:
        t += dt
        samples.append((t, x))
        pw.add(t, x)
        if ask:
            for (n, _, _, lo, hi), w in zip(pw.stats(), WINDOWS, strict=True):
                bn, _, _, blo, bhi = brute(samples, t, w)
                assert (n, lo, hi) == (bn, blo, bhi)


def _live(pw: PairWindows) -> list[tuple[list[int], list[int]]]:
    """Each window's part of the min and max queues (what its statistics read)."""
    return [(pw.minq[w.minhead :], pw.maxq[w.maxhead :]) for w in pw.windows]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),
            st.sampled_from([-1.0, 0.0, -0.0, 1.0, 2.0, 2.0, math.inf, math.nan]),
            st.integers(0, 12),
        ),
        min_size=1,
        max_size=700,
    ),
    st.lists(st.sampled_from([30, 50, 120, 400]), min_size=1, max_size=3, unique=True),
)
def test_queues_built_a_batch_at_a_time_equal_those_built_a_sample_at_a_time(
    steps: list[tuple[int, float, int]], windows: list[int]
) -> None:
    """Every window's part of the queues, exactly (ties, the floor of the lowest head, a
    NaN that no comparison orders, state round trips): folding batches of any size gives
    what folding each sample as it comes gives."""
    batched, single = PairWindows(tuple(windows)), PairWindows(tuple(windows))
    t = 0
    for i, (dt, x, ask) in enumerate(steps):
        t += dt
        batched.add(t, x)
        single.add(t, x)
        single.stats()
        if ask == 0 or i == len(steps) - 1:
            batched.stats()
            assert _live(batched) == _live(single)
        if ask == 1:  # a worker restarted from its state (JSON's part: test_engine_properties)
            state = batched.to_state()
            batched = PairWindows.from_state(state, batched.ts[:], batched.xs[:])


@pytest.mark.parametrize("tail", [-6.785, 3.3333, 85.31])
def test_std_of_equal_samples_after_large_ones_left_is_zero(tail: float) -> None:
    # Huge and wild samples first, then a long run of one value: once the huge ones
    # have left the window, the std must be 0 to 1e-9. Running sum / sum-of-squares
    # gives 0.073 for the tail 3.3333 (and a negative variance for the others).
    pw = PairWindows((100,))
    t = 0
    for i in range(1000):
        t += 1
        pw.add(t, 1e6 * (-1) ** i + i * 1234.5)
        if i % 7 == 0:
            pw.stats()
    for _ in range(500):
        t += 1
        pw.add(t, tail)
    ((n, mean, var, lo, hi),) = pw.stats()
    assert n == 100 and mean == pytest.approx(tail, abs=1e-12) and lo == hi == tail
    assert math.sqrt(var) < 1e-9


def test_std_of_nearly_equal_samples() -> None:
    pw = PairWindows((1000,))
    xs = [100.0 + k * 1e-10 for k in range(-5, 6)] * 20
    for t, x in enumerate(xs, start=1):
        pw.add(t, x)
    ((_n, _mean, var, _lo, _hi),) = pw.stats()
    assert abs(math.sqrt(var) - statistics.pstdev(xs)) < 1e-12


def test_memory_is_bounded_by_window_contents() -> None:
    pw = PairWindows((100, 1000))
    for t in range(1, 200_000):
        pw.add(t, float(t % 17))  # never asked for stats: folding happens by itself
    assert len(pw.xs) <= 2 * 1000 + 1024
    # the min/max queues drop their dead prefix too
    assert len(pw.minq) <= 2 * 1000 + 1024 and len(pw.maxq) <= 2 * 1000 + 1024


def test_state_round_trip_continues_identically() -> None:
    a = PairWindows((30, 90))
    for t in range(0, 300, 3):
        a.add(t, math.sin(t))
        if t % 9 == 0:
            a.stats()
    state = orjson.loads(orjson.dumps(a.to_state()))
    b = PairWindows.from_state(state, a.ts[:], a.xs[:])
    for t in range(300, 600, 7):
        a.add(t, math.cos(t))
        b.add(t, math.cos(t))
        assert a.stats() == b.stats()
