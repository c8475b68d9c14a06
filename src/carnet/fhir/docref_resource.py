"""DocumentReference ↔ document entry: IHE MHD "Comprehensive DocumentReference" and the ANS
PDSm profile (https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition-pdsm-comprehensive-document-reference.html),
mapping to the XDS metadata of dmp.md §6 as in IHE MHD Table 4.5.1.1-1.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import to_utc_naive
from carnet.domain.documents import VISIBILITY_CODES, DocumentEntry
from carnet.errors import InvalidInput, UnprocessableEntity


def parse_datetime(value: object, where: str) -> datetime | None:
    """A FHIR dateTime / instant; partial dates are read at their start."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a dateTime string", expression=where)
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1)
        return to_utc_naive(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput(
            f"{where}: {value!r} is not a valid dateTime", expression=where
        ) from None


def first_coding(concept: object) -> dict[str, Any] | None:
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for c in codings:
                if isinstance(c, dict) and c.get("code"):
                    return c
    return None


def code_of(concept: object) -> str | None:
    c = first_coding(concept)
    return str(c["code"]) if c else None


def contained_map(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in resource.get("contained") or []:
        if isinstance(c, dict) and isinstance(c.get("id"), str):
            out["#" + c["id"]] = c
    return out


def identifiers_of(ref: object, contained: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Identifiers (system, value) of a Reference: logical identifier, or a contained resource."""
    out: list[tuple[str, str]] = []
    if not isinstance(ref, dict):
        return out
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        out.append((str(ident.get("system") or ""), str(ident["value"])))
    target = contained.get(str(ref.get("reference") or ""))
    if target is not None:
        if target.get("resourceType") == "PractitionerRole":
            prac = target.get("practitioner")
            out += identifiers_of(prac, contained)
        for i in target.get("identifier") or []:
            if isinstance(i, dict) and i.get("value"):
                out.append((str(i.get("system") or ""), str(i["value"])))
    return out


def author_rpps(entry: DocumentEntry) -> str | None:
    for system, value in entry.author_ids:
        if system == RPPS_SYSTEM:
            return value
    return None


def entry_from_docref(resource: dict[str, Any]) -> DocumentEntry:
    """Read the §6 metadata of a DocumentReference (no validation of presence here)."""
    contained = contained_map(resource)
    e = DocumentEntry()
    mi = resource.get("masterIdentifier")
    if isinstance(mi, dict) and mi.get("value"):
        e.unique_id = str(mi["value"])
    cats = resource.get("category")
    if isinstance(cats, list) and cats:
        e.class_code = code_of(cats[0])
    tc = first_coding(resource.get("type"))
    if tc:
        e.type_code = str(tc["code"])
        e.type_system = str(tc.get("system") or "")
    for label in resource.get("securityLabel") or []:
        code = code_of(label)
        if code:
            e.confidentiality.append(code)
    e.date = parse_datetime(resource.get("date"), "DocumentReference.date")
    contents = resource.get("content")
    if not isinstance(contents, list) or not contents:
        raise UnprocessableEntity(
            "DocumentReference.content is required (one attachment)",
            expression="DocumentReference.content",
        )
    if len(contents) > 1:
        raise UnprocessableEntity(
            "a document entry has exactly one content (send one DocumentReference per document)",
            expression="DocumentReference.content",
        )
    content = contents[0] if isinstance(contents[0], dict) else {}
    att = content.get("attachment") if isinstance(content.get("attachment"), dict) else {}
    assert isinstance(att, dict)
    e.content_type = att.get("contentType")
    e.language = att.get("language")
    e.title = att.get("title")
    e.creation_time = parse_datetime(
        att.get("creation"), "DocumentReference.content.attachment.creation"
    )
    if att.get("size") is not None:
        if not isinstance(att["size"], int) or att["size"] < 0:
            raise InvalidInput(
                "attachment.size must be a non-negative integer",
                expression="DocumentReference.content.attachment.size",
            )
        e.size = att["size"]
    if att.get("hash") is not None:
        try:
            e.hash_sha1 = base64.b64decode(str(att["hash"]), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "attachment.hash is not base64",
                expression="DocumentReference.content.attachment.hash",
            ) from None
        if len(e.hash_sha1) != 20:
            raise InvalidInput(
                "attachment.hash must be the base64 SHA-1 of the content (20 bytes), "
                f"got {len(e.hash_sha1)} bytes",
                expression="DocumentReference.content.attachment.hash",
            )
    fmt = content.get("format")  # a Coding in R4
    if isinstance(fmt, dict) and fmt.get("code"):
        e.format_code = str(fmt["code"])
    ctx = resource.get("context") if isinstance(resource.get("context"), dict) else {}
    assert isinstance(ctx, dict)
    period = ctx.get("period") if isinstance(ctx.get("period"), dict) else {}
    assert isinstance(period, dict)
    e.service_start = parse_datetime(period.get("start"), "DocumentReference.context.period.start")
    e.service_stop = parse_datetime(period.get("end"), "DocumentReference.context.period.end")
    e.facility_code = code_of(ctx.get("facilityType"))
    e.setting_code = code_of(ctx.get("practiceSetting"))
    spi = identifiers_of(ctx.get("sourcePatientInfo"), contained)
    if spi:
        e.source_patient_id = f"{spi[0][0]}|{spi[0][1]}"
    for author in resource.get("author") or []:
        ids = identifiers_of(author, contained)
        e.author_ids += ids
        if not ids and isinstance(author, dict) and author.get("reference"):
            e.author_has_role = True
    la = identifiers_of(resource.get("authenticator"), contained)
    if la:
        e.legal_authenticator = la[0][1]
    for rel in resource.get("relatesTo") or []:
        if isinstance(rel, dict) and rel.get("code") == "replaces":
            target = rel.get("target")
            ref = target.get("reference") if isinstance(target, dict) else None
            if not isinstance(ref, str) or "DocumentReference/" not in ref:
                raise UnprocessableEntity(
                    "relatesTo.replaces must reference DocumentReference/<id>",
                    expression="DocumentReference.relatesTo.target",
                )
            e.replaces = ref.rsplit("DocumentReference/", 1)[1].split("/")[0]
    return e


def visibility_labels(codes: list[str]) -> list[str]:
    return [c for c in codes if c in VISIBILITY_CODES]
