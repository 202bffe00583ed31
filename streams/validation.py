"""Decoding and stateless validation of input records (docs/records.md; docs/evaluation.md,
"Rejection").

The checks that need engine state (``unknown_venue``, ``out_of_order``) live in the
engine; everything here is a pure function of the bytes. Reasons are checked in the
contract's order and the first failing one wins.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

import orjson

BAD_JSON: Final = "bad_json"
BAD_TYPE: Final = "bad_type"
MISSING_FIELD: Final = "missing_field"
BAD_VALUE: Final = "bad_value"
CROSSED: Final = "crossed"
UNKNOWN_VENUE: Final = "unknown_venue"
OUT_OF_ORDER: Final = "out_of_order"
#: Every rejection reason, in the order the contract checks them.
REASONS: Final = (
    BAD_JSON,
    BAD_TYPE,
    MISSING_FIELD,
    BAD_VALUE,
    CROSSED,
    UNKNOWN_VENUE,
    OUT_OF_ORDER,
)

FX_FIELDS: Final = ("pair", "bid", "ask", "ts")
#: A status record's ``status``: the venue stops or resumes trading the instrument.
HALTED: Final = "halted"
TRADING: Final = "trading"
#: A status record's ``note`` is carried into its halt signal up to this many characters.
NOTE_LIMIT: Final = 200
#: Event times are epoch milliseconds; Kafka and every consumer store them as int64.
MAX_TS: Final = 2**63
#: The largest int compiled code holds unboxed (63-bit tagged): a comparison with MAX_TS,
#: which is beyond it, takes the slow generic path, so times are compared with this first.
_SHORT_MAX: Final = 2**62 - 1
RAW_LIMIT: Final = 4096
#: The longest venue or instrument name (characters). Names become parts of output keys
#: and state entries; the bound keeps every output and state entry far below a topic's
#: message size limit, whatever an input says.
NAME_LIMIT: Final = 64
_PAIR = re.compile(r"USD[A-Z]{3}")
#: A field's value when the field is absent (a JSON null is None).
_MISSING: Final = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: bytes | str) -> Any:
    """Parse one JSON value; raise ValueError when it is not valid JSON.

    orjson is the fast path. It refuses some valid JSON (integers beyond a double's
    range, and nesting deeper than 1024), so on failure the standard library decides,
    with NaN/Infinity refused as the JSON grammar says. Input nested deeper than the
    interpreter's recursion limit is reported as not JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError("not valid JSON") from exc


def raw_text(raw: bytes | str) -> str:
    """The input as text for a rejected record, without its line terminator (a replay
    passes lines as read): at most RAW_LIMIT characters."""
    if isinstance(raw, bytes):
        # Decode no more than needed: a UTF-8 character is at most 4 bytes (and a longer
        # line's terminator is beyond what is kept).
        cut = raw[: RAW_LIMIT * 4] if len(raw) > RAW_LIMIT * 4 else raw.rstrip(b"\r\n")
        raw = cut.decode("utf-8", errors="replace")
    elif len(raw) <= RAW_LIMIT:
        raw = raw.rstrip("\r\n")
    return raw[:RAW_LIMIT]


def _is_name(v: object) -> bool:
    """A non-empty string of at most NAME_LIMIT characters that encodes as UTF-8."""
    if type(v) is not str or not v or len(v) > NAME_LIMIT:
        return False
    if v.isascii():
        return True
    try:  # the stdlib fallback admits lone surrogates, which cannot be re-encoded
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _price(v: object) -> float | None:
    """A finite number > 0 as float, else None (booleans are not numbers)."""
    t = type(v)
    if t is float:
        f: float = v  # type: ignore[assignment]
        return f if 0.0 < f < math.inf else None
    if t is int:
        try:
            f = float(v)  # type: ignore[arg-type]
        except OverflowError:
            return None
        return f if f > 0.0 else None
    return None


def _ts(v: object) -> int | None:
    if type(v) is int and v >= 0 and (v <= _SHORT_MAX or v < MAX_TS):
        return v
    return None


def _amount(v: object) -> float | None:
    """A finite number >= 0 as float, else None (booleans are not numbers)."""
    if (type(v) is int or type(v) is float) and v == 0:
        return 0.0
    return _price(v)


