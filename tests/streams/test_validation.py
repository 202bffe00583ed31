"""Every rejection reason, in the order of docs/evaluation.md ("Rejection"), as a table."""

from __future__ import annotations

import pytest

from arbstream.config import parse_config
from arbstream.streams.engine import Engine
from arbstream.streams.validation import RAW_LIMIT

CONFIG = parse_config(
    {
        "venues": {
            "COMEX": {"currency": "USD", "unit": "oz"},
            "SHFE": {"currency": "CNY", "unit": "kg", "vat": 0.13},
        }
    }
)
Q = '{"type": "quote", "venue": "COMEX", "instrument": "XAG", '
F = '{"type": "fx", "pair": "USDCNY", '
S = '{"type": "stock", "venue": "COMEX", "instrument": "XAG", '

CASES: list[tuple[str, str | bytes, str | None]] = [
    ("valid quote", Q + '"bid": 80.0, "ask": 80.1, "ts": 1000}', None),
    ("valid fx", F + '"bid": 7.1, "ask": 7.2, "ts": 1000}', None),
    ("int prices are numbers", Q + '"bid": 80, "ask": 81, "ts": 1000}', None),
    ("equal bid and ask", Q + '"bid": 80.0, "ask": 80.0, "ts": 1000}', None),
    (
        "extra fields pass",
        Q + '"bid": 80.0, "ask": 80.1, "ts": 1000, "seq": "x", "last": null}',
        None,
    ),
    ("valid stock", S + '"registered": 102000000, "open_interest": 366000000, "ts": 1}', None),
    ("no stock", S + '"registered": 0, "open_interest": 1.5, "ts": 1}', None),
    ("stock: more than owed", S + '"registered": 9, "open_interest": 1, "ts": 1}', None),
    ("stock missing", S + '"registered": 1, "ts": 1}', "missing_field"),
    ("stock negative", S + '"registered": -1, "open_interest": 1, "ts": 1}', "bad_value"),
    ("stock bool", S + '"registered": true, "open_interest": 1, "ts": 1}', "bad_value"),
    ("stock owes none", S + '"registered": 1, "open_interest": 0, "ts": 1}', "bad_value"),
    ("stock float ts", S + '"registered": 1, "open_interest": 2, "ts": 1.0}', "bad_value"),
    (
        "stock unknown venue",
        '{"type": "stock", "venue": "NOPE", "instrument": "XAG", "registered": 1, '
        '"open_interest": 2, "ts": 1}',
        "unknown_venue",
    ),
    ("truncated", Q + '"bid": 80.1,', "bad_json"),
    ("array", "[1,2,3]", "bad_json"),
    ("string", '"quote"', "bad_json"),
    ("number", "42", "bad_json"),
    ("null", "null", "bad_json"),
    ("NaN literal", Q + '"bid": NaN, "ask": 80.1, "ts": 1000}', "bad_json"),
    ("invalid utf-8", b'{"type": "quote", "venue": "\xff"}', "bad_json"),
    ("deeply nested", "[" * 100000 + "]" * 100000, "bad_json"),
    ("deeply nested object", '{"a":' * 100000 + "1" + "}" * 100000, "bad_json"),
    ("type missing", '{"venue": "COMEX"}', "bad_type"),
    ("type trade", '{"type": "trade", "venue": "COMEX"}', "bad_type"),
    ("type not string", '{"type": 1}', "bad_type"),
    ("type before fields", '{"type": "Quote"}', "bad_type"),
    ("ask missing", Q + '"bid": 80.0, "ts": 1000}', "missing_field"),
    ("ts missing", Q + '"bid": 80.0, "ask": 80.1}', "missing_field"),
    ("pair missing", '{"type": "fx", "bid": 7.1, "ask": 7.2, "ts": 1}', "missing_field"),
    (
        "instrument missing",
        '{"type": "quote", "venue": "COMEX", "bid": 1, "ask": 2, "ts": 1}',
        "missing_field",
    ),
    ("missing beats bad value", Q + '"bid": -1, "ts": 1000}', "missing_field"),
    ("bool bid", Q + '"bid": true, "ask": 80.1, "ts": 1000}', "bad_value"),
    ("string bid", Q + '"bid": "80.0", "ask": 80.1, "ts": 1000}', "bad_value"),
    ("zero bid", Q + '"bid": 0, "ask": 80.1, "ts": 1000}', "bad_value"),
    ("negative ask", Q + '"bid": 1.0, "ask": -80.1, "ts": 1000}', "bad_value"),
    ("null bid", Q + '"bid": null, "ask": 80.1, "ts": 1000}', "bad_value"),
    ("overflowing float", Q + '"bid": 1e400, "ask": 80.1, "ts": 1000}', "bad_value"),
    ("400-digit bid", Q + '"bid": 1' + "0" * 400 + ', "ask": 80.1, "ts": 1000}', "bad_value"),
    ("float ts", Q + '"bid": 80.0, "ask": 80.1, "ts": 1000.0}', "bad_value"),
    ("negative ts", Q + '"bid": 80.0, "ask": 80.1, "ts": -1}', "bad_value"),
    ("bool ts", Q + '"bid": 80.0, "ask": 80.1, "ts": true}', "bad_value"),
    ("400-digit ts", Q + '"bid": 80.0, "ask": 80.1, "ts": 1' + "0" * 400 + "}", "bad_value"),
    # the int64 bound, on both sides of the 2**62 that compiled code holds unboxed
    ("ts 2**62 - 1", Q + f'"bid": 80.0, "ask": 80.1, "ts": {2**62 - 1}}}', None),
    ("ts 2**62", Q + f'"bid": 80.0, "ask": 80.1, "ts": {2**62}}}', None),
    ("ts 2**63 - 1", Q + f'"bid": 80.0, "ask": 80.1, "ts": {2**63 - 1}}}', None),
    ("ts 2**63", Q + f'"bid": 80.0, "ask": 80.1, "ts": {2**63}}}', "bad_value"),
    ("ts 2**64", Q + f'"bid": 80.0, "ask": 80.1, "ts": {2**64}}}', "bad_value"),
    (
        "empty venue",
        '{"type": "quote", "venue": "", "instrument": "XAG", "bid": 1, "ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "venue number",
        '{"type": "quote", "venue": 7, "instrument": "XAG", "bid": 1, "ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "lone surrogate",
        '{"type": "quote", "venue": "COMEX", "instrument": "\\ud800", "bid": 1, "ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "64-character instrument",
        '{"type": "quote", "venue": "COMEX", "instrument": "' + "I" * 64 + '", "bid": 1, '
        '"ask": 2, "ts": 1}',
        None,
    ),
    (
        "64 non-ASCII characters",
        '{"type": "quote", "venue": "COMEX", "instrument": "' + "\u94f6" * 64 + '", "bid": 1, '
        '"ask": 2, "ts": 1}',
        None,
    ),
    (
        "65-character instrument",
        '{"type": "quote", "venue": "COMEX", "instrument": "' + "I" * 65 + '", "bid": 1, '
        '"ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "65-character venue",
        '{"type": "quote", "venue": "' + "V" * 65 + '", "instrument": "XAG", "bid": 1, '
        '"ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "2 MiB instrument",
        '{"type": "quote", "venue": "COMEX", "instrument": "' + "X" * 2_000_000 + '", "bid": 1, '
        '"ask": 2, "ts": 1}',
        "bad_value",
    ),
    (
        "lowercase pair",
        '{"type": "fx", "pair": "usdcny", "bid": 7.1, "ask": 7.2, "ts": 1}',
        "bad_value",
    ),
    (
        "pair not USD",
        '{"type": "fx", "pair": "EURCNY", "bid": 7.1, "ask": 7.2, "ts": 1}',
        "bad_value",
    ),
    (
        "pair too long",
        '{"type": "fx", "pair": "USDCNYX", "bid": 7.1, "ask": 7.2, "ts": 1}',
        "bad_value",
    ),
    ("bad value beats crossed", Q + '"bid": 81.0, "ask": 80.0, "ts": -5}', "bad_value"),
    ("crossed quote", Q + '"bid": 81.0, "ask": 80.0, "ts": 1000}', "crossed"),
    ("crossed fx", F + '"bid": 7.2, "ask": 7.1, "ts": 1000}', "crossed"),
    (
        "crossed beats unknown venue",
        '{"type": "quote", "venue": "X", "instrument": "XAG", "bid": 2, "ask": 1, "ts": 1}',
        "crossed",
    ),
    (
        "unknown venue",
        '{"type": "quote", "venue": "NYMEX", "instrument": "XAG", "bid": 1, "ask": 2, "ts": 1}',
        "unknown_venue",
    ),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejection_reason(raw: str | bytes, reason: str | None) -> None:
    engine = Engine(CONFIG)
    out = engine.process(raw, 7)
    rejected = [rec for stream, _, rec in out if stream == "dlq"]
    if reason is None:
        assert rejected == []
    else:
        assert len(rejected) == 1 and len(out) == 1
        rec = rejected[0]
        assert rec["reason"] == reason
        assert rec["type"] == "rejected" and rec["source"] == {"line": 7}
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        assert rec["raw"] == text[:RAW_LIMIT]


def test_out_of_order_per_venue_instrument_and_fx_pair() -> None:
    engine = Engine(CONFIG)

    def reasons(raw: str) -> list[str]:
        return [r["reason"] for s, _, r in engine.process(raw, 1) if s == "dlq"]

    assert reasons(Q + '"bid": 80.0, "ask": 80.1, "ts": 2000}') == []
    assert reasons(Q + '"bid": 80.0, "ask": 80.1, "ts": 2000}') == []  # equal ts is not older
    assert reasons(Q + '"bid": 80.0, "ask": 80.1, "ts": 1999}') == ["out_of_order"]
    other = '{"type": "quote", "venue": "COMEX", "instrument": "XAU", "bid": 1, "ask": 2, "ts": 5}'
    assert reasons(other) == []  # another instrument has its own sequence
    assert reasons(F + '"bid": 7.1, "ask": 7.2, "ts": 100}') == []
    assert reasons(F + '"bid": 7.1, "ask": 7.2, "ts": 99}') == ["out_of_order"]
    assert reasons('{"type": "fx", "pair": "USDINR", "bid": 86, "ask": 87, "ts": 1}') == []


def test_rejected_input_is_not_applied() -> None:
    engine = Engine(CONFIG)
    engine.process(Q + '"bid": 80.0, "ask": 80.1, "ts": 2000}', 1)
    before = engine.snapshot()
    engine.process(Q + '"bid": 81.0, "ask": 80.1, "ts": 3000}', 2)  # crossed
    engine.process(Q + '"bid": 80.0, "ask": 80.1, "ts": 1000}', 3)  # out of order
    assert engine.snapshot() == before


def test_raw_is_truncated_to_limit() -> None:
    engine = Engine(CONFIG)
    raw = '{"type": "trade", "pad": "' + "x" * 10_000 + '"}'
    ((_, _, rec),) = engine.process(raw, 1)
    assert rec["raw"] == raw[:RAW_LIMIT] and len(rec["raw"]) == RAW_LIMIT
