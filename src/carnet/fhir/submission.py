"""Reading the parts of an MHD submission common to ITI-65 and ITI-105: the subject reference,
the submission set (List, IHE MHD "SubmissionSet Comprehensive"), inline content."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any
from urllib.parse import unquote

import orjson

from carnet.domain.actors import RPPS_OID, Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.content import ContentSource, InlineContent, Representation
from carnet.domain.documents import (
    ENTRY_UUID_PREFIX,
    FolderInput,
    SubmissionSetInput,
    is_entry_uuid,
    new_entry_uuid,
)
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


_WHITESPACE = str.maketrans("", "", " \t\r\n\f\v")


def decode_data(data: object, where: str) -> bytes:
    """A base64Binary (FHIR R4 datatypes.html#base64Binary, whose pattern allows whitespace):
    MIME line breaks (RFC 2045 §6.8) and other ASCII whitespace are ignored; any other
    character than the base64 alphabet is refused."""
    if not isinstance(data, str):
        raise InvalidInput(f"{where} must be base64 text", expression=where)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(data.translate(_WHITESPACE), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where} is not valid base64", expression=where) from None


RFC3986 = "urn:ietf:rfc:3986"
_OID = re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")
OID_MAX = 64
"""XDS limits an OID uniqueId to 64 characters (ITI TF-3 4.2.3.2.26, 4.2.3.3.12)."""
SUBMISSION_SET_PROFILE = "IHE MHD 4.2.3 SubmissionSet Comprehensive"
FOLDER_PROFILE = "IHE MHD 4.2.3 Folder Comprehensive"
UUID_OID_ARC = "2.25"
"""ITU-T X.667 | ISO/IEC 9834-8: the OID arc of UUIDs, where an OID is made from a UUID without
any registration. carnet makes the uniqueIds and sourceIds it has to make there."""


def uuid_oid(value: uuid.UUID | None = None) -> str:
    """``urn:oid:2.25.<the UUID as an integer>`` (at most 44 characters)."""
    return f"urn:oid:{UUID_OID_ARC}.{(value or uuid.uuid4()).int}"


def list_identifiers(
    resource: dict[str, Any],
    what: str,
    profile: str,
    *,
    earlier_form: bool,
    where: str = "List.identifier",
) -> tuple[str, str | None]:
    """(uniqueId, entryUUID) of a List (IHE MHD 4.2.3: ``identifier`` sliced on ``use``): the
    uniqueId is the ``usual`` identifier, an OID (``urn:oid:…``); the entryUUID the
    ``official`` one whose value is ``urn:uuid:…`` (optional: carnet assigns one).

    ``earlier_form``: a submission set with no ``usual`` identifier is read as carnet read it
    before it followed MHD 4.2.3: its ``official`` identifier (or one without ``use``) is the
    uniqueId, whatever its form, and also the entryUUID when it is a ``urn:uuid:``."""
    idents = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    usual = [i for i in idents if i.get("use") == "usual"]
    entry_uuids = [
        str(i["value"])
        for i in idents
        if i.get("use") == "official" and str(i["value"]).startswith(ENTRY_UUID_PREFIX)
    ]
    for value in entry_uuids:
        if not is_entry_uuid(value):
            raise UnprocessableEntity(
                f"the {what}'s entryUUID (List.identifier with use 'official') {value!r} is "
                "not urn:uuid:<UUID> (RFC 4122)",
                expression=where,
            )
    if len(usual) > 1 or len(entry_uuids) > 1:
        raise UnprocessableEntity(
            f"the {what} has more than one uniqueId (use 'usual') or entryUUID (use "
            f"'official'): {profile} allows one of each",
            expression=where,
        )
    entry_uuid = entry_uuids[0] if entry_uuids else None
    if usual:
        unique_id = str(usual[0]["value"])
        if not _OID.match(unique_id) or len(unique_id) > len("urn:oid:") + OID_MAX:
            raise UnprocessableEntity(
                f"the {what}'s uniqueId (List.identifier with use 'usual') {unique_id!r} is not "
                f"urn:oid:<OID> (an OID of at most {OID_MAX} characters; {profile})",
                expression=where,
            )
        return unique_id, entry_uuid
    if earlier_form:
        first = next((i for i in idents if i.get("use") == "official"), None) or next(
            (i for i in idents if i.get("use") is None), None
        )
        if first is not None:
            unique_id = str(first["value"])
            if len(unique_id) > 256:
                raise UnprocessableEntity(
                    f"the {what}'s identifier is longer than 256 characters",
                    expression=where,
                )
            return unique_id, unique_id if is_entry_uuid(unique_id) else None
    raise UnprocessableEntity(
        f"the {what} has no uniqueId: List.identifier with use 'usual', system "
        f"'{RFC3986}' and value 'urn:oid:<OID>' is required ({profile}); the entryUUID, "
        "with use 'official' and value 'urn:uuid:<UUID>', may come with it",
        expression=where,
    )


FHIR_DOCUMENT_TYPE = "application/fhir+json"


def is_fhir_document(content_type: str | None) -> bool:
    """Content of this media type is a FHIR document (a Bundle of type document)."""
    return (content_type or "").split(";")[0].strip().lower() == FHIR_DOCUMENT_TYPE


def fhir_document(data: bytes) -> dict[str, Any] | None:
    """The Bundle of type document ``data`` holds, None when it holds none."""
    try:
        bundle = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(bundle, dict)
        and bundle.get("resourceType") == "Bundle"
        and bundle.get("type") == "document"
    ):
        return bundle
    return None


def check_fhir_document(content: ContentSource, content_type: object, where: str) -> None:
    """Inline content said to be ``application/fhir+json`` is a FHIR document (a Bundle of type
    document: PDSm for DMP TD3.2 case 3), which is what ``GET Bundle/{id}`` serves."""
    if not isinstance(content, InlineContent):
        return
    declared = content.content_type or (content_type if isinstance(content_type, str) else None)
    if is_fhir_document(declared) and fhir_document(content.data) is None:
        raise UnprocessableEntity(
            f"{where}: content of type {FHIR_DOCUMENT_TYPE} must be a FHIR document (a Bundle "
            "of type document)",
            expression=where,
        )


def submission_set_from_list(
    resource: dict[str, Any], key: str, actor_id: str
) -> SubmissionSetInput:
    """Submission set metadata (uniqueId, entryUUID, sourceId, submissionTime, author) from a
    List (IHE MHD 4.2.3 SubmissionSet Comprehensive)."""
    code = code_of(resource.get("code"))
    if code != "submissionset":
        raise UnprocessableEntity(
            "List.code must be submissionset (https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes)",
            expression="List.code",
        )
    unique_id, entry_uuid = list_identifiers(
        resource, "submission set", SUBMISSION_SET_PROFILE, earlier_form=True
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
        entry_uuid=entry_uuid,
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


def is_folder(resource: dict[str, Any]) -> bool:
    return code_of(resource.get("code")) == "folder"


def folder_from_list(
    resource: dict[str, Any], key: str, where: str, documents: dict[str, str]
) -> FolderInput:
    """A Folder (IHE MHD 4.2.3 Folder Comprehensive) of an ITI-65 bundle: its entries name
    DocumentReferences of the bundle (their fullUrl, a key of ``documents``) or documents
    already stored (``DocumentReference/<id>``)."""
    unique_id, entry_uuid = list_identifiers(
        resource, "folder", FOLDER_PROFILE, earlier_form=False, where=f"{where}.identifier"
    )
    new: list[str] = []
    stored: list[str] = []
    for n, item in enumerate(resource.get("entry") or []):
        ref = (item.get("item") or {}).get("reference") if isinstance(item, dict) else None
        at = f"{where}.entry[{n}].item"
        if isinstance(ref, str) and ref in documents:
            new.append(ref)
        elif isinstance(ref, str) and "DocumentReference/" in ref:
            stored.append(ref.rsplit("DocumentReference/", 1)[1].split("/", 1)[0])
        else:
            raise UnprocessableEntity(
                f"{at}: a folder's entry names a DocumentReference of the bundle (its fullUrl) "
                f"or a stored one (DocumentReference/<id>), not {ref!r}",
                expression=at,
            )
    if not new and not stored:
        raise UnprocessableEntity(
            f"{where}: a folder files at least one document (List.entry)",
            expression=f"{where}.entry",
        )
    return FolderInput(
        key=key,
        unique_id=unique_id,
        new_documents=new,
        stored_documents=stored,
        entry_uuid=entry_uuid,
        source=Representation("application/fhir+json", orjson.dumps(resource)),
    )


def implicit_submission_set(
    actor: Actor, docref: dict[str, Any] | None = None
) -> SubmissionSetInput:
    """ITI-105 Simplified Publish: the recipient makes the submission set from the
    DocumentReference (ITI-105 §2:3.105.4.1.3; PCC TF-2 4.1): a ``usual`` uniqueId and an
    ``official`` entryUUID it makes, the sourceId (an OID) of the structure the actor acts for,
    the actor as its author (``source``), and the document's class as its designationType."""
    unique = uuid_oid()
    entry_uuid = new_entry_uuid()
    source_id = source_id_of(actor)
    now = utcnow()
    resource: dict[str, Any] = {
        "resourceType": "List",
        "meta": {"profile": [MHD_SUBMISSION_SET]},
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": X.MHD_LIST_TYPES, "code": "submissionset"}]},
        "identifier": [
            {"use": "usual", "system": RFC3986, "value": unique},
            {"use": "official", "system": RFC3986, "value": entry_uuid},
        ],
        "date": now.isoformat() + "Z",
        "extension": [
            {"url": X.MHD_SOURCE_ID, "valueIdentifier": {"system": RFC3986, "value": source_id}}
        ],
    }
    category = (docref or {}).get("category")
    designation = category[0] if isinstance(category, list) and category else None
    if isinstance(designation, dict) and code_of(designation):
        resource["extension"].append(
            {"url": X.MHD_DESIGNATION_TYPE, "valueCodeableConcept": designation}
        )
    author = _author_resource(actor)
    if author is not None:
        resource["contained"] = [author]
        resource["source"] = {"reference": f"#{author['id']}"}
    return SubmissionSetInput(
        unique_id=unique,
        source_id=source_id,
        submission_time=now,
        author_id=actor.id,
        key="implicit",
        source=Representation("application/fhir+json", orjson.dumps(resource)),
        entry_uuid=entry_uuid,
        author=next(iter(people_of(resource.get("source"), contained_map(resource))), None),
        designation_type=_designation_type(resource),
    )


MHD_SUBMISSION_SET = (
    "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet"
)
_SOURCE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://carnet.health/fhir/sourceId")
"""The namespace of the name-based UUIDs (RFC 4122 §4.3) of carnet's sourceIds."""


def source_id_of(actor: Actor) -> str:
    """The sourceId of a submission set carnet makes for ``actor`` (ITI-105): an OID, as MHD
    requires. The structure the actor acts for when it is named by an OID; otherwise an OID made,
    always the same, from the structure's identifier (or the actor's, without a structure) under
    the UUID arc 2.25 (a name-based UUID, RFC 4122 §4.3)."""
    name = actor.structure or actor.id
    if _OID.match(f"urn:oid:{name}"):
        return f"urn:oid:{name}"
    return uuid_oid(uuid.uuid5(_SOURCE_NAMESPACE, name))


def _author_resource(actor: Actor) -> dict[str, Any] | None:
    """The submission set's author (List.source, contained as MHD Comprehensive asks)."""
    if actor.kind is ActorKind.PROFESSIONAL and actor.rpps:
        return {
            "resourceType": "Practitioner",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{RPPS_OID}", "value": actor.rpps}],
        }
    if actor.kind is ActorKind.PATIENT and actor.ins:
        return {
            "resourceType": "Patient",
            "id": "author",
            "identifier": [{"system": f"urn:oid:{actor.ins_oid or OID_NIR}", "value": actor.ins}],
        }
    return None
