"""Content and representations, as the core carries them without reading them.

- :class:`Representation`: an interface's own form of something (the client's FHIR
  DocumentReference, an HL7 v2 message's OBX, an XDS ExtrinsicObject), kept sealed beside the
  domain data so that the interface can serve back what it was sent. The core never parses it.
- :class:`InlineContent` / :class:`UploadedContent`: where a new document's bytes come from.
- :class:`ContentInfo`: what is known of stored content without reading it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Representation:
    media_type: str  # e.g. application/fhir+json
    data: bytes


@dataclass(frozen=True, slots=True)
class InlineContent:
    """The document's bytes, carried with its metadata."""

    data: bytes
    content_type: str | None = None  # as the carrier declared it (a FHIR Binary's contentType)


@dataclass(frozen=True, slots=True)
class UploadedContent:
    """Content uploaded before its metadata (a raw Binary), named by its id."""

    binary_id: str


ContentSource = InlineContent | UploadedContent


@dataclass(frozen=True, slots=True)
class ContentInfo:
    binary_id: str
    size: int
    sha256: str  # hex
    sha1: bytes  # FHIR R4 Attachment.hash
    content_type: str

    @property
    def etag(self) -> str:
        return self.sha256
