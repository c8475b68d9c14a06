"""Complete a document entry from its CDA header (dmp.md §6: "For a CDA document, read them
from its header"; IHE XDS-SD / CI-SIS header → XDS metadata).

What the submitter sent wins; the header fills only what is missing, and the resource stored is
completed the same way so that what is served says what is searched. A header for another
patient than the submission's is refused.
"""

from __future__ import annotations

from typing import Any

from carnet.cda.header import FORMAT_SYSTEM_IHE, CdaError, CdaHeader, parse_header
from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import to_utc_naive
from carnet.domain.documents import DocumentEntry
from carnet.errors import UnprocessableEntity

XML_TYPES = ("application/xml", "text/xml", "application/hl7-v3+xml", "application/cda+xml")


def looks_like_cda(data: bytes, content_type: str | None) -> bool:
    head = data[:4096].lstrip()
    if content_type and content_type.split(";")[0].strip().lower() in XML_TYPES:
        return b"ClinicalDocument" in head or head.startswith(b"<?xml")
    return head.startswith(b"<?xml") and b"ClinicalDocument" in head


def _ensure(resource: dict[str, Any], key: str, default: Any) -> Any:
    if not isinstance(resource.get(key), type(default)):
        resource[key] = default
    return resource[key]


def _attachment(resource: dict[str, Any]) -> dict[str, Any]:
    contents = _ensure(resource, "content", [])
    if not contents:
        contents.append({})
    first: dict[str, Any] = contents[0]
    return _ensure(first, "attachment", {})  # type: ignore[no-any-return]


def complete_from_cda(
    entry: DocumentEntry, resource: dict[str, Any], data: bytes, content_type: str | None
) -> list[str]:
    """Fill the missing metadata of ``entry`` (and ``resource``) from the CDA in ``data``.
    Returns the names of the fields filled."""
    if not looks_like_cda(data, content_type or entry.content_type):
        return []
    try:
        header = parse_header(data)
    except CdaError as exc:
        missing = entry.missing()
        if missing:
            raise UnprocessableEntity(
                "missing required document metadata (dmp.md §6): "
                + ", ".join(missing)
                + f"; the CDA header could not supply them: {exc.message}",
                expression="DocumentReference." + missing[0].split(" ")[0],
            ) from None
        return []  # the submitter gave every metadata; an unreadable header is theirs to keep
    _check_patient(entry, header)
    filled: list[str] = []
    att = _attachment(resource)
    ctx = _ensure(resource, "context", {})

    if not entry.type_code and header.type_code:
        entry.type_code, entry.type_system = header.type_code, header.type_system
        coding = {"system": header.type_system, "code": header.type_code}
        if header.type_display:
            coding["display"] = header.type_display
        resource["type"] = {"coding": [coding]}
        filled.append("type")
    if not entry.title and header.title:
        entry.title = att["title"] = header.title
        filled.append("title")
    if not entry.creation_time and header.effective_time:
        entry.creation_time = to_utc_naive(header.effective_time)
        att["creation"] = header.effective_time.isoformat()
        filled.append("creationTime")
    if not entry.language and header.language_code:
        entry.language = att["language"] = header.language_code
        filled.append("languageCode")
    if not entry.content_type:
        entry.content_type = att["contentType"] = "application/xml"
        filled.append("mimeType")
    if not entry.confidentiality and header.confidentiality_code:
        entry.confidentiality = [header.confidentiality_code]
        resource["securityLabel"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": header.confidentiality_code,
                    }
                ]
            }
        ]
        filled.append("confidentialityCode")
    if not entry.format_code and header.format_code:
        entry.format_code = header.format_code
        resource["content"][0]["format"] = {
            "system": header.format_code_system or FORMAT_SYSTEM_IHE,
            "code": header.format_code,
        }
        filled.append("formatCode")
    if not entry.service_start and header.service_start:
        entry.service_start = to_utc_naive(header.service_start)
        period: dict[str, str] = {"start": header.service_start.isoformat()}
        if header.service_end:
            entry.service_stop = to_utc_naive(header.service_end)
            period["end"] = header.service_end.isoformat()
        ctx["period"] = period
        filled.append("serviceStartTime")
    if not entry.facility_code and header.facility_type_code:
        entry.facility_code = header.facility_type_code
        ctx["facilityType"] = {
            "coding": [{"system": header.facility_type_system, "code": header.facility_type_code}]
        }
        filled.append("healthcareFacilityTypeCode")
    if not entry.setting_code and header.practice_setting_code:
        entry.setting_code = header.practice_setting_code
        ctx["practiceSetting"] = {
            "coding": [
                {"system": header.practice_setting_system, "code": header.practice_setting_code}
            ]
        }
        filled.append("practiceSettingCode")
    if not entry.author_ids and not entry.author_has_role and header.author_id:
        system = (
            RPPS_SYSTEM
            if header.author_id_root == "1.2.250.1.71.4.2.1"
            else f"urn:oid:{header.author_id_root}"
        )
        entry.author_ids = [(system, header.author_id)]
        contained = _ensure(resource, "contained", [])
        practitioner: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": "cda-author",
            "identifier": [{"system": system, "value": header.author_id}],
        }
        if header.author_family:
            practitioner["name"] = [
                {
                    "family": header.author_family,
                    "given": [header.author_given] if header.author_given else [],
                }
            ]
        contained.append(practitioner)
        resource["author"] = [{"reference": "#cda-author"}]
        filled.append("author")
    if not entry.source_patient_id and header.patient_ids:
        root, ext = header.patient_ids[0]
        entry.source_patient_id = f"urn:oid:{root}|{ext}"
        contained = _ensure(resource, "contained", [])
        contained.append(
            {
                "resourceType": "Patient",
                "id": "cda-source-patient",
                "identifier": [{"system": f"urn:oid:{root}", "value": ext}],
            }
        )
        ctx["sourcePatientInfo"] = {"reference": "#cda-source-patient"}
        filled.append("sourcePatientId")
    if not entry.unique_id and header.unique_id:
        entry.unique_id = header.unique_id
        resource["masterIdentifier"] = {"value": header.unique_id}
        filled.append("uniqueId")
    return filled


def _check_patient(entry: DocumentEntry, header: CdaHeader) -> None:
    if (
        entry.patient_value
        and header.patient_ins
        and (header.patient_ins.upper() != entry.patient_value.upper())
        and entry.patient_system
    ):
        raise UnprocessableEntity(
            f"the CDA header is for INS {header.patient_ins}, the submission for "
            f"{entry.patient_value}: a document is filed only in its own patient's record",
            expression="DocumentReference.subject",
        )
