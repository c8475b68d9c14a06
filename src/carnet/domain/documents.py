"""Documents and their metadata (dmp.md §4 and §6).

A :class:`DocumentEntry` is what carnet knows of a document whatever interface brought it
(FHIR ITI-65, HL7 v2, XDS.b): the XDS metadata of dmp.md §6, the stored FHIR resource, the
content's address. Validation of the required metadata happens here, once, with errors naming
each missing field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from carnet.errors import UnprocessableEntity

VISIBILITY_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
VISIBILITY_CODES = frozenset({"MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"})
CONFIDENTIALITY_CODES = frozenset({"N", "R", "V", "L", "M", "U"}) | VISIBILITY_CODES
CLASS_CODES = frozenset({"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"})
STATUSES = ("current", "superseded", "entered-in-error")


@dataclass(slots=True)
class DocumentEntry:
    """The metadata of one document entry (XDS names in comments)."""

    unique_id: str | None = None  # uniqueId
    class_code: str | None = None  # classCode (JDV_J57)
    type_system: str | None = None
    type_code: str | None = None  # typeCode (LOINC mostly)
    confidentiality: list[str] = field(default_factory=list)  # confidentialityCode (JDV_J58)
    creation_time: datetime | None = None  # creationTime
    format_code: str | None = None  # formatCode
    content_type: str | None = None  # mimeType
    language: str | None = None  # languageCode
    facility_code: str | None = None  # healthcareFacilityTypeCode
    setting_code: str | None = None  # practiceSettingCode
    service_start: datetime | None = None  # serviceStartTime
    service_stop: datetime | None = None  # serviceStopTime
    title: str | None = None  # title
    patient_system: str | None = None  # patientId (INS)
    patient_value: str | None = None
    source_patient_id: str | None = None  # sourcePatientId
    author_ids: list[tuple[str, str]] = field(default_factory=list)  # author person ids
    author_has_role: bool = False
    legal_authenticator: str | None = None
    hash_sha1: bytes | None = None  # hash (FHIR R4: SHA-1)
    size: int | None = None  # size
    date: datetime | None = None  # DocumentReference.date
    replaces: str | None = None  # RPLC target (resource id)

    def missing(self, *, require_content_facts: bool = False) -> list[str]:
        """Names (FHIR paths) of the required metadata that are absent."""
        checks: list[tuple[str, object]] = [
            ("masterIdentifier (uniqueId)", self.unique_id),
            ("category (classCode)", self.class_code),
            ("type (typeCode)", self.type_code),
            ("securityLabel (confidentialityCode)", self.confidentiality),
            ("content.attachment.creation (creationTime)", self.creation_time),
            ("content.format (formatCode)", self.format_code),
            ("content.attachment.contentType (mimeType)", self.content_type),
            ("content.attachment.language (languageCode)", self.language),
            ("context.facilityType (healthcareFacilityTypeCode)", self.facility_code),
            ("context.practiceSetting (practiceSettingCode)", self.setting_code),
            ("context.period.start (serviceStartTime)", self.service_start),
            ("content.attachment.title (title)", self.title),
            ("subject (patientId)", self.patient_value),
            ("context.sourcePatientInfo (sourcePatientId)", self.source_patient_id),
            ("author", self.author_ids or self.author_has_role),
        ]
        if require_content_facts:
            checks += [("content.attachment.hash", self.hash_sha1), ("size", self.size)]
        return [name for name, value in checks if not value]

    def validate(self) -> None:
        missing = self.missing()
        if missing:
            raise UnprocessableEntity(
                "missing required document metadata (dmp.md §6): " + ", ".join(missing),
                expression="DocumentReference." + missing[0].split(" ")[0],
            )
        if self.class_code not in CLASS_CODES:
            raise UnprocessableEntity(
                f"classCode {self.class_code!r} is not in JDV_J57 "
                f"({', '.join(sorted(CLASS_CODES))})",
                expression="category",
            )
        unknown = [c for c in self.confidentiality if c not in CONFIDENTIALITY_CODES]
        if unknown:
            raise UnprocessableEntity(
                f"confidentiality codes {', '.join(unknown)} are not in JDV_J58",
                expression="securityLabel",
            )
        if self.service_stop and self.service_start and self.service_stop < self.service_start:
            raise UnprocessableEntity(
                "context.period.end is before context.period.start", expression="context.period"
            )
