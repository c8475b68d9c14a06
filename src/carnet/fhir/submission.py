"""Reading the parts of an MHD submission common to ITI-65 and ITI-105: the subject reference,
the submission set (List, IHE MHD "SubmissionSet Comprehensive"), inline content."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any
from urllib.parse import unquote

import orjson

from carnet.domain.clock import utcnow
from carnet.domain.content import Representation
from carnet.domain.documents import SubmissionSetInput
from carnet.domain.ins import OID_NIR, parse_ins
from carnet.domain.records import PatientRef
from carnet.fhir import extensions as X
from carnet.fhir.docref_resource import (
    code_of,
    contained_map,
    first_coding,
    parse_datetime,
    people_of,
)
from carnet.fhir.errors import InvalidInput, UnprocessableEntity


def subject_ref(ref: object, where: str, *, allow_test: bool) -> PatientRef:
    """``Patient?identifier=system|value``, ``Patient/<id>`` (relative or absolute), or a
    logical reference by identifier."""
    if not isinstance(ref, dict):
        raise UnprocessableEntity(f"{where} is required (the patient)", expression=where)
    text = ref.get("reference")
    if isinstance(text, str) and text:
        if text.startswith("Patient?"):
            query = text.split("?", 1)[1]
            name, _, value = query.partition("=")
            if name != "identifier" or "|" not in value:
                raise UnprocessableEntity(
                    f"{where}.reference {text!r}: a conditional reference must be "
                    "Patient?identifier=<system>|<INS>",
                    expression=f"{where}.reference",
                )
            system, ins_value = unquote(value).split("|", 1)
            ins = parse_ins(system, ins_value, allow_test=allow_test, field=f"{where}.reference")
            return PatientRef(ins=ins)
        if "Patient/" in text:
            ident = text.rsplit("Patient/", 1)[1].split("/", 1)[0]
            if ident:
                return PatientRef(record_id=ident)
        raise UnprocessableEntity(
            f"{where}.reference {text!r} does not name a Patient", expression=f"{where}.reference"
        )
    logical = ref.get("identifier")
    if isinstance(logical, dict):
        ins = parse_ins(
            str(logical.get("system") or f"urn:oid:{OID_NIR}"),
            str(logical.get("value") or ""),
            allow_test=allow_test,
            field=f"{where}.identifier",
        )
        return PatientRef(ins=ins)
    raise UnprocessableEntity(f"{where} names no patient", expression=where)


def decode_data(data: object, where: str) -> bytes:
    if not isinstance(data, str):
        raise InvalidInput(f"{where} must be base64 text", expression=where)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where} is not valid base64", expression=where) from None


def submission_set_from_list(
    resource: dict[str, Any], key: str, actor_id: str
) -> SubmissionSetInput:
    """Submission set metadata (uniqueId, sourceId, submissionTime, author) from a List."""
    code = code_of(resource.get("code"))
    if code != "submissionset":
        raise UnprocessableEntity(
            "List.code must be submissionset (https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes)",
            expression="List.code",
        )
    unique_id = None
    for ident in resource.get("identifier") or []:
        if (
            isinstance(ident, dict)
            and ident.get("value")
            and ident.get("use") in ("official", None)
        ):
            unique_id = str(ident["value"])
            if ident.get("use") == "official":
                break
    if unique_id is None:
        raise UnprocessableEntity(
            "the submission set has no uniqueId: List.identifier with use 'official' is "
            "required (IHE MHD SubmissionSet Comprehensive)",
            expression="List.identifier",
        )
    source = X.find_extension(resource.get("extension"), X.MHD_SOURCE_ID)
    source_value = source.get("valueIdentifier") if source else None
    if not isinstance(source_value, dict) or not source_value.get("value"):
        raise UnprocessableEntity(
            "the submission set has no sourceId (extension ihe-sourceId)",
            expression="List.extension:sourceId",
        )
    when = parse_datetime(resource.get("date"), "List.date")
    if when is None:
        raise UnprocessableEntity(
            "the submission set has no submissionTime (List.date)", expression="List.date"
        )
    contained = contained_map(resource)
    authors = people_of(resource.get("source"), contained)
    title = resource.get("title")
    return SubmissionSetInput(
        unique_id=unique_id,
        source_id=str(source_value["value"]),
        submission_time=when,
        author_id=authors[0].value if authors else None,
        key=key,
        source=Representation("application/fhir+json", orjson.dumps(resource)),
        author=authors[0] if authors else None,
        author_org=_author_org(resource, contained),
        designation_type=_designation_type(resource),
        title=title if isinstance(title, str) and title else None,
    )


def _author_org(
    resource: dict[str, Any], contained: dict[str, dict[str, Any]]
) -> tuple[str, str] | None:
    """The authoring organisation (extension ihe-authorOrg): its identifier, logical or of the
    contained Organization."""
    ext = X.find_extension(resource.get("extension"), X.MHD_AUTHOR_ORG)
    ref = ext.get("valueReference") if ext else None
    if not isinstance(ref, dict):
        return None
    ident = ref.get("identifier")
    if not (isinstance(ident, dict) and ident.get("value")):
        target = contained.get(str(ref.get("reference") or "")) or {}
        ident = next(
            (i for i in target.get("identifier") or [] if isinstance(i, dict) and i.get("value")),
            None,
        )
    if not isinstance(ident, dict):
        return None
    return str(ident.get("system") or ""), str(ident["value"])


def _designation_type(resource: dict[str, Any]) -> tuple[str, str] | None:
    """The submission set's designation type (extension ihe-designationType, its first
    coding)."""
    ext = X.find_extension(resource.get("extension"), X.MHD_DESIGNATION_TYPE)
    coding = first_coding(ext.get("valueCodeableConcept")) if ext else None
    if not coding:
        return None
    return str(coding.get("system") or ""), str(coding["code"])


def implicit_submission_set(actor_id: str, structure: str | None) -> SubmissionSetInput:
    """ITI-105 Simplified Publish: the recipient makes the submission set."""
    unique = f"urn:uuid:{uuid.uuid4()}"
    now = utcnow()
    resource = {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": X.MHD_LIST_TYPES, "code": "submissionset"}]},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": unique}],
        "date": now.isoformat() + "Z",
        "extension": [
            {
                "url": X.MHD_SOURCE_ID,
                "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": structure or actor_id},
            }
        ],
    }
    return SubmissionSetInput(
        unique_id=unique,
        source_id=structure or actor_id,
        submission_time=now,
        author_id=actor_id,
        key="implicit",
        source=Representation("application/fhir+json", orjson.dumps(resource)),
    )
