"""Contract tests for ``schemas/asyncapi.yaml``: the document against AsyncAPI 3.0.0,
against the topic catalogue, against the schema files it points at, and the dead letter
model against its schema.

No package on PyPI ships the official AsyncAPI 3.0.0 JSON Schema, so
``ASYNCAPI_3_0_0`` below is our own, written from the AsyncAPI 3.0.0 specification and
the Kafka bindings 0.4.0 for the objects this document uses. It is strict
(``additionalProperties: false`` wherever the specification fixes the fields), so a
document that starts using an object not covered here (security schemes, parameters,
traits, replies, other protocols' bindings) fails until the schema below learns it,
rather than passing unchecked. Rules the specification states in prose (references
resolve, an operation's messages belong to its channel, server variables are defined)
are tests of their own.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from itinera.common.kafka.deadletter import DeadLetter, Origin, Reason
from itinera.common.kafka.envelope import Envelope
from itinera.common.kafka.topics import CATALOGUE, Topic

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
DOCUMENT = SCHEMAS / "asyncapi.yaml"
OFFICIAL_SCHEMA = (
    ROOT
    / ".cache"
    / "asyncapi-specs"
    / "node_modules"
    / "@asyncapi"
    / "specs"
    / "schemas"
    / "3.0.0-without-$id.json"
)
DIALECT_URI = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"

# ---------------------------------------------------------------------------------------
# The AsyncAPI 3.0.0 document schema (the subset this document uses).
# ---------------------------------------------------------------------------------------

_EXTENSIONS: dict[str, Any] = {"^x-[\\w.\\-]+$": {}}
_KEY = "^[A-Za-z0-9.\\-_]+$"


def _fixed(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """An object with fixed fields plus ``x-`` extensions, as most AsyncAPI objects are."""
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "patternProperties": _EXTENSIONS,
        "additionalProperties": False,
    }


def _map_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "propertyNames": {"pattern": _KEY}, "additionalProperties": item}


def _or_reference(definition: str) -> dict[str, Any]:
    return {"oneOf": [{"$ref": "#/$defs/reference"}, {"$ref": f"#/$defs/{definition}"}]}


def _bindings(kafka: str) -> dict[str, Any]:
    """A bindings object: Kafka checked against its binding, other protocols unchecked."""
    return {
        "type": "object",
        "properties": {"kafka": {"$ref": f"#/$defs/{kafka}"}},
        "additionalProperties": {"type": "object"},
    }


_TEXT = {"type": "string"}
_TAGS = {"type": "array", "uniqueItems": True, "items": _or_reference("tag")}
_BINDING_VERSION = {"type": "string", "enum": ["0.4.0", "0.5.0"]}

ASYNCAPI_3_0_0: dict[str, Any] = {
    "$schema": DIALECT_URI,
    "$id": "urn:itinera:contracts:asyncapi-3.0.0",
    "title": "AsyncAPI 3.0.0 document (the objects Itinera uses)",
    **_fixed(
        {
            "asyncapi": {"const": "3.0.0"},
            "id": {"type": "string", "format": "uri"},
            "info": {"$ref": "#/$defs/info"},
            "servers": _map_of(_or_reference("server")),
            "defaultContentType": _TEXT,
            "channels": _map_of(_or_reference("channel")),
            "operations": _map_of(_or_reference("operation")),
            "components": {"$ref": "#/$defs/components"},
        },
        "asyncapi",
        "info",
    ),
    "$defs": {
        "reference": {
            "type": "object",
            "required": ["$ref"],
            "properties": {"$ref": {"type": "string", "format": "uri-reference"}},
        },
        "info": _fixed(
            {
                "title": _TEXT,
                "version": _TEXT,
                "description": _TEXT,
                "termsOfService": {"type": "string", "format": "uri"},
                "contact": {"$ref": "#/$defs/contact"},
                "license": {"$ref": "#/$defs/license"},
                "tags": _TAGS,
                "externalDocs": _or_reference("externalDocs"),
            },
            "title",
            "version",
        ),
        "contact": _fixed({"name": _TEXT, "url": {"type": "string", "format": "uri"}, "email": _TEXT}),
        "license": _fixed({"name": _TEXT, "url": {"type": "string", "format": "uri"}}, "name"),
        "tag": _fixed(
            {"name": _TEXT, "description": _TEXT, "externalDocs": _or_reference("externalDocs")},
            "name",
        ),
        "externalDocs": _fixed({"description": _TEXT, "url": {"type": "string", "format": "uri"}}, "url"),
        "server": _fixed(
            {
                "host": _TEXT,
                "protocol": _TEXT,
                "protocolVersion": _TEXT,
                "pathname": _TEXT,
                "description": _TEXT,
                "title": _TEXT,
                "summary": _TEXT,
                "variables": _map_of(_or_reference("serverVariable")),
                "tags": _TAGS,
                "externalDocs": _or_reference("externalDocs"),
                "bindings": _bindings("kafkaServerBinding"),
            },
            "host",
            "protocol",
        ),
        "serverVariable": _fixed(
            {
                "enum": {"type": "array", "uniqueItems": True, "items": _TEXT},
                "default": _TEXT,
                "description": _TEXT,
                "examples": {"type": "array", "items": _TEXT},
            }
        ),
        "channel": _fixed(
            {
                "address": {"type": ["string", "null"]},
                "messages": _map_of(_or_reference("message")),
                "title": _TEXT,
                "summary": _TEXT,
                "description": _TEXT,
                "servers": {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"$ref": "#/$defs/reference"},
                },
                "tags": _TAGS,
                "externalDocs": _or_reference("externalDocs"),
                "bindings": _bindings("kafkaChannelBinding"),
            }
        ),
        "operation": _fixed(
            {
                "action": {"enum": ["send", "receive"]},
                "channel": {"$ref": "#/$defs/reference"},
                "title": _TEXT,
                "summary": _TEXT,
                "description": _TEXT,
                "tags": _TAGS,
                "externalDocs": _or_reference("externalDocs"),
                "bindings": _bindings("kafkaOperationBinding"),
                "messages": {"type": "array", "items": {"$ref": "#/$defs/reference"}},
            },
            "action",
            "channel",
        ),
        "message": _fixed(
            {
                "headers": {"$ref": "#/$defs/anySchema"},
                "payload": {"$ref": "#/$defs/anySchema"},
                "contentType": _TEXT,
                "name": _TEXT,
                "title": _TEXT,
                "summary": _TEXT,
                "description": _TEXT,
                "deprecated": {"type": "boolean"},
                "tags": _TAGS,
                "externalDocs": _or_reference("externalDocs"),
                "bindings": _bindings("kafkaMessageBinding"),
                "examples": {"type": "array", "items": {"$ref": "#/$defs/messageExample"}},
            }
        ),
        "messageExample": {
            **_fixed(
                {
                    "headers": {"type": "object"},
                    "payload": True,
                    "name": _TEXT,
                    "summary": _TEXT,
                }
            ),
            "anyOf": [{"required": ["headers"]}, {"required": ["payload"]}],
        },
        "anySchema": {
            "if": {"type": "object", "required": ["schema"]},
            "then": {"$ref": "#/$defs/multiFormatSchema"},
            "else": {"$ref": "#/$defs/schema"},
        },
        "multiFormatSchema": _fixed(
            {"schemaFormat": _TEXT, "schema": {"$ref": "#/$defs/schema"}},
            "schemaFormat",
            "schema",
        ),
        "schema": {
            "description": "An AsyncAPI Schema Object, or a Reference Object, or a boolean.",
            "type": ["object", "boolean"],
        },
        "components": _fixed(
            {
                "schemas": _map_of({"$ref": "#/$defs/anySchema"}),
                "servers": _map_of(_or_reference("server")),
                "channels": _map_of(_or_reference("channel")),
                "operations": _map_of(_or_reference("operation")),
                "messages": _map_of(_or_reference("message")),
                "serverVariables": _map_of(_or_reference("serverVariable")),
                "externalDocs": _map_of(_or_reference("externalDocs")),
                "tags": _map_of(_or_reference("tag")),
            }
        ),
        "kafkaServerBinding": _fixed(
            {
                "schemaRegistryUrl": {"type": "string", "format": "uri"},
                "schemaRegistryVendor": _TEXT,
                "bindingVersion": _BINDING_VERSION,
            }
        ),
        "kafkaChannelBinding": _fixed(
            {
                "topic": _TEXT,
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1},
                "topicConfiguration": {
                    "type": "object",
                    "properties": {
                        "cleanup.policy": {
                            "type": "array",
                            "items": {"enum": ["compact", "delete"]},
                        },
                        "retention.ms": {"type": "integer", "minimum": -1},
                        "retention.bytes": {"type": "integer", "minimum": -1},
                        "delete.retention.ms": {"type": "integer", "minimum": 0},
                        "max.message.bytes": {"type": "integer", "minimum": 0},
                    },
                    "additionalProperties": False,
                },
                "bindingVersion": _BINDING_VERSION,
            }
        ),
        "kafkaOperationBinding": _fixed(
            {
                "groupId": {"$ref": "#/$defs/schema"},
                "clientId": {"$ref": "#/$defs/schema"},
                "bindingVersion": _BINDING_VERSION,
            }
        ),
        "kafkaMessageBinding": _fixed(
            {
                "key": {"$ref": "#/$defs/schema"},
                "schemaIdLocation": {"enum": ["header", "payload"]},
                "schemaIdPayloadEncoding": _TEXT,
                "schemaLookupStrategy": _TEXT,
                "bindingVersion": _BINDING_VERSION,
            }
        ),
    },
}

# ---------------------------------------------------------------------------------------
# Reading the document and the files it points at.
# ---------------------------------------------------------------------------------------


@cache
def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{DOCUMENT} is not a mapping"
    return loaded


def _refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every ``$ref`` in ``node``, with the JSON Pointer of the object that holds it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield pointer, ref
        for key, value in node.items():
            yield from _refs(value, f"{pointer}/{_escape(str(key))}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{pointer}/{index}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _follow(node: Any, pointer: str) -> Any:
    """The value at JSON Pointer ``pointer`` in ``node``; raises ``LookupError`` if none."""
    if pointer == "":
        return node
    if not pointer.startswith("/"):
        raise LookupError(f"not a JSON Pointer: {pointer!r}")
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise LookupError(f"{pointer!r} stops at {token!r}")
    return node


def _file_refs() -> list[str]:
    return sorted({ref for _, ref in _refs(_document()) if not ref.startswith("#")})


def _split(ref: str) -> tuple[Path, str]:
    """A file reference as the file (relative to the document) and its fragment."""
    location, _, fragment = ref.partition("#")
    return (DOCUMENT.parent / location).resolve(), fragment


@cache
def _registry() -> Registry[Any]:
    """Every JSON Schema file under ``schemas/``, by file URI and by ``$id``.

    A file that is not a JSON object is left out here; if the document points at it,
    ``test_referenced_file_exists_and_is_a_json_schema_2020_12`` says so.
    """
    pairs: list[tuple[str, Resource[Any]]] = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if not isinstance(contents, dict):
            continue
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        pairs.append((path.as_uri(), resource))
        if resource.id():
            pairs.append((str(resource.id()), resource))
    return Registry().with_resources(pairs)


def _validator(ref: str) -> Draft202012Validator:
    """A validator for the schema that a document reference such as
    ``./topics/headers.schema.json#/$defs/inbound`` points at."""
    path, fragment = _split(ref)
    return Draft202012Validator(
        {"$schema": DIALECT_URI, "$ref": f"{path.as_uri()}#{fragment}"},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [
        f"{error.json_path}: {error.message}" for error in sorted(validator.iter_errors(instance), key=str)
    ]


def _messages() -> dict[str, dict[str, Any]]:
    """Every message of the document, dereferenced, by its pointer."""
    found: dict[str, dict[str, Any]] = {}
    for channel_id, channel in _document()["channels"].items():
        for message_id, message in channel.get("messages", {}).items():
            while "$ref" in message:
                message = _follow(_document(), message["$ref"].removeprefix("#"))
            found[f"/channels/{channel_id}/messages/{message_id}"] = message
    return found


def _channels_by_address() -> dict[str, dict[str, Any]]:
    return {channel["address"]: channel for channel in _document()["channels"].values()}


# ---------------------------------------------------------------------------------------
# The document is a valid AsyncAPI 3.0.0 document.
# ---------------------------------------------------------------------------------------


class TestDocumentIsAsyncApi300:
    def test_our_asyncapi_schema_is_a_valid_json_schema(self) -> None:
        Draft202012Validator.check_schema(ASYNCAPI_3_0_0)

    def test_validates_against_the_asyncapi_3_0_0_schema(self) -> None:
        validator = Draft202012Validator(ASYNCAPI_3_0_0, format_checker=Draft202012Validator.FORMAT_CHECKER)
        assert _errors(validator, _document()) == []

    def test_validates_against_the_official_asyncapi_3_0_0_json_schema(self) -> None:
        """The AsyncAPI initiative's own schema, from the npm package ``@asyncapi/specs``
        that ``make install`` fetches (no PyPI package ships it)."""
        if not OFFICIAL_SCHEMA.exists():
            if shutil.which("npm") is None:
                pytest.skip("npm is not installed, so the official AsyncAPI schema was not fetched")
            pytest.fail(f"{OFFICIAL_SCHEMA} is missing: run `make install`")
        official = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
        validator = Draft7Validator(official)
        assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_document())] == []

    def test_every_reference_inside_the_document_resolves(self) -> None:
        broken = []
        for pointer, ref in _refs(_document()):
            if ref.startswith("#"):
                try:
                    _follow(_document(), ref[1:])
                except LookupError as exc:
                    broken.append(f"{pointer}: {exc}")
        assert broken == []

    def test_operations_point_at_channels_and_list_only_their_channels_messages(self) -> None:
        for operation_id, operation in _document()["operations"].items():
            channel_ref = operation["channel"]["$ref"]
            assert channel_ref.startswith("#/channels/"), operation_id
            for message in operation.get("messages", []):
                assert message["$ref"].startswith(f"{channel_ref}/messages/"), operation_id

    def test_every_channel_has_an_operation(self) -> None:
        used = {op["channel"]["$ref"] for op in _document()["operations"].values()}
        declared = {f"#/channels/{channel_id}" for channel_id in _document()["channels"]}
        assert declared - used == set()

    def test_server_host_variables_are_defined(self) -> None:
        for server_id, server in _document()["servers"].items():
            named = set(re.findall(r"{([^}]+)}", server["host"]))
            assert named == set(server.get("variables", {})), server_id

    def test_payloads_and_headers_declare_the_json_schema_dialect_of_their_files(self) -> None:
        for pointer, message in _messages().items():
            for part in ("payload", "headers"):
                assert message[part]["schemaFormat"] == SCHEMA_FORMAT, f"{pointer}/{part}"
                assert set(message[part]["schema"]) == {"$ref"}, f"{pointer}/{part}"


