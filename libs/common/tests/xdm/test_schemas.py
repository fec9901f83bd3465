"""Specification of the XDM schemas in ``schemas/xdm`` and of their loader.

The conformance corpus is XDM's own example records, converted to the runtime field names
Experience Platform uses. It is not part of the repository: it lives in the ``shared/``
folder beside the repository (``<repo>/../shared/reference/xdm-examples``), locally and in
CI alike, and these tests fail, rather than skip, when it is missing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itinera.common.errors import FieldError
from itinera.common.xdm.schemas import (
    DRAFT_2020_12,
    EXPERIENCE_EVENT,
    PROFILE,
    CompiledSchema,
    SchemaLibrary,
    SchemaLibraryError,
    SchemaResource,
    default_library,
)


def _repo_root() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / "schemas" / "xdm").is_dir():
            return parent
    raise RuntimeError(f"no repository with schemas/xdm above {__file__}")


REPO_ROOT = _repo_root()
SCHEMAS_DIR = REPO_ROOT / "schemas"
SCHEMA_FILES = sorted((SCHEMAS_DIR / "xdm").rglob("*.schema.json"))
CORPUS_DIR = REPO_ROOT.parent / "shared" / "reference" / "xdm-examples"


def _manifest() -> list[dict[str, str]]:
    manifest = CORPUS_DIR / "manifest.json"
    if not manifest.is_file():
        raise RuntimeError(
            f"the XDM conformance corpus is missing: expected {manifest} "
            "(a copy of shared/ must sit beside the repository)"
        )
    examples: list[dict[str, str]] = json.loads(manifest.read_text())["examples"]
    return examples


EXAMPLES = _manifest()
CLASS_EXAMPLES = [e for e in EXAMPLES if e["kind"] == "class"]
FIELD_GROUP_EXAMPLES = [e for e in EXAMPLES if e["kind"] == "fieldgroup"]
CORPUS_FIELD_GROUPS = sorted({e["name"] for e in FIELD_GROUP_EXAMPLES})
CLASS_IDS = {"experienceevent": EXPERIENCE_EVENT, "profile": PROFILE}

# Upstream writes these examples as the value of the field group's only field rather than
# as a record fragment; they are checked as that field's value.
INNER_VALUE_EXAMPLES = {
    "experienceevent-pushtracking": "pushNotificationTracking",
    "identitymap": "identityMap",
}

# Fields of the corpus that are deliberately not modelled: slips in the upstream examples
# and keys the name conversion mangled. Each is a JSON Pointer prefix into the example
# (after INNER_VALUE_EXAMPLES wrapping). Being open content, they still validate.
CORPUS_QUIRKS: dict[str, dict[str, str]] = {
    "class.experienceevent.example.1.json": {
        "/commerce/order/payments/1/transactionId": "typo of transactionID",
        "/segmentMemberships/0/profileStitchID/lastQualificationTime": "membership field "
        "written inside the stitch id",
        "/segmentMemberships/0/profileStitchID/version": "as above",
        "/segmentMemberships/0/profileStitchID/validUntil": "as above",
        "/segmentMemberships/0/profileStitchID/status": "as above",
    },
    "class.experienceevent.example.2.json": {
        "/locationContext/geo/dmaid": "lower-case spelling of dmaID (an integer)",
    },
    "class.experienceevent.example.3.json": {
        "/locationContext/geo/dmaid": "lower-case spelling of dmaID (an integer)",
        "/placeContext/type": "environment fields written inside placeContext",
        "/placeContext/browserDetails": "as above",
        "/placeContext/operatingSystem": "as above",
        "/placeContext/operatingSystemVersion": "as above",
        "/placeContext/connectionType": "as above",
    },
    "fieldgroup.experienceevent-commerce.example.1.json": {
        "/commerce/order/payments/1/transactionId": "typo of transactionID",
    },
    "fieldgroup.experienceevent-segmentmembership.example.1.json": {
        "/segmentMembership/Email/_abcd@adobe/com": "map key abcd@adobe.com split at the dot",
    },
    "fieldgroup.identitymap.example.1.json": {
        "/identityMap/_data": "namespace URIs used as map keys were split into objects",
    },
    "fieldgroup.profile-consents.example.1.json": {
        "/consents/idSpecific/email/_john@xyz/com": "map key john@xyz.com split at the dot",
        "/consents/idSpecific/email/_johnny@company/com": "map key split at the dot",
    },
    "fieldgroup.profile-personal-details.example.2.json": {
        "/shippingAddress/state": "XDM addresses use stateProvince",
    },
    "fieldgroup.profile-subscriptions.example.1.json": {
        "/subscriptions/0/device/typeId": "spelled typeID in the device data type",
        "/subscriptions/0/device/typeIdService": "spelled typeIDService in the device data type",
    },
}


def _load_example(entry: dict[str, str]) -> Any:
    return json.loads((CORPUS_DIR / entry["file"]).read_text())


def _rooted(entry: dict[str, str], example: Any) -> Any:
    field_name = INNER_VALUE_EXAMPLES.get(entry["name"])
    return {field_name: example} if field_name else example


# Examples that cannot pass a closed (unknown fields refused) check, and why.
NOT_CLOSED_WORLD_VALID = {
    "fieldgroup.identitymap.example.1.json": "the converter turned the namespace URIs used "
    "as keys into nested objects, so this is no identity map any more",
}


def _by_file(entries: list[dict[str, str]], xfail: dict[str, str] | None = None) -> list[Any]:
    xfail = xfail or {}
    return [
        pytest.param(
            e,
            id=e["file"],
            marks=[pytest.mark.xfail(reason=xfail[e["file"]])] if e["file"] in xfail else [],
        )
        for e in entries
    ]


def _field_group(library: SchemaLibrary, name: str) -> SchemaResource:
    matches = [fg for fg in library.field_groups() if fg.name == name]
    assert len(matches) == 1, f"expected one field group named {name!r}, found {matches}"
    return matches[0]


def _undeclared_fields(library: SchemaLibrary, instance: Any, roots: list[str]) -> list[str]:
    """JSON Pointers of the members of ``instance`` that no schema declares, following
    ``$ref``, ``allOf``, ``properties``, ``additionalProperties`` (maps) and ``items``."""
    found: list[str] = []

    def resolve(reference: str, base: str) -> tuple[dict[str, Any], str]:
        target, _, fragment = reference.partition("#")
        node: Any = library.get(target or base).document
        for token in fragment.split("/")[1:]:
            node = node[token]
        return node, target or base

    def expand(schemas: list[tuple[Any, str]]) -> Iterator[tuple[dict[str, Any], str]]:
        for node, base in schemas:
            if not isinstance(node, dict):
                continue
            yield node, base
            if "$ref" in node:
                yield from expand([resolve(node["$ref"], base)])
            yield from expand([(sub, base) for sub in node.get("allOf", [])])

    def walk(value: Any, schemas: list[tuple[Any, str]], path: str) -> None:
        nodes = list(expand(schemas))
        if isinstance(value, dict):
            for key, member in value.items():
                here = f"{path}/{key}"
                declared = [(n["properties"][key], b) for n, b in nodes if key in n.get("properties", {})]
                declared = declared or [
                    (n["additionalProperties"], b)
                    for n, b in nodes
                    if isinstance(n.get("additionalProperties"), dict)
                ]
                if declared:
                    walk(member, declared, here)
                else:
                    found.append(here)
        elif isinstance(value, list):
            items = [(n["items"], b) for n, b in nodes if isinstance(n.get("items"), dict)]
            for index, item in enumerate(value):
                if items:
                    walk(item, items, f"{path}/{index}")
                else:
                    found.append(f"{path}/{index}")

    walk(instance, [(library.get(r).document, r) for r in roots], "")
    return found


@pytest.fixture(scope="module")
def library() -> SchemaLibrary:
    return SchemaLibrary.load(SCHEMAS_DIR)


@pytest.fixture(scope="module")
def event_schema(library: SchemaLibrary) -> CompiledSchema:
    return library.compile(library.union_schema(EXPERIENCE_EVENT))


@pytest.fixture(scope="module")
def profile_schema(library: SchemaLibrary) -> CompiledSchema:
    return library.compile(library.union_schema(PROFILE))


def _valid_event() -> dict[str, Any]:
    return {
        "_id": "evt-1",
        "timestamp": "2024-05-01T10:00:00Z",
        "eventType": "commerce.purchases",
        "identityMap": {"ECID": [{"id": "123", "authenticatedState": "ambiguous", "primary": True}]},
        "commerce": {
            "order": {
                "purchaseID": "o-1",
                "priceTotal": 19.5,
                "currencyCode": "EUR",
                "payments": [{"paymentAmount": 19.5, "paymentType": "credit_card"}],
            },
            "purchases": {"value": 1},
        },
        "productListItems": [{"SKU": "sku-1", "quantity": 1, "priceTotal": 19.5}],
    }


def _paths(errors: list[FieldError]) -> set[tuple[str, str]]:
    """(path, code) of each error; the order errors come in follows the schema, not the
    record, so it is not part of the contract."""
    found = [(e.path, e.code) for e in errors]
    assert len(found) == len(set(found)), f"duplicate errors: {found}"
    return set(found)


class TestConformanceCorpus:
    def test_the_manifest_lists_every_example_file(self) -> None:
        on_disk = {p.name for p in CORPUS_DIR.glob("*.example.*.json")}
        assert on_disk == {e["file"] for e in EXAMPLES}

    @pytest.mark.parametrize("name", CORPUS_FIELD_GROUPS)
    def test_every_corpus_field_group_has_a_schema(self, library: SchemaLibrary, name: str) -> None:
        path = SCHEMAS_DIR / "xdm" / "fieldgroups" / f"{name}.schema.json"
        assert path.is_file()
        assert _field_group(library, name).kind == "fieldgroup"

    @pytest.mark.parametrize("entry", _by_file(CLASS_EXAMPLES))
    def test_every_class_example_validates_against_its_union_schema(
        self,
        entry: dict[str, str],
        event_schema: CompiledSchema,
        profile_schema: CompiledSchema,
    ) -> None:
        schema = event_schema if entry["name"] == "experienceevent" else profile_schema
        assert schema.errors(_load_example(entry)) == []

    @pytest.mark.parametrize("entry", _by_file(FIELD_GROUP_EXAMPLES))
    def test_every_field_group_example_validates_against_its_field_group(
        self, library: SchemaLibrary, entry: dict[str, str]
    ) -> None:
        fg = _field_group(library, entry["name"])
        schema = library.compile({"$ref": fg.id})
        assert schema.errors(_load_example(entry)) == []

    @pytest.mark.parametrize("entry", _by_file(FIELD_GROUP_EXAMPLES, NOT_CLOSED_WORLD_VALID))
    def test_every_field_group_example_holds_only_fields_of_its_field_group(
        self, library: SchemaLibrary, entry: dict[str, str]
    ) -> None:
        fg = _field_group(library, entry["name"])
        closed = library.compile({"allOf": [{"$ref": fg.id}], "unevaluatedProperties": False})
        assert closed.errors(_rooted(entry, _load_example(entry))) == []

    @pytest.mark.parametrize("entry", _by_file(EXAMPLES))
    def test_every_field_of_every_example_is_modelled(
        self, library: SchemaLibrary, entry: dict[str, str]
    ) -> None:
        if entry["kind"] == "class":
            class_id = CLASS_IDS[entry["name"]]
            roots = [class_id, *(fg.id for fg in library.field_groups_for(class_id))]
        else:
            roots = [_field_group(library, entry["name"]).id]
        undeclared = _undeclared_fields(library, _rooted(entry, _load_example(entry)), roots)
        quirks = CORPUS_QUIRKS.get(entry["file"], {})
        unexplained = [
            path for path in undeclared if not any(path == q or path.startswith(q + "/") for q in quirks)
        ]
        assert unexplained == []
        assert sorted(quirks) == sorted(
            q for q in quirks if any(p == q or p.startswith(q + "/") for p in undeclared)
        ), "a listed quirk is modelled after all: drop it from CORPUS_QUIRKS"

    def test_the_coverage_check_notices_a_field_no_schema_declares(self, library: SchemaLibrary) -> None:
        record = {"web": {"webPageDetails": {"URL": "https://x.test/", "madeUp": 1}}, "also": []}
        roots = [EXPERIENCE_EVENT, _field_group(library, "experienceevent-web").id]
        assert _undeclared_fields(library, record, roots) == [
            "/web/webPageDetails/madeUp",
            "/also",
        ]


class TestSchemaFiles:
    @pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.relative_to(SCHEMAS_DIR).as_posix())
    def test_every_schema_file_is_a_valid_2020_12_schema(self, path: Path) -> None:
        document = json.loads(path.read_text())
        assert document["$schema"] == DRAFT_2020_12
        jsonschema.Draft202012Validator.check_schema(document)

    def test_every_schema_file_has_a_unique_absolute_id(self) -> None:
        ids = [json.loads(p.read_text())["$id"] for p in SCHEMA_FILES]
        assert len(ids) == len(set(ids))
        assert all(i.startswith("https://ns.adobe.com/") for i in ids)

    @pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.relative_to(SCHEMAS_DIR).as_posix())
    def test_every_schema_file_has_a_title_and_a_description(self, path: Path) -> None:
        document = json.loads(path.read_text())
        assert document["title"].strip()
        assert document["description"].strip()

    def test_every_reference_resolves_without_the_network(self, library: SchemaLibrary) -> None:
        for resource in library.resources():
            library.compile({"$ref": resource.id})

    def test_field_groups_extend_classes(self, library: SchemaLibrary) -> None:
        class_ids = {c.id for c in library.classes()}
        for fg in library.field_groups():
            assert fg.extends
            assert set(fg.extends) <= class_ids

    def test_identity_map_extends_both_classes(self, library: SchemaLibrary) -> None:
        identity_map = library.get("https://ns.adobe.com/xdm/context/identitymap")
        assert set(identity_map.extends) == {EXPERIENCE_EVENT, PROFILE}

    def test_field_group_ids_follow_xdm(self, library: SchemaLibrary) -> None:
        for name in CORPUS_FIELD_GROUPS:
            fg_id = _field_group(library, name).id
            assert fg_id.startswith("https://ns.adobe.com/xdm/")
            assert fg_id.endswith("/" + name)

    def test_message_feedback_and_tracking_live_under_experience(self, library: SchemaLibrary) -> None:
        for name in ("message-feedback", "message-tracking"):
            fg = _field_group(library, name)
            assert fg.extends == (EXPERIENCE_EVENT,)
            assert "_experience" in fg.document["properties"]


class TestSchemaLibrary:
    def test_loads_classes_field_groups_and_data_types_from_their_folders(
        self, library: SchemaLibrary
    ) -> None:
        assert {c.id for c in library.classes()} == {EXPERIENCE_EVENT, PROFILE}
        assert len(library.field_groups()) == len(list((SCHEMAS_DIR / "xdm/fieldgroups").glob("*.json")))
        assert len(library.data_types()) == len(list((SCHEMAS_DIR / "xdm/datatypes").glob("*.json")))
        event = library.get(EXPERIENCE_EVENT)
        assert (event.kind, event.name, event.title) == ("class", "experienceevent", "XDM ExperienceEvent")

    def test_get_raises_key_error_for_an_unknown_id(self, library: SchemaLibrary) -> None:
        with pytest.raises(KeyError):
            library.get("https://ns.adobe.com/xdm/context/nothing")

    def test_field_groups_for_lists_only_the_groups_extending_the_class(self, library: SchemaLibrary) -> None:
        names = {fg.name for fg in library.field_groups_for(PROFILE)}
        assert {"identitymap", "profile-consents", "profile-test-profile"} <= names
        assert "experienceevent-commerce" not in names

    def test_union_schema_composes_the_class_with_its_field_groups_and_closes_the_root(
        self, library: SchemaLibrary
    ) -> None:
        commerce = _field_group(library, "experienceevent-commerce").id
        union = library.union_schema(EXPERIENCE_EVENT, [commerce], extra=[{"type": "object"}])
        assert union == {
            "$schema": DRAFT_2020_12,
            "allOf": [{"$ref": EXPERIENCE_EVENT}, {"$ref": commerce}, {"type": "object"}],
            "unevaluatedProperties": False,
        }
        every = library.union_schema(PROFILE)["allOf"]
        assert every[1:] == [{"$ref": fg.id} for fg in library.field_groups_for(PROFILE)]

    def test_union_schema_refuses_a_field_group_of_another_class(self, library: SchemaLibrary) -> None:
        commerce = _field_group(library, "experienceevent-commerce").id
        with pytest.raises(SchemaLibraryError, match="does not extend"):
            library.union_schema(PROFILE, [commerce])

    def test_tenant_field_groups_are_compiled_from_resources(self, library: SchemaLibrary) -> None:
        tenant_fg = "https://ns.adobe.com/acme/mixins/loyalty-score"
        resources = {
            tenant_fg: {
                "$schema": DRAFT_2020_12,
                "$id": tenant_fg,
                "type": "object",
                "properties": {"_acme": {"type": "object", "properties": {"score": {"type": "integer"}}}},
            }
        }
        schema = library.compile(library.union_schema(PROFILE, extra=[{"$ref": tenant_fg}]), resources)
        assert schema.is_valid({"_acme": {"score": 3}, "testProfile": True})
        assert _paths(schema.errors({"_acme": {"score": "high"}})) == {("/_acme/score", "type")}
        assert _paths(schema.errors({"_other": {}})) == {("/_other", "unevaluatedProperties")}

    def test_compile_refuses_a_reference_to_an_unknown_schema(self, library: SchemaLibrary) -> None:
        with pytest.raises(SchemaLibraryError, match="cannot compile"):
            library.compile({"$ref": "https://ns.adobe.com/acme/missing"})

    def test_compile_refuses_resources_that_redefine_built_ins(self, library: SchemaLibrary) -> None:
        with pytest.raises(SchemaLibraryError, match="redefine"):
            library.compile({"$ref": PROFILE}, {PROFILE: {"type": "object"}})

    def test_load_refuses_two_files_with_the_same_id(self, tmp_path: Path) -> None:
        folder = tmp_path / "xdm" / "datatypes"
        folder.mkdir(parents=True)
        for name in ("a", "b"):
            (folder / f"{name}.schema.json").write_text(json.dumps({"$id": "https://x.test/same"}))
        with pytest.raises(SchemaLibraryError, match="duplicate"):
            SchemaLibrary.load(tmp_path)

    def test_load_refuses_a_field_group_extending_an_unknown_class(self, tmp_path: Path) -> None:
        folder = tmp_path / "xdm" / "fieldgroups"
        folder.mkdir(parents=True)
        document = {"$id": "https://x.test/fg", "meta:intendedToExtend": ["https://x.test/nope"]}
        (folder / "fg.schema.json").write_text(json.dumps(document))
        with pytest.raises(SchemaLibraryError, match="not a class"):
            SchemaLibrary.load(tmp_path)

    def test_the_default_library_is_loaded_once_from_the_configured_schemas_dir(self) -> None:
        assert default_library() is default_library()
        assert EXPERIENCE_EVENT in default_library()


class TestInvalidRecordsFailWithPrecisePaths:
    def test_a_valid_event_has_no_errors(self, event_schema: CompiledSchema) -> None:
        assert event_schema.is_valid(_valid_event())
        assert event_schema.errors(_valid_event()) == []

    def test_a_missing_id_points_at_the_id(self, event_schema: CompiledSchema) -> None:
        event = _valid_event()
        del event["_id"]
        assert not event_schema.is_valid(event)
        assert _paths(event_schema.errors(event)) == {("/_id", "required")}

    def test_a_wrong_type_deep_inside_the_order_points_at_that_value(
        self, event_schema: CompiledSchema
    ) -> None:
        event = _valid_event()
        event["commerce"]["order"]["payments"][0]["paymentAmount"] = "19.50"
        event["commerce"]["order"]["currencyCode"] = "euro"
        assert _paths(event_schema.errors(event)) == {
            ("/commerce/order/payments/0/paymentAmount", "type"),
            ("/commerce/order/currencyCode", "pattern"),
        }

    @pytest.mark.parametrize(
        ("identity_map", "expected"),
        [
            ({"ECID": [{"primary": True}]}, ("/identityMap/ECID/0/id", "required")),
            (
                {"ECID": [{"id": "1", "authenticatedState": "maybe"}]},
                ("/identityMap/ECID/0/authenticatedState", "enum"),
            ),
            ({"ECID": {"id": "1"}}, ("/identityMap/ECID", "type")),
            ({"ECID": [{"id": "1", "primary": "yes"}]}, ("/identityMap/ECID/0/primary", "type")),
            ({"a/b~c": [{"id": 7}]}, ("/identityMap/a~1b~0c/0/id", "type")),
        ],
    )
    def test_a_bad_identity_map_item_points_at_the_item(
        self,
        event_schema: CompiledSchema,
        identity_map: dict[str, Any],
        expected: tuple[str, str],
    ) -> None:
        event = {**_valid_event(), "identityMap": identity_map}
        assert _paths(event_schema.errors(event)) == {expected}

    def test_an_unknown_top_level_field_is_named_in_the_path(self, event_schema: CompiledSchema) -> None:
        event = {**_valid_event(), "surprise": 1, "_acme": {"x": 1}}
        errors = event_schema.errors(event)
        assert _paths(errors) == {
            ("/surprise", "unevaluatedProperties"),
            ("/_acme", "unevaluatedProperties"),
        }
        assert all(e.path.removeprefix("/") in e.message for e in errors)

    def test_a_defined_field_with_a_bad_value_is_not_reported_as_unknown(
        self, event_schema: CompiledSchema
    ) -> None:
        event = {**_valid_event(), "web": {"webPageDetails": {"URL": "not a url"}}}
        del event["_id"]
        assert _paths(event_schema.errors(event)) == {
            ("/_id", "required"),
            ("/web/webPageDetails/URL", "format"),
        }

    @pytest.mark.parametrize("timestamp", ["2024-02-30T10:00:00Z", "01/05/2024 10:00", "2024-05-01"])
    def test_a_bad_date_time_points_at_the_timestamp(
        self, event_schema: CompiledSchema, timestamp: str
    ) -> None:
        event = {**_valid_event(), "timestamp": timestamp}
        assert _paths(event_schema.errors(event)) == {("/timestamp", "format")}

    def test_base_path_prefixes_every_path(self, event_schema: CompiledSchema) -> None:
        event = {**_valid_event(), "timestamp": 5, "surprise": True}
        assert _paths(event_schema.errors(event, "/body/xdmEntity")) == {
            ("/body/xdmEntity/timestamp", "type"),
            ("/body/xdmEntity/surprise", "unevaluatedProperties"),
        }

    @pytest.mark.parametrize("code", ["y", "n", "p", "u", "dy", "dn", "LI", "CT", "CP", "VI", "PI"])
    def test_every_consent_code_of_xdm_is_accepted(self, profile_schema: CompiledSchema, code: str) -> None:
        assert profile_schema.is_valid({"consents": {"marketing": {"sms": {"val": code}}}})

    def test_a_bad_consent_code_points_at_the_val(self, profile_schema: CompiledSchema) -> None:
        profile = {
            "consents": {
                "collect": {"val": "y"},
                "marketing": {"email": {"val": "yes", "time": "2024-05-01T10:00:00Z"}},
                "idSpecific": {"Email": {"jane@example.com": {"marketing": {"email": {"val": "nope"}}}}},
            }
        }
        errors = profile_schema.errors(profile)
        assert _paths(errors) == {
            ("/consents/marketing/email/val", "enum"),
            ("/consents/idSpecific/Email/jane@example.com/marketing/email/val", "enum"),
        }
        assert all('"LI"' in e.message for e in errors)

    def test_a_consent_without_a_val_is_refused(self, profile_schema: CompiledSchema) -> None:
        profile = {"consents": {"marketing": {"push": {"reason": "too many"}}}}
        assert _paths(profile_schema.errors(profile)) == {("/consents/marketing/push/val", "required")}

    def test_segment_membership_status_is_checked(self, profile_schema: CompiledSchema) -> None:
        membership = {"status": "realized", "lastQualificationTime": "2024-05-01T10:00:00Z"}
        assert profile_schema.is_valid({"segmentMembership": {"ups": {"seg-1": membership}}})
        profile = {"segmentMembership": {"ups": {"seg-1": {**membership, "status": "gone"}}}}
        assert _paths(profile_schema.errors(profile)) == {("/segmentMembership/ups/seg-1/status", "enum")}

    def test_email_addresses_are_checked_loosely(self, profile_schema: CompiledSchema) -> None:
        assert profile_schema.is_valid({"personalEmail": {"address": "jane@localhost"}})
        profile = {"personalEmail": {"address": "jane.example.com"}}
        assert _paths(profile_schema.errors(profile)) == {("/personalEmail/address", "format")}

    def test_a_message_feedback_event_is_accepted_and_its_status_checked(
        self, event_schema: CompiledSchema
    ) -> None:
        cjm: dict[str, Any] = {
            "messageExecution": {"messageExecutionID": "exec-1", "messageType": "marketing"},
            "messageProfile": {
                "messageProfileID": "mp-1",
                "channel": {"_id": "https://ns.adobe.com/xdm/channels/email"},
            },
            "emailChannelContext": {"address": "jane@example.com", "namespace": "Email"},
            "messageDeliveryfeedback": {
                "feedbackStatus": "bounce",
                "messageFailure": {
                    "category": "async",
                    "type": "hard",
                    "code": "550",
                    "reason": "no such user",
                },
            },
        }
        event = {
            "_id": "fb-1",
            "timestamp": "2024-05-01T10:00:00Z",
            "eventType": "message.feedback",
            "_experience": {"customerJourneyManagement": cjm},
        }
        assert event_schema.errors(event) == []
        cjm["messageDeliveryfeedback"]["feedbackStatus"] = "lost"
        assert _paths(event_schema.errors(event)) == {
            ("/_experience/customerJourneyManagement/messageDeliveryfeedback/feedbackStatus", "enum")
        }

    def test_a_message_tracking_event_is_accepted_and_its_interaction_checked(
        self, event_schema: CompiledSchema
    ) -> None:
        interaction = {"interactionType": "click", "label": "Shop now", "url": "https://shop.example/x"}
        event = {
            "_id": "tr-1",
            "timestamp": "2024-05-01T10:00:00Z",
            "eventType": "message.tracking",
            "_experience": {"customerJourneyManagement": {"messageInteraction": interaction}},
        }
        assert event_schema.errors(event) == []
        interaction["interactionType"] = "liked"
        assert _paths(event_schema.errors(event)) == {
            ("/_experience/customerJourneyManagement/messageInteraction/interactionType", "enum")
        }


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)


def _leaf_paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


@cache
def _compiled_union(class_id: str) -> CompiledSchema:
    # Hypothesis runs a test body many times; function-scoped fixtures do not fit it.
    library = default_library()
    return library.compile(library.union_schema(class_id))


class TestValidatorProperties:
    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def test_errors_are_empty_exactly_when_a_mutated_example_is_valid(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(CLASS_EXAMPLES))
        schema = _compiled_union(CLASS_IDS[entry["name"]])
        record = copy.deepcopy(_load_example(entry))
        *parents, last = data.draw(st.sampled_from(_leaf_paths(record)))
        target: Any = record
        for step in parents:
            target = target[step]
        target[last] = data.draw(JSON_SCALARS)

        errors = schema.errors(record, "/body")
        assert schema.is_valid(record) == (errors == [])
        assert all(e.path.startswith("/body/") for e in errors)
