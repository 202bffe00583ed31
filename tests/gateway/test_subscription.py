"""Subscription messages and filters (gateway/subscription.py), on the contract's records."""

from __future__ import annotations

import orjson
import pytest
from jsonschema import Draft202012Validator

from arbstream.gateway.errors import SubscriptionError
from arbstream.gateway.subscription import (
    MAX_VALUES,
    SUBSCRIBE_EXAMPLES,
    Subscription,
    parse_message,
    parse_query,
    subscribe_schema,
)
from helpers.paths import REPO, SCENARIOS

SPREAD = {"type": "spread", "instrument": "XAG", "a": "COMEX", "b": "SHFE", "ts": 1}
ARB = {"type": "signal", "kind": "arb", "instrument": "XAG", "buy": "COMEX", "sell": "SHFE"}
WIDE = {"type": "signal", "kind": "wide", "instrument": "XAG", "venue": "SHUIBEI"}
BASIS = {"type": "basis", "instrument": "XAG", "spot": "LBMA", "future": "COMEX_H6"}
BASIS_SIGNAL = {
    "type": "signal",
    "kind": "basis",
    "instrument": "XAG",
    "spot": "LBMA",
    "future": "COMEX_H6",
}
DELIVERY = {"type": "signal", "kind": "delivery", "instrument": "XAG", "venue": "COMEX"}
QUOTE = {"type": "quote", "instrument": "XAU", "venue": "LBMA", "bid": 1.0, "ask": 2.0, "ts": 1}
ALL = [SPREAD, ARB, WIDE, BASIS, BASIS_SIGNAL, DELIVERY, QUOTE]


def _matching(filters: dict[str, list[str]]) -> list[dict[str, object]]:
    matcher = Subscription.model_validate(filters).matcher()
    return [r for r in ALL if matcher(r)]


def test_empty_filters_take_everything() -> None:
    assert _matching({}) == ALL
    assert parse_message('{"op": "subscribe"}') == Subscription()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"types": ["spread"]}, [SPREAD]),
        ({"types": ["signal"], "kinds": ["arb", "wide"]}, [ARB, WIDE]),
        # kinds narrow only signals
        ({"kinds": ["delivery"]}, [SPREAD, DELIVERY, BASIS, QUOTE]),
        ({"instruments": ["XAU"]}, [QUOTE]),
        # a record matches when any venue it names is listed
        ({"venues": ["SHFE"]}, [SPREAD, ARB]),
        ({"venues": ["COMEX_H6", "SHUIBEI"]}, [WIDE, BASIS, BASIS_SIGNAL]),
        # pairs in either order, for spreads and basis records only
        ({"types": ["spread", "basis"], "pairs": ["SHFE|COMEX"]}, [SPREAD]),
        ({"types": ["basis"], "pairs": ["LBMA|COMEX_H6"]}, [BASIS]),
        # routes are directed: buy>sell, spot>future
        ({"types": ["signal"], "routes": ["COMEX>SHFE"]}, [WIDE, DELIVERY, ARB]),
        ({"types": ["signal"], "routes": ["SHFE>COMEX"]}, [WIDE, DELIVERY]),
        ({"types": ["signal"], "kinds": ["basis"], "routes": ["LBMA>COMEX_H6"]}, [BASIS_SIGNAL]),
    ],
)
def test_each_filter_narrows_the_records_it_describes(
    filters: dict[str, list[str]], expected: list[dict[str, object]]
) -> None:
    assert sorted(map(orjson.dumps, _matching(filters))) == sorted(map(orjson.dumps, expected))


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("{not json", "Invalid JSON"),
        ('{"op": "unsubscribe"}', "op"),
        ('{"op": "subscribe", "filter": {}}', "filter: Extra inputs"),
        ('{"op": "subscribe", "filters": {"types": ["trade"]}}', "filters.types.0"),
        ('{"op": "subscribe", "filters": {"venues": "COMEX"}}', "filters.venues"),
        ('{"op": "subscribe", "filters": {"colour": ["red"]}}', "filters.colour"),
        ("[1, 2]", "message"),
        ("null", "message"),
        (
            orjson.dumps(
                {"op": "subscribe", "filters": {"venues": ["V"] * (MAX_VALUES + 1)}}
            ).decode(),
            "filters.venues",
        ),
    ],
)
def test_a_bad_message_is_an_error_that_says_where(message: str, problem: str) -> None:
    with pytest.raises(SubscriptionError, match=problem):
        parse_message(message)


def test_the_sse_query_is_the_same_filters() -> None:
    assert parse_query({"types": "spread,signal", "instruments": "XAG"}) == Subscription(
        types=["spread", "signal"], instruments=["XAG"]
    )
    assert parse_query({"kinds": ""}) == Subscription()
    with pytest.raises(SubscriptionError, match="colour"):
        parse_query({"colour": "red"})


def test_every_output_record_of_a_scenario_is_matched_by_its_own_filters() -> None:
    """Over a whole scenario's outputs: filtering by a record's own instrument, venues and
    type keeps it, and filtering by another instrument drops exactly the others."""
    lines = (SCENARIOS / "cny-holiday-2026-02" / "expected.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    outputs = [r for r in records if r["type"] in ("spread", "signal", "basis")]
    assert {r["type"] for r in outputs} == {"spread", "signal", "basis"}
    for r in outputs:
        venues = [r[k] for k in ("a", "b", "buy", "sell", "spot", "future", "venue") if k in r]
        own = Subscription(types=[r["type"]], instruments=[r["instrument"]], venues=venues[:1])
        assert own.matcher()(r), r
    other = Subscription(instruments=["XPT"]).matcher()
    assert not any(other(r) for r in outputs)


def test_the_published_schema_is_the_models() -> None:
    published = orjson.loads(
        (REPO / "docs" / "schemas" / "gateway-subscribe.schema.json").read_bytes()
    )
    assert published == subscribe_schema(), (
        "docs/schemas/gateway-subscribe.schema.json is stale: "
        "python -m arbstream.gateway.subscription > docs/schemas/gateway-subscribe.schema.json"
    )


@pytest.mark.parametrize(
    "message",
    [
        *SUBSCRIBE_EXAMPLES,
        {"op": "unsubscribe"},
        {"op": "subscribe", "filter": {}},
        {"op": "subscribe", "filters": {"types": ["trade"]}},
        {"op": "subscribe", "filters": {"venues": "COMEX"}},
        {"op": "subscribe", "filters": {"venues": ["V"] * (MAX_VALUES + 1)}},
        {"op": "subscribe", "filters": {"kinds": ["arb"] * 5}},
        [1, 2],
    ],
)
def test_the_schema_and_the_gateway_agree(message: object) -> None:
    schema = Draft202012Validator(subscribe_schema())
    try:
        parse_message(orjson.dumps(message))
        accepted = True
    except SubscriptionError:
        accepted = False
    assert schema.is_valid(message) == accepted
