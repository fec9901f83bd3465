"""The XDM schema library: classes, field groups and data types from ``schemas/xdm``, and
compiled validators for records built from them.

A record is valid when it matches the *union schema* of its class: the class, every field
group chosen for it, and any tenant extensions, composed with ``allOf`` and closed with
``unevaluatedProperties: false`` so that a field no schema defines is refused. Resources
refer to each other by ``$id`` (XDM's own ids), resolved through one in-memory registry;
nothing is ever fetched over the network.

Compiling is the expensive step: do it once per schema and keep the :class:`CompiledSchema`.
Checking a record is the ingestion hot path: :meth:`CompiledSchema.is_valid` stops at the
first problem, and errors are collected only for records already known to be invalid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import jsonschema_rs

from itinera.common.errors import FieldError
from itinera.common.settings import common_settings

__all__ = [
    "DRAFT_2020_12",
    "EXPERIENCE_EVENT",
    "PROFILE",
    "CompiledSchema",
    "SchemaKind",
    "SchemaLibrary",
    "SchemaLibraryError",
    "SchemaResource",
    "default_library",
]

DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
EXPERIENCE_EVENT: Final = "https://ns.adobe.com/xdm/context/experienceevent"
PROFILE: Final = "https://ns.adobe.com/xdm/context/profile"

SchemaKind = Literal["class", "fieldgroup", "datatype"]

_FOLDERS: Final[tuple[tuple[str, SchemaKind], ...]] = (
    ("classes", "class"),
    ("fieldgroups", "fieldgroup"),
    ("datatypes", "datatype"),
)
_SUFFIX: Final = ".schema.json"
_NO_RESOURCES: Final[Mapping[str, dict[str, Any]]] = MappingProxyType({})


class SchemaLibraryError(ValueError):
    """The schemas are inconsistent or unusable: unreadable JSON, a missing or duplicate
    ``$id``, a field group extending something that is not a class, a dangling ``$ref``."""


@dataclass(frozen=True)
class SchemaResource:
    """One schema document of the library.

    ``document`` is shared with the library and with every validator compiled from it:
    treat it as read-only.
    """

    id: str
    kind: SchemaKind
    name: str
    title: str
    document: dict[str, Any] = field(repr=False, compare=False, hash=False)
    extends: tuple[str, ...] = ()


class SchemaLibrary:
    """The built-in XDM resources, indexed by ``$id``."""

    def __init__(self, resources: Iterable[SchemaResource]) -> None:
        by_id: dict[str, SchemaResource] = {}
        for resource in resources:
            if resource.id in by_id:
                raise SchemaLibraryError(
                    f"duplicate $id {resource.id!r}: {by_id[resource.id].name!r} and {resource.name!r}"
                )
            by_id[resource.id] = resource
        for resource in by_id.values():
            for class_id in resource.extends:
                extended = by_id.get(class_id)
                if extended is None or extended.kind != "class":
                    raise SchemaLibraryError(
                        f"field group {resource.name!r} extends {class_id!r}, which is not a class"
                    )
        self._by_id = by_id

    @classmethod
    def load(cls, schemas_dir: Path) -> SchemaLibrary:
        """Read every ``*.schema.json`` of ``schemas_dir/xdm/``'s ``classes``,
        ``fieldgroups`` and ``datatypes`` folders."""
        root = schemas_dir / "xdm"
        if not root.is_dir():
            raise SchemaLibraryError(f"no XDM schemas at {root}")
        return cls(
            _read_resource(path, kind)
            for folder, kind in _FOLDERS
            for path in sorted((root / folder).glob(f"*{_SUFFIX}"))
        )

    def get(self, schema_id: str) -> SchemaResource:
        """The resource with this ``$id``; :class:`KeyError` if there is none."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise KeyError(f"unknown XDM schema {schema_id!r}") from None

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def resources(self) -> list[SchemaResource]:
        """Every resource, ordered by ``$id``."""
        return sorted(self._by_id.values(), key=lambda r: r.id)

    def classes(self) -> list[SchemaResource]:
        return self._of_kind("class")

    def field_groups(self) -> list[SchemaResource]:
        return self._of_kind("fieldgroup")

    def data_types(self) -> list[SchemaResource]:
        return self._of_kind("datatype")

    def field_groups_for(self, class_id: str) -> list[SchemaResource]:
        """The field groups intended to extend ``class_id``, ordered by ``$id``."""
        self._class(class_id)
        return [r for r in self.field_groups() if class_id in r.extends]

    def union_schema(
        self,
        class_id: str,
        field_group_ids: Sequence[str] | None = None,
        extra: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """The schema of a record of ``class_id`` made of the given field groups (every
        field group of the class when ``None``) and ``extra`` subschemas (tenant field
        groups, inline or as ``{"$ref": id}``). Fields that none of them defines are refused.
        """
        self._class(class_id)
        if field_group_ids is None:
            field_group_ids = [r.id for r in self.field_groups_for(class_id)]
        parts: list[dict[str, Any]] = [{"$ref": class_id}]
        for fg_id in field_group_ids:
            fg = self.get(fg_id)
            if fg.kind != "fieldgroup":
                raise SchemaLibraryError(f"{fg_id!r} is a {fg.kind}, not a field group")
            if class_id not in fg.extends:
                raise SchemaLibraryError(f"field group {fg_id!r} does not extend {class_id!r}")
            parts.append({"$ref": fg_id})
        parts.extend(extra)
        return {"$schema": DRAFT_2020_12, "allOf": parts, "unevaluatedProperties": False}

    def compile(
        self,
        schema: dict[str, Any],
        resources: Mapping[str, dict[str, Any]] = _NO_RESOURCES,
    ) -> CompiledSchema:
        """A validator for ``schema``, whose ``$ref``s may name any built-in resource or any
        of ``resources`` (tenant schemas and field groups, by ``$id``). Formats are checked.
        A reference to a schema that is in neither is an error: nothing is fetched.
        """
        clashes = sorted(set(resources) & set(self._by_id))
        if clashes:
            raise SchemaLibraryError(f"resources may not redefine built-in schemas: {clashes}")
        registry = self._registry if not resources else self._make_registry(resources)
        try:
            validator = jsonschema_rs.Draft202012Validator(
                schema, registry=registry, validate_formats=True, offline=True
            )
        except ValueError as exc:  # jsonschema_rs reports bad schemas and refs this way
            reason = str(exc).split("\n", 1)[0]
            raise SchemaLibraryError(f"cannot compile schema: {reason}") from exc

        def lookup(schema_id: str) -> Any:
            resource = self._by_id.get(schema_id)
            return resource.document if resource is not None else resources.get(schema_id)

        return CompiledSchema(validator, _root_properties(schema, lookup))

    @cached_property
    def _registry(self) -> jsonschema_rs.Registry:
        return self._make_registry(_NO_RESOURCES)

    def _make_registry(self, extra: Mapping[str, dict[str, Any]]) -> jsonschema_rs.Registry:
        pairs = [(r.id, r.document) for r in self._by_id.values()]
        pairs.extend(extra.items())
        return jsonschema_rs.Registry(pairs, draft=jsonschema_rs.Draft202012)

    def _class(self, class_id: str) -> SchemaResource:
        resource = self.get(class_id)
        if resource.kind != "class":
            raise SchemaLibraryError(f"{class_id!r} is a {resource.kind}, not a class")
        return resource

    def _of_kind(self, kind: SchemaKind) -> list[SchemaResource]:
        return [r for r in self.resources() if r.kind == kind]


class CompiledSchema:
    """A compiled validator: cheap to call, safe to share between tasks."""

    __slots__ = ("_root_names", "_validator")

    def __init__(self, validator: jsonschema_rs.Validator, root_names: frozenset[str] | None = None) -> None:
        self._validator = validator
        # The properties the schema defines at the root (None: not knowable statically).
        # A failing subschema contributes no annotations, so `unevaluatedProperties` also
        # reports fields that are defined but invalid; those are left out of `errors()`.
        self._root_names = root_names

    def is_valid(self, instance: Any) -> bool:
        return self._validator.is_valid(instance)

    def errors(self, instance: Any, base_path: str = "") -> list[FieldError]:
        """Every reason ``instance`` is invalid, as field errors whose paths are JSON
        Pointers prefixed with ``base_path`` (e.g. ``/body/xdmEntity``). ``code`` is the
        keyword that failed; a missing property and each unexpected property get a path
        of their own."""
        if self._validator.is_valid(instance):
            return []
        raw = list(self._validator.iter_errors(instance))
        failing = [
            _pointer("", e.instance_path)
            for e in raw
            if not isinstance(e.kind, jsonschema_rs.ValidationErrorKind.UnevaluatedProperties)
        ]
        found: list[FieldError] = []
        seen: set[tuple[str, str, str]] = set()
        for error in raw:
            for field_error in self._field_errors(error, base_path, failing):
                key = (field_error.path, field_error.code, field_error.message)
                if key not in seen:
                    seen.add(key)
                    found.append(field_error)
        return found

    def _field_errors(
        self, error: jsonschema_rs.ValidationError, base_path: str, failing: list[str]
    ) -> list[FieldError]:
        kind = error.kind
        code = kind.name
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            path = _pointer(base_path, [*error.instance_path, kind.property])
            return [FieldError(path=path, message=f"{kind.property!r} is required", code=code)]
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.UnevaluatedProperties):
            names = [
                name
                for name in kind.unexpected
                if not self._defined_but_invalid(error.instance_path, name, failing)
            ]
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            names = list(kind.unexpected)
        else:
            path = _pointer(base_path, error.instance_path)
            message = error.message
            if isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
                allowed = ", ".join(json.dumps(option) for option in kind.options)
                message = f"{json.dumps(error.instance)} is not one of {allowed}"
            return [FieldError(path=path, message=message, code=code)]
        return [
            FieldError(
                path=_pointer(base_path, [*error.instance_path, name]),
                message=f"{name!r} is not a field of this schema",
                code=code,
            )
            for name in names
        ]

    def _defined_but_invalid(self, parent: Sequence[str | int], name: str, failing: list[str]) -> bool:
        if not parent and self._root_names is not None:
            return name in self._root_names
        # Below the root (only tenant schemas close objects there) the best evidence is
        # another error inside the property.
        here = _pointer("", [*parent, name])
        return any(p == here or p.startswith(here + "/") for p in failing)