# ---------------------------------------------------------------------------------------
# The document describes exactly the topics of the catalogue.
# ---------------------------------------------------------------------------------------


def _binding_topic_configuration(topic: Topic) -> dict[str, Any]:
    """The topic's configuration in the form of the Kafka channel binding, for the keys
    the binding can express."""
    expressible: dict[str, Any] = {}
    for key, value in topic.topic_config().items():
        if key == "cleanup.policy":
            expressible[key] = value.split(",")
        elif key in {"retention.ms", "retention.bytes", "delete.retention.ms", "max.message.bytes"}:
            expressible[key] = int(value)
    return expressible


@pytest.mark.parametrize("topic", CATALOGUE, ids=lambda topic: topic.name)
class TestEveryCataloguedTopicIsAChannel:
    def test_has_a_channel_with_its_address(self, topic: Topic) -> None:
        assert topic.name in _channels_by_address()

    def test_channel_binding_has_its_partitions_and_configuration(self, topic: Topic) -> None:
        kafka = _channels_by_address()[topic.name]["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"] == _binding_topic_configuration(topic)
        assert kafka.get("topic", topic.name) == topic.name

    def test_message_payload_is_the_catalogued_schema(self, topic: Topic) -> None:
        channel_id = next(cid for cid, c in _document()["channels"].items() if c["address"] == topic.name)
        payloads = {
            message["payload"]["schema"]["$ref"]
            for pointer, message in _messages().items()
            if pointer.startswith(f"/channels/{channel_id}/")
        }
        assert payloads == {f"./{topic.payload_schema}"}

    def test_message_key_is_described_as_catalogued(self, topic: Topic) -> None:
        channel_id = next(cid for cid, c in _document()["channels"].items() if c["address"] == topic.name)
        for pointer, message in _messages().items():
            if pointer.startswith(f"/channels/{channel_id}/"):
                key = message["bindings"]["kafka"]["key"]
                assert key["type"] == "string", pointer
                assert key["description"] == topic.key, pointer