def size(v: object) -> float | None:
    """A usable quote size (a finite number > 0), else None: sizes are optional fields,
    so an unusable one counts as absent and never rejects its quote."""
    return _price(v)


def check(obj: Any) -> tuple[str | None, str, float, float, int]:
    """Stateless checks of a decoded value.

    Returns ``(reason, type, a, b, ts)``; ``reason`` is None when the record passes.
    ``a, b`` are ``bid, ask`` for a quote or fx record, ``registered, open_interest`` for
    a stock record, and ``1.0, 0.0`` (halted) or ``0.0, 0.0`` (trading) for a status
    record.
    """
    if type(obj) is not dict:
        return BAD_JSON, "", 0.0, 0.0, 0
    rec: dict[str, Any] = obj  # typed, so compiled code reads it with dict operations
    kind = rec.get("type")
    # Each field is read once; _MISSING tells an absent field from a JSON null.
    if kind in ("quote", "stock"):
        venue = rec.get("venue", _MISSING)
        instrument = rec.get("instrument", _MISSING)
        if kind == "quote":
            a, b = rec.get("bid", _MISSING), rec.get("ask", _MISSING)
        else:
            a, b = rec.get("registered", _MISSING), rec.get("open_interest", _MISSING)
        ts_value = rec.get("ts", _MISSING)
        if (
            venue is _MISSING
            or instrument is _MISSING
            or a is _MISSING
            or b is _MISSING
            or ts_value is _MISSING
        ):
            return MISSING_FIELD, kind, 0.0, 0.0, 0
        ts = _ts(ts_value)
        first = _amount(a) if kind == "stock" else _price(a)  # registered may be 0
        second = _price(b)
        if first is None or second is None or ts is None:
            return BAD_VALUE, kind, 0.0, 0.0, 0
        if not (_is_name(venue) and _is_name(instrument)):
            return BAD_VALUE, kind, 0.0, 0.0, 0
        if kind == "stock":
            return None, kind, first, second, ts
    elif kind == "status":
        return _check_status(rec)
    elif kind == "fx":
        for field in FX_FIELDS:
            if field not in rec:
                return MISSING_FIELD, kind, 0.0, 0.0, 0
        ts = _ts(rec["ts"])
        first = _price(rec["bid"])
        second = _price(rec["ask"])
        if first is None or second is None or ts is None:
            return BAD_VALUE, kind, 0.0, 0.0, 0
        pair = rec["pair"]
        if type(pair) is not str or _PAIR.fullmatch(pair) is None:
            return BAD_VALUE, kind, 0.0, 0.0, 0
    else:
        return BAD_TYPE, "", 0.0, 0.0, 0
    bid, ask = first, second  # a quote's or an fx record's
    if ask < bid:
        return CROSSED, kind, bid, ask, ts
    return None, kind, bid, ask, ts


def _check_status(rec: dict[str, Any]) -> tuple[str | None, str, float, float, int]:
    """A status record: ``venue``, ``instrument``, ``status``, ``ts`` required; the
    names and ``ts`` as for a quote, ``status`` one of two strings; nothing is crossed."""
    venue = rec.get("venue", _MISSING)
    instrument = rec.get("instrument", _MISSING)
    status = rec.get("status", _MISSING)
    ts_value = rec.get("ts", _MISSING)
    if venue is _MISSING or instrument is _MISSING or status is _MISSING or ts_value is _MISSING:
        return MISSING_FIELD, "status", 0.0, 0.0, 0
    ts = _ts(ts_value)
    if ts is None or type(status) is not str or status not in (HALTED, TRADING):
        return BAD_VALUE, "status", 0.0, 0.0, 0
    if not (_is_name(venue) and _is_name(instrument)):
        return BAD_VALUE, "status", 0.0, 0.0, 0
    return None, "status", 1.0 if status == HALTED else 0.0, 0.0, ts


def note(value: object) -> str | None:
    """A status record's ``note`` as its halt signal carries it: the string, when it is
    one of at most NOTE_LIMIT characters, else None."""
    if type(value) is str and len(value) <= NOTE_LIMIT:
        return value
    return None
