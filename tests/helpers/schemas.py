"""The JSON Schemas of docs/schemas, for checking the records the tests produce.

``check_output`` validates one output record (spread, signal, rejected) against the
schema of its type, and fails on a record type the schemas do not describe. conftest.py
calls it on every record any engine returns during the test run, and tests/helpers/pipeline.py
on every record read back from a worker's output topics: a field or record type added
to the engine but not to its schema fails the suite.

Validation uses validators compiled by fastjsonschema (about 6 us a record; the suite
checks about a million). fastjsonschema implements draft 7; the schemas are draft
2020-12 but use only keywords whose meaning is the same in both, and
tests/test_event_api.py checks that the two agree, with jsonschema's draft 2020-12
validator as the reference, on valid and broken records.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
#: (type, kind) of an output record -> its schema file.
OUTPUT_SCHEMAS = {
    ("spread", None): "spread.schema.json",
    ("signal", "arb"): "signal-arb.schema.json",
    ("signal", "wide"): "signal-wide.schema.json",
    ("signal", "basis"): "signal-basis.schema.json",
    ("signal", "delivery"): "signal-delivery.schema.json",
    ("signal", "halt"): "signal-halt.schema.json",
    ("signal", "level"): "signal-level.schema.json",
    ("basis", None): "basis.schema.json",
    ("rejected", None): "rejected.schema.json",
}
INPUT_SCHEMAS = {
    "quote": "quote.schema.json",
    "fx": "fx.schema.json",
    "stock": "stock.schema.json",
    "status": "status.schema.json",
}
#: The gateway's protocol: what a client sends, what the gateway sends.
GATEWAY_SCHEMAS = {
    "subscribe": "gateway-subscribe.schema.json",
    "message": "gateway-message.schema.json",
}


def registry() -> Registry:
    """Every schema of docs/schemas under its $id, so that $refs between them resolve
    (for jsonschema's reference validators)."""
    return Registry().with_resources(
        (c["$id"], Resource.from_contents(c))
        for c in (json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json"))
    )


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


@cache
def _validator(name: str) -> Callable[[Any], Any]:
    schema = load(name)
    # fastjsonschema picks its draft from $schema and knows no 2020-12: compile as draft 7
    # (the same meaning for every keyword these schemas use; see the module docstring).
    schema = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    return fastjsonschema.compile(schema)


def output_schema(record: Any) -> str:
    """The schema file of an output record; AssertionError for an unknown kind."""
    kind = (record.get("type"), record.get("kind")) if isinstance(record, dict) else None
    name = OUTPUT_SCHEMAS.get(kind) if kind is not None else None
    assert name is not None, f"no schema describes this output record: {record!r:.300}"
    return name


#: How many outputs the session's schema check has seen, by the path they came by
#: (tests/conftest.py): ``process``, ``replay_lines``, ``encode_values``.
CHECKED: Counter[str] = Counter()


def check_output(record: Any) -> None:
    """AssertionError unless ``record`` is valid under its type's schema."""
    name = output_schema(record)
    try:
        _validator(name)(record)
    except fastjsonschema.JsonSchemaException as exc:
        raise AssertionError(f"{name}: {exc.message}: {record!r:.500}") from None


def check_outputs(records: Iterable[Any]) -> None:
    for record in records:
        check_output(record)


def check_input(record: Any) -> None:
    """AssertionError unless ``record`` is a valid quote or fx record."""
    name = INPUT_SCHEMAS.get(record.get("type")) if isinstance(record, dict) else None
    assert name is not None, f"not an input record: {record!r:.300}"
    try:
        _validator(name)(record)
    except fastjsonschema.JsonSchemaException as exc:
        raise AssertionError(f"{name}: {exc.message}: {record!r:.500}") from None
