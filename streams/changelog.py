"""The engine's state (streams/state.py) as key-value entries: their keys, encoding and
decoding.

A worker keeps the engine's state in a compacted Kafka topic, and the state is too big to
write whole after every batch: a 300 s window at 1 ms ticks holds 300,000 samples per
pair. So the state is cut into entries that change independently:

* ``meta``: state format version and config digest (written once);
* ``fx``: the FX book;
* ``i/<instrument>``: everything about one instrument except window samples (clock,
  quotes, arbitrage routes, wide-market venues, halted venues, price levels' sides, and
  per pair the window sums and where its samples are: ``PairWindows.to_state``);
* ``w/<instrument>/<a>|<b>/<chunk>``: samples ``[chunk*CHUNK, (chunk+1)*CHUNK)`` (by
  absolute index) of one pair, as packed int64 times and float64 values.

After a batch only the entries it touched are written: the FX book if FX arrived, the
touched instruments, and the chunks that received samples (a chunk is rewritten while it
fills). Chunks whose samples every window has dropped are deleted (value ``None``), so
a compacted changelog holds O(window contents), never O(ticks). Window sums travel as
they are, so a restored engine continues bit for bit where the old one stopped.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from arbstream.streams.errors import StateError
from arbstream.streams.signals import ArbRoute
from arbstream.streams.state import BasisState, InstrumentState, PairState
from arbstream.streams.windows import PairWindows

STATE_VERSION: Final = 3
#: Samples per chunk entry: 4 KiB. Small, because the chunk that is filling is rewritten
#: by every batch that adds to it.
CHUNK: Final = 256
META_KEY: Final = "meta"
FX_KEY: Final = "fx"
_INSTRUMENT: Final = "i/"

#: One state entry: key and value; a value of None deletes the key.
Entry = tuple[str, bytes | None]


def instrument_key(instrument: str) -> str:
    return f"{_INSTRUMENT}{instrument}"


def instruments_in(entries: Mapping[str, bytes]) -> Iterator[str]:
    """The instruments whose state ``entries`` hold."""
    for key in entries:
        if key.startswith(_INSTRUMENT):
            yield key[len(_INSTRUMENT) :]


def chunk_key(instrument: str, pair: tuple[str, str], chunk: int) -> str:
    return f"w/{instrument}/{pair[0]}|{pair[1]}/{chunk}"


def meta_entry(digest: str) -> bytes:
    return orjson.dumps({"version": STATE_VERSION, "config": digest})


def check_meta(value: bytes | None, digest: str) -> None:
    """Refuse state written by another format version or under another config."""
    if value is None:
        raise StateError("state has no meta entry")
    meta = _loads(value, META_KEY)
    if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION:
        raise StateError(f"unsupported state version in {meta!r}")
    if meta.get("config") != digest:
        raise StateError("state was written under a different config")


def _portable_value(v: Any) -> Any:
    """``v``, or as text ("inf", "-inf", "nan") a float that is not finite.

    JSON has no infinities or NaN (orjson writes them as null), yet valid input can make
    them: prices near the largest double overflow when normalised or squared in a
    window's sums. As text they survive the round trip: every decoder here reads a
    state's floats with ``float()``, which reads the text back.
    """
    return v if type(v) is not float or math.isfinite(v) else repr(v)


def _portable(values: list[Any]) -> list[Any]:
    """``values`` with each float that is not finite as text (``_portable_value``)."""
    return [_portable_value(v) for v in values]


def encode_fx(book: Mapping[str, tuple[float, int]]) -> bytes:
    return orjson.dumps({pair: _portable([mid, ts]) for pair, (mid, ts) in book.items()})


def decode_fx(value: bytes) -> dict[str, tuple[float, int]]:
    try:
        return {p: (float(m), int(ts)) for p, (m, ts) in _loads(value, FX_KEY).items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise StateError(f"malformed state entry {FX_KEY!r}: {exc!r}") from exc


def instrument_entries(name: str, st: InstrumentState, everything: bool = False) -> list[Entry]:
    """The entries of one instrument: its own, deletions of chunks no window needs any
    more, and the chunks that gained samples since they were last written; the written
    samples are then marked saved. With ``everything``: its own entry and every chunk,
    and the bookkeeping is left alone (a snapshot, not a change)."""
    pairs: list[list[Any]] = []
    chunks: list[Entry] = []
    for pair, ps in st.pairs.items():
        pw = ps.windows
        end = pw.base + len(pw.xs)
        if everything:
            begin = pw.base
        else:
            chunks += [
                (chunk_key(name, pair, c), None) for c in range(ps.low_chunk, pw.base // CHUNK)
            ]
            ps.low_chunk = pw.base // CHUNK
            begin = max(ps.saved, pw.base)
            ps.saved = end
        for c in range(begin // CHUNK, (end - 1) // CHUNK + 1 if end > begin else 0):
            lo, hi = max(c * CHUNK, pw.base) - pw.base, min((c + 1) * CHUNK, end) - pw.base
            data = array("q", [lo + pw.base, *pw.ts[lo:hi]]).tobytes()
            chunks.append((chunk_key(name, pair, c), data + array("d", pw.xs[lo:hi]).tobytes()))
        windows_state = pw.to_state()  # [base, folded, end, [each window's numbers]]
        windows_state[3] = [_portable(w) for w in windows_state[3]]
        pairs.append([pair[0], pair[1], ps.last_emit, *windows_state])
    own = {
        "clock": st.clock,
        "quotes": {n: [q.bid, q.ask, q.ts, q.bid_size, q.ask_size] for n, q in st.quotes.items()},
        "routes": [_portable(r.to_state()) for r in st.routes],
        "wide_open": sorted(st.wide_open),
        "pairs": pairs,
        "basis": [[b.last_emit, b.open, b.opened_ts] for b in st.basis],
        "stock_ts": st.stock_ts,
        "coverage": {venue: _portable_value(c) for venue, c in st.coverage.items()},
        "delivery_open": sorted(st.delivery_open),
        "seq": [[stream, key, n] for (stream, key), n in st.seq.items()],
        "status_ts": st.status_ts,
        "halted": st.halted,
        "level_sides": st.level_sides,
    }
    return [(instrument_key(name), orjson.dumps(own)), *chunks]


def decode_instrument(
    name: str, entries: Mapping[str, bytes], n_routes: int, n_basis: int
) -> tuple[InstrumentState, dict[str, list[Any]]]:
    """Rebuild one instrument from its entries. Returns the state, with quotes still to
    be bound to the config by the engine (``{venue: [bid, ask, ts, bid_size,
    ask_size]}``)."""
    key = instrument_key(name)
    try:
        data = _loads(entries[key], key)
        st = InstrumentState(0)
        st.clock = int(data["clock"])
        st.routes = [ArbRoute.from_state(r) for r in data["routes"]]
        if len(st.routes) != n_routes:
            raise StateError(f"state of {name} has {len(st.routes)} routes, config {n_routes}")
        st.wide_open = {str(v) for v in data["wide_open"]}
        st.basis = [
            BasisState(None if e is None else int(e), bool(o), int(t)) for e, o, t in data["basis"]
        ]
        if len(st.basis) != n_basis:
            raise StateError(f"state of {name} has {len(st.basis)} basis pairs, config {n_basis}")
        st.stock_ts = {str(v): int(t) for v, t in data["stock_ts"].items()}
        st.delivery_open = {str(v) for v in data["delivery_open"]}
        # Absent from the entries of builds before coverage was kept: it fills again with
        # the next stock record of each venue.
        st.coverage = {str(v): float(c) for v, c in data.get("coverage", {}).items()}
        # Absent from the entries of builds before seq: numbering starts again at 1.
        st.seq = {(str(s), str(k)): int(n) for s, k, n in data.get("seq", [])}
        # Absent from the entries of builds before halts and levels: every venue trading,
        # every level's side still to be found.
        st.status_ts = {str(v): int(t) for v, t in data.get("status_ts", {}).items()}
        st.halted = {str(v): int(t) for v, t in data.get("halted", {}).items()}
        st.level_sides = {str(n): str(s) for n, s in data.get("level_sides", {}).items()}
        for a, b, last_emit, *windows_state in data["pairs"]:
            pair = (str(a), str(b))
            base, _, end, _ = windows_state
            tss, xs = _decode_samples(name, pair, entries, int(base), int(end))
            pw = PairWindows.from_state(windows_state, tss, xs)
            ps = PairState(pw, None if last_emit is None else int(last_emit))
            ps.saved = int(end)
            ps.low_chunk = pw.base // CHUNK
            st.pairs[pair] = ps
        quotes: dict[str, list[Any]] = data["quotes"]
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError(f"malformed state of instrument {name!r}: {exc!r}") from exc
    return st, quotes


def _decode_samples(
    name: str, pair: tuple[str, str], entries: Mapping[str, bytes], base: int, end: int
) -> tuple[list[int], list[float]]:
    """The pair's samples ``[base, end)``, gathered from its chunk entries."""
    tss_all, xs_all = array("q"), array("d")
    for c in range(base // CHUNK, (end - 1) // CHUNK + 1 if end > base else 0):
        key = chunk_key(name, pair, c)
        raw = entries.get(key)
        if raw is None or (len(raw) - 8) % 16:
            raise StateError(f"state entry {key!r} is missing or malformed")
        first = int.from_bytes(raw[:8], sys.byteorder, signed=True)
        count = (len(raw) - 8) // 16
        tss, xs = array("q"), array("d")
        tss.frombytes(raw[8 : 8 + 8 * count])
        xs.frombytes(raw[8 + 8 * count :])
        # The chunk may start below base (written before the prefix was dropped).
        skip = base + len(xs_all) - first
        if skip < 0 or skip > count:
            raise StateError(f"state entry {key!r} does not continue the samples before it")
        tss_all.extend(tss[skip:])
        xs_all.extend(xs[skip:])
    if base + len(xs_all) < end:
        raise StateError(f"samples of {name} {pair} end at {base + len(xs_all)}, expected {end}")
    del tss_all[end - base :]
    del xs_all[end - base :]
    return tss_all.tolist(), xs_all.tolist()


def _loads(value: bytes, key: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"state entry {key!r} is not JSON: {exc}") from exc
