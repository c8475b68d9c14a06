"""Documents and their metadata (dmp.md §4 and §6), whatever interface brought them.

- :class:`DocumentEntry`: the XDS metadata of dmp.md §6 (FHIR ITI-65, HL7 v2, XDS.b all map to
  it). Validation of the required metadata happens here, once, with errors naming each missing
  field in the core's terms.
- :class:`NewDocument` / :class:`Submission`: what a publish carries.
- :class:`StoredDocument`: a stored document as the core hands it to an interface: its state
  (status, labels, versions), its entry and the interface's representation of it, if any.
- :class:`DocumentChange`: a metadata change (TD3.3): status, archive, visibility labels.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.content import ContentSource, Representation
from carnet.domain.errors import Reason, Rejected
from carnet.domain.records import PatientRef, Record

VISIBILITY_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
MASKED = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTATIVES = "INVISIBLE_REPRESENTANTS_LEGAUX"
VISIBILITY_CODES = frozenset({MASKED, INVISIBLE_PATIENT, INVISIBLE_REPRESENTATIVES})
CONFIDENTIALITY_CODES = frozenset({"N", "R", "V", "L", "M", "U"}) | VISIBILITY_CODES
CLASS_CODES = frozenset({"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"})
PATIENT_CLASS = "90"  # document déposé par le patient


ENTRY_UUID_PREFIX = "urn:uuid:"


def is_entry_uuid(value: str) -> bool:
    """An entryUUID as XDS writes it (ITI TF-3 4.2.3.1.7; IHE MHD EntryUUIDIdentifier):
    ``urn:uuid:`` and an RFC 4122 UUID."""
    if not value.startswith(ENTRY_UUID_PREFIX):
        return False
    text = value[len(ENTRY_UUID_PREFIX) :]
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def new_entry_uuid() -> str:
    """An entryUUID as a document registry assigns one: ``urn:uuid:`` and a random UUID."""
    return f"{ENTRY_UUID_PREFIX}{uuid.uuid4()}"


class DocumentStatus(StrEnum):
    """XDS availability status (JDV_J52), stored under the names IHE MHD gives them."""

    CURRENT = "current"  # approved
    SUPERSEDED = "superseded"  # deprecated: replaced by a new version
    DELETED = "entered-in-error"  # deleted (logically)


@dataclass(frozen=True, slots=True)
class Author:
    """An author person of a document (dmp.md §6: person, role, speciality, institution)."""

    system: str  # identifier system (urn:oid:1.2.250.1.71.4.2.1 for RPPS)
    value: str
    family: str | None = None
    given: str | None = None


@dataclass(slots=True)
class DocumentEntry:
    """The metadata of one document entry (XDS names in comments)."""

    unique_id: str | None = None  # uniqueId
    entry_uuid: str | None = None  # entryUUID (urn:uuid:…); the core assigns one when absent
    class_code: str | None = None  # classCode (JDV_J57)
    type_system: str | None = None
    type_code: str | None = None  # typeCode (LOINC mostly)
    type_display: str | None = None
    confidentiality: list[str] = field(default_factory=list)  # confidentialityCode (JDV_J58)
    creation_time: datetime | None = None  # creationTime
    format_system: str | None = None
    format_code: str | None = None  # formatCode
    content_type: str | None = None  # mimeType
    language: str | None = None  # languageCode
    facility_system: str | None = None
    facility_code: str | None = None  # healthcareFacilityTypeCode
    setting_system: str | None = None
    setting_code: str | None = None  # practiceSettingCode
    service_start: datetime | None = None  # serviceStartTime
    service_stop: datetime | None = None  # serviceStopTime
    title: str | None = None  # title
    patient_system: str | None = None  # patientId (INS): system
    patient_value: str | None = None  # patientId (INS), or the record id it was sent to
    source_patient_id: str | None = None  # sourcePatientId (system|value)
    authors: list[Author] = field(default_factory=list)  # author persons
    author_has_role: bool = False  # an author given by role or institution only
    legal_authenticator: str | None = None
    hash_sha1: bytes | None = None  # hash (FHIR R4: SHA-1)
    size: int | None = None  # size
    date: datetime | None = None  # when the document was written (sorts searches)
    replaces: str | None = None  # RPLC target (document id)
    events: list[tuple[str, str]] = field(default_factory=list)  # eventCodeList (system, code)
    # referenceIdList: (reference, system, value), a reference or an identifier
    related: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)

    @property
    def author_ids(self) -> list[tuple[str, str]]:
        return [(a.system, a.value) for a in self.authors]

    def missing(self) -> list[str]:
        """The required metadata (dmp.md §6) that are absent, by their field names."""
        checks: list[tuple[str, object]] = [
            ("unique_id", self.unique_id),
            ("class_code", self.class_code),
            ("type_code", self.type_code),
            ("confidentiality", self.confidentiality),
            ("creation_time", self.creation_time),
            ("format_code", self.format_code),
            ("content_type", self.content_type),
            ("language", self.language),
            ("facility_code", self.facility_code),
            ("setting_code", self.setting_code),
            ("service_start", self.service_start),
            ("title", self.title),
            ("patient", self.patient_value),
            ("source_patient_id", self.source_patient_id),
            ("author", self.authors or self.author_has_role),
        ]
        return [name for name, value in checks if not value]

    def validate(self) -> None:
        missing = self.missing()
        if missing:
            raise Rejected(
                "missing required document metadata (dmp.md §6): " + ", ".join(missing),
                fields=tuple(f"document.{name}" for name in missing),
                reason=Reason.MISSING,
            )
        if self.class_code not in CLASS_CODES:
            raise Rejected(
                f"class code {self.class_code!r} is not in JDV_J57 "
                f"({', '.join(sorted(CLASS_CODES))})",
                field="document.class_code",
                reason=Reason.UNKNOWN_CODE,
            )
        unknown = [c for c in self.confidentiality if c not in CONFIDENTIALITY_CODES]
        if unknown:
            raise Rejected(
                f"confidentiality codes {', '.join(unknown)} are not in JDV_J58",
                field="document.confidentiality",
                reason=Reason.UNKNOWN_CODE,
            )
        if self.entry_uuid is not None and not is_entry_uuid(self.entry_uuid):
            raise Rejected(
                f"the entryUUID {self.entry_uuid!r} is not urn:uuid:<UUID> (RFC 4122)",
                field="document.entry_uuid",
                reason=Reason.MALFORMED,
            )
        if self.service_stop and self.service_start and self.service_stop < self.service_start:
            raise Rejected(
                "the service stop time is before its start time",
                field="document.service_stop",
                reason=Reason.MISMATCH,
            )

    def author_rpps(self) -> str | None:
        for a in self.authors:
            if a.system == RPPS_SYSTEM:
                return a.value
        return None


def check_labels(labels: list[str] | frozenset[str], field_name: str) -> None:
    unknown = sorted(c for c in labels if c not in CONFIDENTIALITY_CODES)
    if unknown:
        raise Rejected(
            f"unknown confidentiality codes {', '.join(unknown)}",
            field=field_name,
            reason=Reason.UNKNOWN_CODE,
        )


# -- publishing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDocument:
    key: str  # how the interface names it, to find it in the result
    entry: DocumentEntry
    content: ContentSource
    source: Representation | None = None


@dataclass(frozen=True, slots=True)
class SubmissionSetInput:
    unique_id: str  # uniqueId (an OID, ``urn:oid:…``; see fhir/submission.py for older forms)
    source_id: str
    submission_time: datetime
    author_id: str | None = None
    key: str = "submission-set"
    source: Representation | None = None
    entry_uuid: str | None = None  # entryUUID (``urn:uuid:…``); the core assigns one when absent
    author: Author | None = None  # the author person (its identifier and names)
    author_org: tuple[str, str] | None = None  # authorInstitution: (system, value)
    designation_type: tuple[str, str] | None = None  # contentTypeCode: (system, code)
    title: str | None = None  # title (sealed: it may be clinical)


@dataclass(frozen=True, slots=True)
class FolderInput:
    """A folder (XDS Folder; IHE MHD Folder) made by a submission: the documents it files are
    named by their key in the submission (new documents) or by their id (stored documents of
    the same record)."""

    key: str
    unique_id: str  # uniqueId (``urn:oid:…``)
    new_documents: list[str]  # keys of documents of the submission
    stored_documents: list[str]  # ids of documents already stored in the record
    entry_uuid: str | None = None  # entryUUID; the core assigns one when absent
    source: Representation | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    patient: PatientRef
    documents: list[NewDocument]
    submission_set: SubmissionSetInput | None = None
    folders: list[FolderInput] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PublishedDocument:
    key: str
    doc_id: str
    version_id: int
    created: bool  # False: the same document (uniqueId and content) was stored before
    last_updated: datetime
    binary_id: str


@dataclass(frozen=True, slots=True)
class Published:
    record_id: str
    set_id: str | None
    documents: list[PublishedDocument]
    replaced: list[tuple[str, int]]  # (document id, its new version) of superseded documents
    # (key, folder id, whether it was created: False when documents were added to it)
    folders: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return any(d.created for d in self.documents)


# -- stored ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentState:
    """What changes from one version of a stored document to the next."""

    version_id: int
    status: DocumentStatus
    labels: frozenset[str]
    archived: bool
    last_updated: datetime


@dataclass(frozen=True, slots=True)
class StoredDocument:
    record_id: str
    doc_id: str
    state: DocumentState
    unique_id: str
    binary_id: str
    sha256: str
    size: int
    content_type: str
    date: datetime | None
    created_at: datetime
    type_code: str | None
    class_code: str | None
    author_id: str | None  # who the rules treat as its author
    submission_set_id: str | None
    replaces_id: str | None
    source: Representation | None
    completed: bool = False  # the core completed the entry beyond the source (a CDA header)
    entry_uuid: str | None = None  # None: stored before entryUUIDs were kept (migration 0009)
    # the entry is read from the store only when asked for (``entry``): most reads need none
    entry_loader: Callable[[], DocumentEntry | None] = field(
        default=lambda: None, repr=False, compare=False
    )

    @property
    def entry(self) -> DocumentEntry | None:
        """The document's entry (dmp.md §6); None for documents stored before entries were
        kept. Decoded on each call: keep it if you need it twice."""
        return self.entry_loader()

    @property
    def version_id(self) -> int:
        return self.state.version_id

    @property
    def status(self) -> DocumentStatus:
        return self.state.status

    @property
    def labels(self) -> frozenset[str]:
        return self.state.labels

    @property
    def archived(self) -> bool:
        return self.state.archived

    @property
    def last_updated(self) -> datetime:
        return self.state.last_updated

    @property
    def title(self) -> str | None:
        entry = self.entry
        return entry.title if entry else None


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """A metadata change of a stored document (TD3.3); None: unchanged. The author changes the
    status, the archive flag and the INVISIBLE_* labels; the patient masks and unmasks."""

    status: DocumentStatus | None = None
    archived: bool | None = None
    labels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class DocumentPage:
    items: list[StoredDocument]
    total: int | None  # None: not asked for
    next_cursor: tuple[datetime, str] | None
    included: list[Record]  # the records of the page, when asked for


@dataclass(frozen=True, slots=True)
class StoredSubmissionSet:
    record_id: str
    set_id: str
    unique_id: str
    source_id: str
    submission_time: datetime
    author_id: str | None
    created_at: datetime
    documents: list[str]  # the ids of its documents the caller may read
    source: Representation | None
    entry_uuid: str | None = None  # None: stored before entryUUIDs were kept (migration 0009)

    @property
    def list_id(self) -> str:
        return self.set_id

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return (self.submission_time, self.set_id)


@dataclass(frozen=True, slots=True)
class StoredFolder:
    """A folder, shown with the documents the caller may read (never when it has none)."""

    record_id: str
    folder_id: str
    unique_id: str
    entry_uuid: str
    created_at: datetime
    last_updated: datetime  # lastUpdateTime
    documents: list[str]
    source: Representation | None

    @property
    def list_id(self) -> str:
        return self.folder_id

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return (self.last_updated, self.folder_id)


StoredList = StoredSubmissionSet | StoredFolder
"""What ITI-66 finds: submission sets and folders."""