def test_every_channel_is_a_catalogued_topic() -> None:
    assert set(_channels_by_address()) == {topic.name for topic in CATALOGUE}


# ---------------------------------------------------------------------------------------
# Every file the document points at exists and is a JSON Schema 2020-12.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", _file_refs())
def test_referenced_file_exists_and_is_a_json_schema_2020_12(ref: str) -> None:
    path, fragment = _split(ref)
    assert path.is_file(), f"{ref} points at {path}, which does not exist"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema.get("$schema") == DIALECT_URI, f"{ref} does not declare JSON Schema 2020-12"
    Draft202012Validator.check_schema(schema)
    target = _follow(schema, fragment)
    Draft202012Validator.check_schema(target)


def _examples() -> list[tuple[str, str, Any, str]]:
    """(message pointer, example name, instance, schema reference) for every example part."""
    cases = []
    for pointer, message in _messages().items():
        for example in message.get("examples", []):
            for part in ("headers", "payload"):
                if part in example:
                    reference = message[part]["schema"]["$ref"]
                    cases.append((pointer, f"{example['name']}.{part}", example[part], reference))
    return cases


@pytest.mark.parametrize(
    ("pointer", "example", "instance", "reference"),
    _examples(),
    ids=[f"{pointer.split('/')[2]}-{name}" for pointer, name, _, _ in _examples()],
)
def test_message_example_is_valid(pointer: str, example: str, instance: Any, reference: str) -> None:
    assert _errors(_validator(reference), instance) == []


