"""The machine-readable event API: docs/asyncapi.yaml (AsyncAPI 3.0) and the JSON Schemas
of docs/schemas (draft 2020-12), checked offline.

- the AsyncAPI document is valid under the official AsyncAPI 3.0.0 JSON Schema
  (tests/vendor/asyncapi/3.0.0.json), and describes every topic arbstream uses, with
  its Kafka binding, and every record type;
- every schema is a valid draft 2020-12 schema and its examples (and the document's
  message examples) are valid under it;
- the compiled validators of tests/helpers/schemas.py, which check every record the
  suite produces (conftest.py), agree with jsonschema's reference validator.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7 as _DRAFT7
from ruamel.yaml import YAML

from arbstream.agents.kafka.topics import Topics
from arbstream.config import load_config
from arbstream.streams.engine import Engine
from arbstream.streams.validation import CROSSED, check, decode
from helpers.paths import REPO, SCENARIO_NAMES, SCENARIOS
from helpers.schemas import (
    GATEWAY_SCHEMAS,
    INPUT_SCHEMAS,
    OUTPUT_SCHEMAS,
    SCHEMAS,
    check_input,
    load,
    output_schema,
    registry,
)

ASYNCAPI = REPO / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA = Path(__file__).resolve().parent / "vendor" / "asyncapi" / "3.0.0.json"
DRAFT_2020_12 = "application/schema+json;version=draft-2020-12"


@functools.cache
def reference(name: str) -> Draft202012Validator:
    """jsonschema's draft 2020-12 validator of one schema file (made once: making one
    costs more than validating a record)."""
    return Draft202012Validator(load(name), registry=registry())


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = YAML(typ="safe").load(ASYNCAPI.read_text())
    return document


def test_the_asyncapi_document_is_valid_asyncapi_3(asyncapi: dict[str, Any]) -> None:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    # The official schema bundles every definition (the Kafka bindings too) under $ids.
    registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=_DRAFT7))
        for d in schema["definitions"].values()
        if "$id" in d
    )
    validator = Draft7Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(asyncapi), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    assert asyncapi["asyncapi"] == "3.0.0"


def test_the_asyncapi_check_catches_a_broken_document(asyncapi: dict[str, Any]) -> None:
    broken = copy.deepcopy(asyncapi)
    broken["channels"]["ticks"]["bindings"]["kafka"]["partitions"] = 0
    schema = json.loads(ASYNCAPI_SCHEMA.read_text())
    registry = Registry().with_resources(
        (d["$id"], Resource.from_contents(d, default_specification=_DRAFT7))
        for d in schema["definitions"].values()
        if "$id" in d
    )
    assert list(Draft7Validator(schema, registry=registry).iter_errors(broken))


def _kafka_channels(asyncapi: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The channels on the Kafka server (the gateway's are on its own)."""
    kafka = {f"#/servers/{n}" for n, s in asyncapi["servers"].items() if s["protocol"] == "kafka"}
    out = {}
    for channel in asyncapi["channels"].values():
        servers = {ref["$ref"] for ref in channel["servers"]}
        assert servers, f"{channel['address']}: name its server"
        if servers <= kafka:
            out[channel["address"]] = channel
    return out


def test_every_topic_is_a_channel_with_its_kafka_binding(asyncapi: dict[str, Any]) -> None:
    topics = Topics("arb")
    channels = _kafka_channels(asyncapi)
    assert set(channels) == {*topics.all(), topics.state}
    for address, channel in channels.items():
        binding = channel["bindings"]["kafka"]
        assert binding["topic"] == address
        policy = binding["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if address == topics.state else ["delete"]), address
        assert channel["messages"], address
    assert (
        channels[topics.ticks]["bindings"]["kafka"]["topicConfiguration"]["max.message.bytes"]
        == 16 * 1024 * 1024
    )
    # every channel is used by an operation
    used = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in asyncapi["operations"].values()}
    assert used == set(asyncapi["channels"])


