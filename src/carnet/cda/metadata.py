"""Complete a document entry from its CDA header (dmp.md §6: "For a CDA document, read them
from its header"; IHE XDS-SD / CI-SIS header → XDS metadata).

Shared by every interface: it works on the core's :class:`~carnet.domain.documents.DocumentEntry`
only. What the submitter sent wins; the header fills only what is missing (each interface shows
the entry as completed). A header for another patient than the submission's is refused.
"""

from __future__ import annotations

from carnet.cda.header import FORMAT_SYSTEM_IHE, RPPS_OID, CdaError, CdaHeader, parse_header
from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import to_utc_naive
from carnet.domain.documents import Author, DocumentEntry
from carnet.domain.errors import Reason, Rejected

XML_TYPES = ("application/xml", "text/xml", "application/hl7-v3+xml", "application/cda+xml")
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def looks_like_cda(data: bytes, content_type: str | None) -> bool:
    head = data[:4096].lstrip()
    if content_type and content_type.split(";")[0].strip().lower() in XML_TYPES:
        return b"ClinicalDocument" in head or head.startswith(b"<?xml")
    return head.startswith(b"<?xml") and b"ClinicalDocument" in head


def complete_from_cda(entry: DocumentEntry, data: bytes, content_type: str | None) -> list[str]:
    """Fill the missing metadata of ``entry`` from the CDA in ``data``; the names of the fields
    filled. An unreadable header is refused only if something it should supply is missing."""
    if not looks_like_cda(data, content_type or entry.content_type):
        return []
    try:
        header = parse_header(data)
    except CdaError as exc:
        missing = entry.missing()
        if missing:
            raise Rejected(
                "missing required document metadata (dmp.md §6): "
                + ", ".join(missing)
                + f"; the CDA header could not supply them: {exc.message}",
                fields=tuple(f"document.{m}" for m in missing),
                reason=Reason.MISSING,
            ) from None
        return []  # the submitter gave every metadata; an unreadable header is theirs to keep
    _check_patient(entry, header)
    return _fill(entry, header)


def _fill(entry: DocumentEntry, header: CdaHeader) -> list[str]:
    filled: list[str] = []

    def took(name: str) -> None:
        filled.append(name)

    if not entry.type_code and header.type_code:
        entry.type_code, entry.type_system = header.type_code, header.type_system
        entry.type_display = header.type_display
        took("type_code")
    if not entry.title and header.title:
        entry.title = header.title
        took("title")
    if not entry.creation_time and header.effective_time:
        entry.creation_time = to_utc_naive(header.effective_time)
        took("creation_time")
    if not entry.language and header.language_code:
        entry.language = header.language_code
        took("language")
    if not entry.content_type:
        entry.content_type = "application/xml"
        took("content_type")
    if not entry.confidentiality and header.confidentiality_code:
        entry.confidentiality = [header.confidentiality_code]
        took("confidentiality")
    if not entry.format_code and header.format_code:
        entry.format_code = header.format_code
        entry.format_system = header.format_code_system or FORMAT_SYSTEM_IHE
        took("format_code")
    if not entry.service_start and header.service_start:
        entry.service_start = to_utc_naive(header.service_start)
        if header.service_end:
            entry.service_stop = to_utc_naive(header.service_end)
        took("service_start")
    if not entry.facility_code and header.facility_type_code:
        entry.facility_code = header.facility_type_code
        entry.facility_system = header.facility_type_system
        took("facility_code")
    if not entry.setting_code and header.practice_setting_code:
        entry.setting_code = header.practice_setting_code
        entry.setting_system = header.practice_setting_system
        took("setting_code")
    if not entry.authors and not entry.author_has_role and header.author_id:
        system = (
            RPPS_SYSTEM if header.author_id_root == RPPS_OID else f"urn:oid:{header.author_id_root}"
        )
        entry.authors = [
            Author(system, header.author_id, header.author_family, header.author_given)
        ]
        took("author")
    if not entry.source_patient_id and header.patient_ids:
        root, ext = header.patient_ids[0]
        entry.source_patient_id = f"urn:oid:{root}|{ext}"
        took("source_patient_id")
    if not entry.unique_id and header.unique_id:
        entry.unique_id = header.unique_id
        took("unique_id")
    return filled


def _check_patient(entry: DocumentEntry, header: CdaHeader) -> None:
    if (
        entry.patient_value
        and header.patient_ins
        and (header.patient_ins.upper() != entry.patient_value.upper())
        and entry.patient_system
    ):
        raise Rejected(
            f"the CDA header is for INS {header.patient_ins}, the submission for "
            f"{entry.patient_value}: a document is filed only in its own patient's record",
            field="document.patient",
            reason=Reason.MISMATCH,
        )