# ---------------------------------------------------------------------------------------
# The schemas agree with the code that writes the records.
# ---------------------------------------------------------------------------------------

DLQ_SCHEMA = "./topics/dlq.v1.schema.json"
HEADERS_SCHEMA = "./topics/headers.schema.json"


def _dead_letter(**fields: Any) -> DeadLetter:
    defaults: dict[str, Any] = {
        "id": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "sandbox": "prod",
        "kind": "validation",
        "received_at": datetime(2025, 3, 1, 9, 30, 1, tzinfo=UTC),
        "origin": Origin(service="ingestion", topic="itinera.inbound.v1", partition=0, offset=7),
        "reasons": [Reason(path="/body/xdmEntity/timestamp", message="missing", code="required")],
    }
    return DeadLetter(**(defaults | fields))


class TestDeadLetterMatchesItsSchema:
    @pytest.mark.parametrize(
        "letter",
        [
            pytest.param(_dead_letter(), id="without-payload"),
            pytest.param(
                _dead_letter(**DeadLetter.payload_fields(b'{"header": {}, "body": {}}')),
                id="json-payload",
            ),
            pytest.param(
                _dead_letter(**DeadLetter.payload_fields(b"\xff\x00not json")),
                id="binary-payload",
            ),
            pytest.param(
                _dead_letter(
                    kind="processing",
                    attempts=5,
                    origin=Origin(
                        service="profile",
                        topic="itinera.events.v1",
                        partition=3,
                        offset=1207,
                        key="Email:jane@example.com",
                        connection_id="crm-contacts",
                        dataset_id="65f0c0ffee0000000000a001",
                    ),
                    reasons=[Reason(message="TimeoutError: store", code="processing")],
                    **DeadLetter.payload_fields(b"[1, 2, 3]"),
                ),
                id="every-field",
            ),
        ],
    )
    def test_serialised_dead_letter_validates(self, letter: DeadLetter) -> None:
        assert _errors(_validator(DLQ_SCHEMA), json.loads(letter.to_json())) == []

    @pytest.mark.parametrize(
        ("model", "pointer"),
        [
            pytest.param(DeadLetter, "", id="DeadLetter"),
            pytest.param(Origin, "/$defs/origin", id="Origin"),
            pytest.param(Reason, "/$defs/reason", id="Reason"),
        ],
    )
    def test_schema_has_every_field_of_the_model_with_its_type(
        self, model: type[DeadLetter | Origin | Reason], pointer: str
    ) -> None:
        model_schema = model.model_json_schema(by_alias=True, mode="serialization")
        path, _ = _split(DLQ_SCHEMA)
        schema = _follow(json.loads(path.read_text(encoding="utf-8")), pointer)
        assert set(schema["properties"]) == set(model_schema["properties"])
        for name, field in model_schema["properties"].items():
            declared = _json_types(schema["properties"][name])
            expected = _json_types(_resolve_model_ref(model_schema, field))
            if declared and expected:
                assert declared == expected, name
            if "enum" in field:
                assert set(schema["properties"][name]["enum"]) == set(field["enum"]), name

    def test_schema_refuses_a_letter_with_both_payload_forms(self) -> None:
        letter = json.loads(_dead_letter(payload={"a": 1}).to_json())
        letter["payloadBase64"] = "AAE="
        assert _errors(_validator(DLQ_SCHEMA), letter) != []