def _messages(asyncapi: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from asyncapi["components"]["messages"].items()


def test_every_record_type_has_a_message_with_its_schema_and_examples(
    asyncapi: dict[str, Any],
) -> None:
    referenced = set()
    for name, message in _messages(asyncapi):
        payload = message["payload"]
        if name == "stateEntry":  # opaque bytes, described in prose
            continue
        assert payload["schemaFormat"] == DRAFT_2020_12, name
        schema_file = payload["schema"]["$ref"].removeprefix("schemas/")
        assert (SCHEMAS / schema_file).is_file(), schema_file
        referenced.add(schema_file)
        assert message["examples"], name
        validator = reference(schema_file)
        for example in message["examples"]:
            errors = list(validator.iter_errors(example["payload"]))
            assert not errors, (name, example["name"], errors[0].message)
    described = (
        set(OUTPUT_SCHEMAS.values()) | set(INPUT_SCHEMAS.values()) | set(GATEWAY_SCHEMAS.values())
    )
    assert referenced == described


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_each_schema_is_valid_draft_2020_12_and_its_examples_validate(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    for example in schema.get("examples", []):
        errors = list(reference(path.name).iter_errors(example))
        assert not errors, errors[0].message


@pytest.mark.slow  # a reference validator over 50,000 records: about a minute
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_the_scenarios_expected_outputs_and_inputs_match_the_schemas(name: str) -> None:
    # What replay gives is valid under the reference validator, record by record...
    engine = Engine(load_config(SCENARIOS / name / "config.toml"))
    lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()
    for n, line in enumerate(lines, 1):
        for _, _, record in engine.process(line, n):
            errors = list(reference(output_schema(record)).iter_errors(record))
            assert not errors, errors[0].message
    # ... and the expected outputs use no field the schemas do not describe (they may
    # lack fields added since they were written: a reader ignores what it lacks).
    for line in (SCENARIOS / name / "expected.jsonl").read_bytes().splitlines():
        record = orjson.loads(line)
        described = load(output_schema(record))["properties"]
        assert set(record) <= set(described), (set(record) - set(described), record)
    # The input schemas accept exactly what the engine's stateless checks accept (a
    # crossed quote is well-formed; the checks that need state come after).
    inputs = 0
    for line in (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines():
        try:
            record = decode(line)
        except ValueError:
            continue
        if not (isinstance(record, dict) and record.get("type") in INPUT_SCHEMAS):
            continue
        accepted = check(record)[0] in (None, CROSSED)
        assert reference(INPUT_SCHEMAS[record["type"]]).is_valid(record) == accepted, line
        if accepted:
            check_input(record)
            inputs += 1
    assert inputs > 1000


def _breakages(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Ways to break a valid output record, each of which its schema must refuse."""
    yield "extra field", {**record, "unexpected": 1}
    if "ts" in record:
        yield "missing ts", {k: v for k, v in record.items() if k != "ts"}
        yield "negative ts", {**record, "ts": -1}
        yield "float ts", {**record, "ts": 1.5}
    else:
        yield "missing source", {k: v for k, v in record.items() if k != "source"}
    if "instrument" in record:
        yield "long instrument", {**record, "instrument": "X" * 65}
    if record["type"] == "spread":
        window = next(iter(record["windows"].values()))
        yield "window key", {**record, "windows": {"sixty": window}}
        yield "window field", {**record, "windows": {"1": {**window, "p99": 1.0}}}
        yield "no windows", {**record, "windows": {}}
    if record.get("kind") == "arb":
        yield "bad event", {**record, "event": "reopen"}
        if record["event"] == "close":
            yield "close without duration", {k: v for k, v in record.items() if k != "duration_ms"}
        else:
            yield "reason before close", {**record, "reason": "stale"}
    if record["type"] == "rejected":
        yield "unknown reason", {**record, "reason": "nonsense"}
        yield "bad source", {**record, "source": {"line": 0}}
        yield "long raw", {**record, "raw": "x" * 4097}


def test_the_compiled_validators_agree_with_the_reference() -> None:
    """tests/helpers/schemas.py compiles the schemas as draft 7 for speed; on the scenarios'
    records and on broken copies of them, it must give jsonschema's draft 2020-12 verdict,
    and refuse every broken copy."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name in SCENARIO_NAMES:
        engine = Engine(load_config(SCENARIOS / name / "config.toml"))
        lines = (SCENARIOS / name / "ticks.jsonl").read_bytes().splitlines()
        for n, line in enumerate(lines, 1):
            for _, _, record in engine.process(line, n):
                shape = (record["type"], record.get("kind"), record.get("event"))
                seen.setdefault((*shape, record.get("reason")), record)
    # spreads, basis, arb open/update/close (three reasons), wide, basis, delivery, rejections
    assert len(seen) >= 14, sorted(seen)
    checked = 0
    for record in seen.values():
        name = output_schema(record)
        compiled = fastjsonschema.compile(
            {**load(name), "$schema": "http://json-schema.org/draft-07/schema#"}
        )
        for what, broken in [("valid", record), *_breakages(record)]:
            expected = reference(name).is_valid(broken)
            assert expected == (what == "valid"), (name, what)
            try:
                compiled(broken)
                verdict = True
            except fastjsonschema.JsonSchemaException:
                verdict = False
            assert verdict == expected, (name, what)
            checked += 1
    assert checked > 50
