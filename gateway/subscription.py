"""What a gateway client asks for, and whether a record is part of it.

A subscription is a set of filters, each a list of values; an empty or missing list
means "all". A filter narrows only the records that have what it names:

======================  ==========================================================
filter                  applies to
======================  ==========================================================
``types``               every record (``spread``, ``signal``, ``basis``, ``quote``)
``kinds``               signals (``arb``, ``wide``, ``basis``, ``delivery``, ``halt``,
                        ``level``)
``instruments``         every record with an ``instrument``
``venues``              every record naming venues: a spread's ``a``/``b``, an arb
                        signal's ``buy``/``sell``, a basis record's or basis signal's
                        ``spot``/``future``, a wide, delivery, halt or level signal's or
                        a quote's ``venue``; the record matches if any of them is listed
``pairs``               spreads and basis records: ``"A|B"``, either order
``routes``              arb and basis signals: ``"BUY>SELL"`` or ``"SPOT>FUTURE"``
======================  ==========================================================

So ``{"types": ["spread"], "pairs": ["COMEX|SHFE"]}`` is one pair's spreads, and
``{"kinds": ["arb"]}`` is every arb signal and every record that is not a signal.
Messages are validated strictly: an unknown field or a wrong type is an error the
client is told about, never a guess.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arbstream.gateway.errors import SubscriptionError

RecordType = Literal["spread", "signal", "basis", "quote"]
SignalKind = Literal["arb", "wide", "basis", "delivery", "halt", "level"]

#: Values per filter at most: a subscription is a filter, not a data upload.
MAX_VALUES = 256
_Names = list[str]


class Subscription(BaseModel):
    """A client's filters (the ``filters`` of a subscribe message, or SSE's query)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[RecordType] = Field(default_factory=list, max_length=4)
    kinds: list[SignalKind] = Field(default_factory=list, max_length=4)
    instruments: _Names = Field(default_factory=list, max_length=MAX_VALUES)
    venues: _Names = Field(default_factory=list, max_length=MAX_VALUES)
    pairs: _Names = Field(default_factory=list, max_length=MAX_VALUES)
    routes: _Names = Field(default_factory=list, max_length=MAX_VALUES)

    def matcher(self) -> Matcher:
        return Matcher(self)


class SubscribeMessage(BaseModel):
    """``{"op": "subscribe", "filters": {...}}``: replace the client's subscription."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["subscribe"]
    filters: Subscription = Field(default_factory=Subscription)


def parse_message(text: str | bytes) -> Subscription:
    """A client's message as a subscription, or :class:`SubscriptionError` saying why."""
    try:
        return SubscribeMessage.model_validate_json(text).filters
    except ValidationError as exc:
        raise SubscriptionError(_problems(exc)) from exc


def parse_query(query: dict[str, str]) -> Subscription:
    """SSE's query string (``?types=spread,signal&instruments=XAG``) as a subscription."""
    filters = {name: [v for v in value.split(",") if v] for name, value in query.items()}
    try:
        return Subscription.model_validate(filters)
    except ValidationError as exc:
        raise SubscriptionError(_problems(exc)) from exc


def _problems(exc: ValidationError) -> str:
    """The first few problems, each as ``where: what`` (``message`` for the whole)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:5]
    )


def _venues_of(record: dict[str, Any]) -> tuple[Any, ...]:
    kind = record.get("type")
    if kind == "spread":
        return record.get("a"), record.get("b")
    if kind == "basis" or record.get("kind") == "basis":
        return record.get("spot"), record.get("future")
    if record.get("kind") == "arb":
        return record.get("buy"), record.get("sell")
    return (record.get("venue"),)


def _pair_of(record: dict[str, Any]) -> tuple[Any, Any] | None:
    kind = record.get("type")
    if kind == "spread":
        return record.get("a"), record.get("b")
    if kind == "basis":
        return record.get("spot"), record.get("future")
    return None


def _route_of(record: dict[str, Any]) -> str | None:
    if record.get("type") != "signal":
        return None
    if record.get("kind") == "arb":
        return f"{record.get('buy')}>{record.get('sell')}"
    if record.get("kind") == "basis":
        return f"{record.get('spot')}>{record.get('future')}"
    return None


class Matcher:
    """A subscription compiled to sets, for one test per record."""

    __slots__ = ("_instruments", "_kinds", "_pairs", "_routes", "_types", "_venues")

    def __init__(self, subscription: Subscription) -> None:
        self._types = frozenset(subscription.types)
        self._kinds = frozenset(subscription.kinds)
        self._instruments = frozenset(subscription.instruments)
        self._venues = frozenset(subscription.venues)
        pairs: set[tuple[str, str]] = set()
        for pair in subscription.pairs:
            a, _, b = pair.partition("|")
            pairs.update({(a, b), (b, a)})
        self._pairs = frozenset(pairs)
        self._routes = frozenset(subscription.routes)

    def __call__(self, record: dict[str, Any]) -> bool:
        kind = record.get("type")
        if self._types and kind not in self._types:
            return False
        if self._kinds and kind == "signal" and record.get("kind") not in self._kinds:
            return False
        if (
            self._instruments
            and "instrument" in record
            and record["instrument"] not in self._instruments
        ):
            return False
        if self._venues:
            named = [v for v in _venues_of(record) if v is not None]
            if named and not any(v in self._venues for v in named):
                return False
        if self._pairs:
            pair = _pair_of(record)
            if pair is not None and pair not in self._pairs:
                return False
        if self._routes:
            route = _route_of(record)
            if route is not None and route not in self._routes:
                return False
        return True


SCHEMA_ID = "https://arbstream.invalid/schemas/gateway-subscribe.schema.json"
SUBSCRIBE_EXAMPLES = [
    {"op": "subscribe"},
    {"op": "subscribe", "filters": {"types": ["signal"], "kinds": ["arb", "basis"]}},
    {"op": "subscribe", "filters": {"types": ["spread"], "pairs": ["COMEX|SHFE"]}},
]


def subscribe_schema() -> dict[str, Any]:
    """The JSON Schema of a subscribe message, generated from the model above: the
    protocol's one definition (docs/schemas/gateway-subscribe.schema.json is this,
    written by ``python -m gateway.subscription``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **SubscribeMessage.model_json_schema(),
        "title": "gateway subscribe",
        "description": (
            "What a client sends on the gateway's WebSocket /ws to choose what it receives; "
            "it replaces the client's subscription. Empty or missing filters mean all. "
            "docs/gateway.md says what each filter applies to."
        ),
        "examples": SUBSCRIBE_EXAMPLES,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(subscribe_schema(), indent=2))