@cache
def default_library() -> SchemaLibrary:
    """The library of the configured ``schemas_dir``, loaded once per process."""
    return SchemaLibrary.load(common_settings().schemas_dir)


def _read_resource(path: Path, kind: SchemaKind) -> SchemaResource:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLibraryError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SchemaLibraryError(f"{path} does not hold a JSON object")
    schema_id = document.get("$id")
    if not isinstance(schema_id, str) or not schema_id:
        raise SchemaLibraryError(f"{path} has no $id")
    extends = document.get("meta:intendedToExtend", [])
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise SchemaLibraryError(f"{path}: meta:intendedToExtend must be a list of class ids")
    if kind == "fieldgroup" and not extends:
        raise SchemaLibraryError(f"field group {path} has no meta:intendedToExtend")
    return SchemaResource(
        id=schema_id,
        kind=kind,
        name=path.name.removesuffix(_SUFFIX),
        title=str(document.get("title", "")),
        document=document,
        extends=tuple(extends),
    )


def _pointer(base_path: str, parts: Iterable[str | int]) -> str:
    return base_path + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _root_properties(schema: Any, lookup: Callable[[str], Any]) -> frozenset[str] | None:
    """The property names ``schema`` defines at the root of an instance, following ``$ref``
    and the in-place applicators; ``None`` when that cannot be known statically (pattern
    or additional properties, a reference that does not resolve)."""
    names: set[str] = set()

    def resolve(reference: str, base: str | None) -> tuple[Any, str | None]:
        target, _, fragment = reference.partition("#")
        document_id = target or base
        node = lookup(document_id) if document_id else schema
        for token in fragment.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict):
                node = node.get(token)
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                node = None
        return node, document_id

    def walk(node: Any, base: str | None, depth: int) -> bool:
        if isinstance(node, bool):
            return True
        if not isinstance(node, dict) or depth > 32:
            return False
        if isinstance(node.get("$id"), str):
            base = node["$id"]
        if "patternProperties" in node or node.get("additionalProperties", False) is not False:
            return False
        names.update(node.get("properties", {}))
        children: list[tuple[Any, str | None]] = []
        if isinstance(node.get("$ref"), str):
            children.append(resolve(node["$ref"], base))
        for keyword in ("allOf", "anyOf", "oneOf"):
            children.extend((sub, base) for sub in node.get(keyword, []))
        children.extend((node[k], base) for k in ("if", "then", "else") if k in node)
        children.extend((sub, base) for sub in node.get("dependentSchemas", {}).values())
        return all(walk(child, child_base, depth + 1) for child, child_base in children)

    return frozenset(names) if walk(schema, None, 0) else None
