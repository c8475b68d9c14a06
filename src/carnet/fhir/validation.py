"""Structural validation of incoming resources against the FHIR R4 definitions
(http://hl7.org/fhir/R4/json.html#schema).

HL7 publishes FHIR R4 as a JSON schema; carnet keeps the part its accepted resources reach
(``carnet/data/fhir-r4.schema.json``, extracted by tools/fhir_schema_subset.py) and compiles a
validator per resource type with fastjsonschema, on first use (``warm`` compiles them ahead, at
start). Validating a DocumentReference this way costs tens of microseconds, where validating it
through Python models costs milliseconds (limits.md: "validation off the slow models").

A Bundle is validated as a Bundle, and each resource it carries on its own by its own type
(the schema's "one of every resource" would try them all); contained resources likewise. The
client's JSON is what is kept; nothing is re-serialised.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
import orjson

from carnet.fhir.errors import InvalidInput

ACCEPTED = (
    "Patient",
    "DocumentReference",
    "List",
    "Binary",
    "Bundle",
    "Parameters",
    "Consent",
    "RelatedPerson",
)
CONTAINED = ("Patient", "Practitioner", "PractitionerRole", "Organization", "Device")
_lock = threading.Lock()


@cache
def _definitions() -> dict[str, Any]:
    text = (resources.files("carnet") / "data" / "fhir-r4.schema.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


def fhir_definitions() -> dict[str, Any]:
    """The FHIR R4 definitions carnet keeps (what the API's description publishes too)."""
    definitions: dict[str, Any] = _definitions()["definitions"]
    return definitions


@cache
def _compiled(resource_type: str) -> Any:
    schema = _definitions()
    return fastjsonschema.compile(
        {
            "$schema": schema["$schema"],
            "definitions": schema["definitions"],
            "$ref": f"#/definitions/{resource_type}",
        }
    )


def _validator(resource_type: str) -> Any:
    with _lock:  # compiling is not reentrant; warm() may be running in a thread
        return _compiled(resource_type)


def warm() -> None:
    """Compile every validator now (at start, so that the first requests do not wait)."""
    for name in (*ACCEPTED, *CONTAINED):
        _validator(name)


def _where(path: Any, prefix: str) -> str:
    out = prefix
    for part in list(path or [])[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _check(resource: dict[str, Any], where: str) -> None:
    rtype = resource.get("resourceType")
    if rtype not in ACCEPTED and rtype not in CONTAINED:
        raise InvalidInput(f"resourceType {rtype!r} is not supported here", expression=where)
    try:
        _validator(str(rtype))(resource)
    except fastjsonschema.JsonSchemaException as exc:
        path = _where(getattr(exc, "path", None), where)
        text = str(exc)
        message = text.replace("data", path, 1) if text else "invalid"
        raise InvalidInput(f"invalid FHIR resource: {message}", expression=path) from None
    for index, inner in enumerate(resource.get("contained") or []):
        if isinstance(inner, dict) and inner.get("resourceType") in CONTAINED:
            _check(inner, f"{where}.contained[{index}]")
    if rtype == "Bundle":
        for index, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict):
                _check(inner, f"Bundle.entry[{index}].resource")


def validate(resource: dict[str, Any], prefix: str = "") -> None:
    """Raise 400 naming the first problem if ``resource`` is not valid FHIR R4."""
    rtype = resource.get("resourceType")
    if rtype not in ACCEPTED:
        raise InvalidInput(
            f"resourceType {rtype!r} is not supported here", expression="resourceType"
        )
    _check(resource, f"{prefix}{rtype}")
