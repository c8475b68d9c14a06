"""What a submission of documents carries, whatever interface brought it (ITI-65, ITI-105,
HL7 v2, XDS.b ITI-41)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carnet.domain.documents import DocumentEntry


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """The patient a submission is for: a resource id, or an INS (system, value)."""

    record_id: str | None = None
    ins_system: str | None = None
    ins_value: str | None = None


@dataclass(slots=True)
class NewDocument:
    key: str  # how the client names it (fullUrl) for the response
    resource: dict[str, Any]
    entry: DocumentEntry
    data: bytes | None = None  # inline content (base64-decoded)
    data_content_type: str | None = None
    binary_id: str | None = None  # content uploaded before as a Binary
    binary_key: str | None = None  # fullUrl of the Binary entry in the bundle


@dataclass(slots=True)
class SubmissionSet:
    key: str
    resource: dict[str, Any]
    unique_id: str
    source_id: str
    submission_time: datetime
    author_id: str | None


@dataclass(slots=True)
class Submission:
    subject: SubjectRef
    documents: list[NewDocument]
    submission_set: SubmissionSet | None = None
    superseded_by_patch: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PublishedDocument:
    key: str
    doc_id: str
    version_id: int
    created: bool
    last_updated: datetime
    binary_id: str
    binary_key: str | None = None


@dataclass(slots=True)
class PublishResult:
    record_id: str
    set_id: str | None
    set_key: str | None
    documents: list[PublishedDocument]
    replaced: list[tuple[str, int]]  # (doc id, new version) of superseded documents
