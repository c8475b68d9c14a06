"""DocumentReference ↔ document entry: IHE MHD "Comprehensive DocumentReference" and the ANS
PDSm profile (https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition-pdsm-comprehensive-document-reference.html),
mapping to the XDS metadata of dmp.md §6 as in IHE MHD Table 4.5.1.1-1.

- :func:`entry_from_docref`: a client's DocumentReference → the core's document entry;
- :func:`render_docref`: a stored document → the DocumentReference served: the client's own
  resource as it was sent (kept by the core as an opaque representation) with carnet's fields
  set from the document's current state (id, version, status, labels, archive flag, subject,
  content address), and what the entry knows that the resource lacks (metadata the core read
  from a CDA header, or a document that came through another interface) filled in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Any

import orjson

from carnet.domain.clock import iso, to_utc_naive
from carnet.domain.content import ContentSource, InlineContent, Representation
from carnet.domain.documents import (
    VISIBILITY_CODES,
    VISIBILITY_SYSTEM,
    Author,
    DocumentEntry,
    StoredDocument,
)
from carnet.fhir import extensions as X
from carnet.fhir.errors import InvalidInput, UnprocessableEntity

FHIR_JSON = "application/fhir+json"
ARCHIVE_URLS = (X.PDSM_IS_ARCHIVED, X.DMP_ARCHIVED)
"""The archive flag: PDSm's extension, and carnet's earlier ``dmp-archived`` as its alias."""


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
    return [(a.system, a.value) for a in _people(ref, contained)]


def people_of(ref: object, contained: dict[str, dict[str, Any]]) -> list[Author]:
    """The persons a Reference names, with their names when a contained resource gives them."""
    return _people(ref, contained)


def _people(ref: object, contained: dict[str, dict[str, Any]]) -> list[Author]:
    """The persons a Reference names (logical identifier, or a contained resource), with their
    names when a contained resource gives them."""
    out: list[Author] = []
    if not isinstance(ref, dict):
        return out
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        out.append(Author(str(ident.get("system") or ""), str(ident["value"])))
    target = contained.get(str(ref.get("reference") or ""))
    if target is not None:
        if target.get("resourceType") == "PractitionerRole":
            out += _people(target.get("practitioner"), contained)
        family, given = _name(target)
        for i in target.get("identifier") or []:
            if isinstance(i, dict) and i.get("value"):
                out.append(Author(str(i.get("system") or ""), str(i["value"]), family, given))
    return out


def _name(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    names = resource.get("name")
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return None, None
    family = names[0].get("family")
    given = names[0].get("given")
    return (
        str(family) if isinstance(family, str) else None,
        " ".join(str(g) for g in given) if isinstance(given, list) else None,
    )


def author_rpps(entry: DocumentEntry) -> str | None:
    return entry.author_rpps()


def entry_from_docref(resource: dict[str, Any]) -> DocumentEntry:
    """Read the §6 metadata of a DocumentReference (no validation of presence here)."""
    contained = contained_map(resource)
    e = DocumentEntry()
    mi = resource.get("masterIdentifier")
    if isinstance(mi, dict) and mi.get("value"):
        e.unique_id = str(mi["value"])
    e.entry_uuid = entry_uuid_of(resource)
    cats = resource.get("category")
    if isinstance(cats, list) and cats:
        e.class_code = code_of(cats[0])
    tc = first_coding(resource.get("type"))
    if tc:
        e.type_code = str(tc["code"])
        e.type_system = str(tc.get("system") or "")
        e.type_display = str(tc["display"]) if tc.get("display") else None
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
        e.format_system = str(fmt["system"]) if fmt.get("system") else None
    ctx = resource.get("context") if isinstance(resource.get("context"), dict) else {}
    assert isinstance(ctx, dict)
    period = ctx.get("period") if isinstance(ctx.get("period"), dict) else {}
    assert isinstance(period, dict)
    e.service_start = parse_datetime(period.get("start"), "DocumentReference.context.period.start")
    e.service_stop = parse_datetime(period.get("end"), "DocumentReference.context.period.end")
    facility = first_coding(ctx.get("facilityType"))
    if facility:
        e.facility_code = str(facility["code"])
        e.facility_system = str(facility["system"]) if facility.get("system") else None
    setting = first_coding(ctx.get("practiceSetting"))
    if setting:
        e.setting_code = str(setting["code"])
        e.setting_system = str(setting["system"]) if setting.get("system") else None
    for event in ctx.get("event") or []:
        for coding in (event.get("coding") or []) if isinstance(event, dict) else []:
            if isinstance(coding, dict) and coding.get("code"):
                e.events.append((str(coding.get("system") or ""), str(coding["code"])))
    for rel in ctx.get("related") or []:
        if not isinstance(rel, dict):
            continue
        ref = rel.get("reference")
        ident = rel.get("identifier") if isinstance(rel.get("identifier"), dict) else {}
        assert isinstance(ident, dict)
        if (isinstance(ref, str) and ref) or ident.get("value"):
            e.related.append(
                (
                    ref if isinstance(ref, str) and ref else None,
                    str(ident["system"]) if ident.get("system") else None,
                    str(ident["value"]) if ident.get("value") else None,
                )
            )
    spi = identifiers_of(ctx.get("sourcePatientInfo"), contained)
    if spi:
        e.source_patient_id = f"{spi[0][0]}|{spi[0][1]}"
    for author in resource.get("author") or []:
        people = _people(author, contained)
        e.authors += people
        if not people and isinstance(author, dict) and author.get("reference"):
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


def entry_uuid_of(resource: dict[str, Any]) -> str | None:
    """The entryUUID (IHE MHD 4.2.3 DocumentReference: ``identifier`` with use ``official``
    and a ``urn:uuid:`` value); other identifiers are kept as sent, not read."""
    for ident in resource.get("identifier") or []:
        if (
            isinstance(ident, dict)
            and ident.get("use") == "official"
            and str(ident.get("value") or "").startswith("urn:uuid:")
        ):
            return str(ident["value"])
    return None


def with_entry_uuid(identifiers: object, entry_uuid: str | None) -> list[Any]:
    """``identifier`` as served: the client's, and the entryUUID (use ``official``) when they
    lack it (carnet assigned it)."""
    out = list(identifiers) if isinstance(identifiers, list) else []
    if entry_uuid and not any(isinstance(i, dict) and i.get("value") == entry_uuid for i in out):
        out.append({"use": "official", "system": "urn:ietf:rfc:3986", "value": entry_uuid})
    return out


def visibility_labels(codes: list[str]) -> list[str]:
    return [c for c in codes if c in VISIBILITY_CODES]


def archived_of(resource: dict[str, Any], stored: bool = False) -> bool:
    """The archive flag a client's resource asks for, the document being ``stored`` archived or
    not: none of the archive extensions (PDSm's or its alias ``dmp-archived``) is not archived;
    one whose value differs from the stored flag changes it (a client that changed one of the
    two a read served it, by PUT or PATCH, changed the flag); otherwise it stays."""
    values = []
    for n, ext in enumerate(resource.get("extension") or []):
        if isinstance(ext, dict) and ext.get("url") in ARCHIVE_URLS:
            value = ext.get("valueBoolean")
            if not isinstance(value, bool):
                raise InvalidInput(
                    f"the archive extension {ext.get('url')} carries a valueBoolean",
                    expression=f"DocumentReference.extension[{n}]",
                )
            values.append(value)
    if not values:
        return False
    return not stored if any(v != stored for v in values) else stored


def other_extensions(resource: dict[str, Any]) -> list[Any]:
    return [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") in ARCHIVE_URLS)
    ]


def source_of(resource: dict[str, Any], entry: DocumentEntry | None = None) -> Representation:
    """The client's resource, kept by the core as it was sent (minus inline content), with what
    ``entry`` knows that it lacks filled in."""
    kept = dict(resource)
    contents = kept.get("content")
    if isinstance(contents, list) and contents and isinstance(contents[0], dict):
        att = contents[0].get("attachment")
        if isinstance(att, dict) and "data" in att:
            first = dict(contents[0])
            first["attachment"] = {k: v for k, v in att.items() if k != "data"}
            kept["content"] = [first, *contents[1:]]
    if entry is not None:
        _fill(kept, entry)
    return Representation(FHIR_JSON, orjson.dumps(kept))


def publishable(
    resource: dict[str, Any], content: ContentSource, entry: DocumentEntry
) -> Representation:
    """What the core keeps of a published DocumentReference: the client's resource with, when
    the content is carried inline, its size and SHA-1 (Attachment.hash), so that reads serve it
    as it is. (What the core reads from a CDA header is filled in when served.)"""
    source = source_of(resource)
    if not isinstance(content, InlineContent):
        return source
    kept: dict[str, Any] = orjson.loads(source.data)
    att = kept["content"][0].setdefault("attachment", {})
    att.setdefault("size", len(content.data))
    att.setdefault("hash", base64.b64encode(hashlib.sha1(content.data).digest()).decode())  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
    return Representation(FHIR_JSON, orjson.dumps(kept))


# -- rendering ------------------------------------------------------------------------------------


def _coding(system: str | None, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code} if system else {"code": code}
    if display:
        out["display"] = display
    return out


def _label(code: str) -> dict[str, Any]:
    system = VISIBILITY_SYSTEM if code in VISIBILITY_CODES else X.CONFIDENTIALITY_SYSTEM
    return {"coding": [{"system": system, "code": code}]}


def _fill(out: dict[str, Any], entry: DocumentEntry) -> None:
    """What the entry knows and the resource lacks (metadata read from a CDA header by the
    core, or a document that came through another interface)."""
    if not out.get("masterIdentifier") and entry.unique_id:
        out["masterIdentifier"] = {"value": entry.unique_id}
    if not out.get("type") and entry.type_code:
        out["type"] = {"coding": [_coding(entry.type_system, entry.type_code, entry.type_display)]}
    if not out.get("category") and entry.class_code:
        out["category"] = [{"coding": [{"system": X.CLASS_SYSTEM, "code": entry.class_code}]}]
    if not out.get("date") and entry.date:
        out["date"] = iso(entry.date)
    contents = out.get("content")
    if not isinstance(contents, list) or not contents or not isinstance(contents[0], dict):
        contents = [{}]
    first = dict(contents[0])
    att = dict(first.get("attachment") or {})
    for key, value in (
        ("contentType", entry.content_type),
        ("language", entry.language),
        ("title", entry.title),
        ("creation", iso(entry.creation_time) if entry.creation_time else None),
    ):
        if not att.get(key) and value:
            att[key] = value
    first["attachment"] = att
    if not first.get("format") and entry.format_code:
        first["format"] = _coding(entry.format_system, entry.format_code)
    out["content"] = [first, *contents[1:]]
    ctx = dict(out.get("context") or {})
    if not ctx.get("period") and entry.service_start:
        period = {"start": iso(entry.service_start)}
        if entry.service_stop:
            period["end"] = iso(entry.service_stop)
        ctx["period"] = period
    if not ctx.get("facilityType") and entry.facility_code:
        ctx["facilityType"] = {"coding": [_coding(entry.facility_system, entry.facility_code)]}
    if not ctx.get("practiceSetting") and entry.setting_code:
        ctx["practiceSetting"] = {"coding": [_coding(entry.setting_system, entry.setting_code)]}
    contained = list(out.get("contained") or [])
    if not ctx.get("sourcePatientInfo") and entry.source_patient_id:
        system, _, value = entry.source_patient_id.partition("|")
        contained.append(
            {
                "resourceType": "Patient",
                "id": "source-patient",
                "identifier": [{"system": system, "value": value} if value else {"value": system}],
            }
        )
        ctx["sourcePatientInfo"] = {"reference": "#source-patient"}
    if ctx:
        out["context"] = ctx
    if not out.get("author") and entry.authors:
        refs = []
        for n, a in enumerate(entry.authors):
            practitioner: dict[str, Any] = {
                "resourceType": "Practitioner",
                "id": f"author-{n}",
                "identifier": [{"system": a.system, "value": a.value}],
            }
            if a.family:
                practitioner["name"] = [
                    {"family": a.family, "given": a.given.split() if a.given else []}
                ]
            contained.append(practitioner)
            refs.append({"reference": f"#author-{n}"})
        out["author"] = refs
    if contained:
        out["contained"] = contained


def render_docref(doc: StoredDocument, base: str) -> bytes:
    """The DocumentReference of a stored document, as served (``base``: the FHIR base URL).

    A document published through FHIR is served from its client's resource (completed at
    publish time); one that came through another interface is rendered from its entry."""
    if doc.source is not None and doc.source.media_type == FHIR_JSON:
        out: dict[str, Any] = orjson.loads(doc.source.data)
        if doc.completed:  # the core read metadata from the content that the resource lacks
            entry = doc.entry
            if entry is not None:
                _fill(out, entry)
    else:
        out = {"resourceType": "DocumentReference"}
        entry = doc.entry
        if entry is not None:
            _fill(out, entry)
    out["id"] = doc.doc_id
    meta = dict(out.get("meta") or {})
    meta["versionId"] = str(doc.version_id)
    meta["lastUpdated"] = iso(doc.last_updated)
    out["meta"] = meta
    out["status"] = doc.status.value
    kept = [label for label in out.get("securityLabel") or [] if code_of(label) in doc.labels]
    have = {code_of(label) for label in kept}
    kept += [_label(code) for code in sorted(doc.labels - have)]
    # visibility codes first: the ANS PDSm for DMP guide (TD3.3a, TD3.3b) masks and unmasks by
    # replacing /securityLabel/0 (to MASQUE_PS or INVISIBLE_PATIENT, back to N)
    kept.sort(key=lambda label: code_of(label) not in VISIBILITY_CODES)
    if kept:
        out["securityLabel"] = kept
    else:
        out.pop("securityLabel", None)
    exts = other_extensions(out)
    exts.append({"url": X.PDSM_IS_ARCHIVED, "valueBoolean": doc.archived})
    if doc.archived:  # carnet's earlier extension, for the clients that read it
        exts.append({"url": X.DMP_ARCHIVED, "valueBoolean": True})
    out["extension"] = exts
    out["subject"] = {"reference": f"Patient/{doc.record_id}"}
    if doc.entry_uuid:
        out["identifier"] = with_entry_uuid(out.get("identifier"), doc.entry_uuid)
    contents = [dict(c) for c in out.get("content") or [{}]]
    att = dict(contents[0].get("attachment") or {})
    att.pop("data", None)
    # a FHIR document is read as the Bundle it is (PDSm for DMP TD3.2 case 3: bundle_read.py)
    kind = "Bundle" if doc.content_type.split(";")[0].strip() == FHIR_JSON else "Binary"
    att["url"] = f"{base}/{kind}/{doc.binary_id}"
    att["size"] = doc.size
    att.setdefault("contentType", doc.content_type)
    if "hash" not in att:
        entry = doc.entry
        if entry is not None and entry.hash_sha1 is not None:
            att["hash"] = base64.b64encode(entry.hash_sha1).decode()
    contents[0]["attachment"] = att
    out["content"] = contents
    if doc.replaces_id:
        relates = [
            r
            for r in out.get("relatesTo") or []
            if not (isinstance(r, dict) and r.get("code") == "replaces")
        ]
        relates.append(
            {"code": "replaces", "target": {"reference": f"DocumentReference/{doc.replaces_id}"}}
        )
        out["relatesTo"] = relates
    return orjson.dumps(out)