def _resolve_model_ref(model_schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in field:
        resolved = _follow(model_schema, field["$ref"].removeprefix("#"))
        assert isinstance(resolved, dict)
        return resolved
    return field


def _json_types(field: dict[str, Any]) -> set[str]:
    """The JSON types a property allows, leaving out null: the wire omits absent values."""
    declared = field.get("type")
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = set(declared)
    else:
        types = {t for option in field.get("anyOf", []) for t in _json_types(option)}
    return types - {"null"}


class TestEnvelopeHeadersMatchTheirSchema:
    @pytest.mark.parametrize(
        ("definition", "envelope"),
        [
            pytest.param(
                "experienceEvent",
                Envelope(
                    type="com.itinera.ingestion.event.v1",
                    source="/itinera/ingestion",
                    data={},
                    sandbox="prod",
                    extensions={
                        "itinera_dataset": "65f0c0ffee0000000000a001",
                        "itinera_schema": "https://ns.adobe.com/acme/schemas/web-events",
                    },
                ),
                id="event",
            ),
            pytest.param(
                "profileRecord",
                Envelope(
                    type="com.itinera.ingestion.record.v1",
                    source="/itinera/ingestion",
                    data={},
                    sandbox="prod",
                    extensions={
                        "itinera_dataset": "65f0c0ffee0000000000b002",
                        "itinera_schema": "https://ns.adobe.com/acme/schemas/crm-contacts",
                    },
                ),
                id="record",
            ),
            pytest.param(
                "deadLetter",
                Envelope(
                    type="com.itinera.deadletter.v1",
                    source="/itinera/profile",
                    data={},
                    sandbox="prod",
                ),
                id="dead-letter",
            ),
            pytest.param(
                "inbound",
                Envelope(
                    type="com.acme.web.pageview",
                    source="/acme/web",
                    data={},
                    sandbox="prod",
                    extensions={"itinera_connection": "crm-contacts"},
                ),
                id="inbound",
            ),
        ],
    )
    def test_envelope_headers_validate(self, definition: str, envelope: Envelope) -> None:
        headers = {name: value.decode() for name, value in envelope.headers()}
        validator = _validator(f"{HEADERS_SCHEMA}#/$defs/{definition}")
        assert _errors(validator, headers) == []

    def test_ingested_headers_need_the_dataset_and_the_schema(self) -> None:
        envelope = Envelope(
            type="com.itinera.ingestion.event.v1",
            source="/itinera/ingestion",
            data={},
            sandbox="prod",
        )
        headers = {name: value.decode() for name, value in envelope.headers()}
        errors = _errors(_validator(f"{HEADERS_SCHEMA}#/$defs/experienceEvent"), headers)
        assert any("itinera_dataset" in error for error in errors)
        assert any("itinera_schema" in error for error in errors)

    def test_event_headers_refuse_a_record_type(self) -> None:
        envelope = Envelope(
            type="com.itinera.ingestion.record.v1",
            source="/itinera/ingestion",
            data={},
            sandbox="prod",
            extensions={"itinera_dataset": "d", "itinera_schema": "https://example.com/s"},
        )
        headers = {name: value.decode() for name, value in envelope.headers()}
        assert _errors(_validator(f"{HEADERS_SCHEMA}#/$defs/experienceEvent"), headers) != []
