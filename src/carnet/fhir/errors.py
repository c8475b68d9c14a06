"""Errors in FHIR's language: OperationOutcome with an HTTP status, an issue code and a
FHIRPath expression.

- :class:`FhirError` and its subclasses: what the FHIR interface itself refuses while parsing a
  request (a malformed body, an unknown search parameter…), already in FHIR terms;
- :func:`from_core`: the core's errors (carnet.domain.errors: a class, a reason, a domain field)
  mapped to a status, an issue code and a FHIRPath (:data:`FIELDS`). The FHIR interface decides
  these; the core knows nothing of them.
"""

from __future__ import annotations

from carnet.domain import errors as core


class FhirError(Exception):
    """A FHIR error: ``status`` is the HTTP status, ``code`` the OperationOutcome issue type."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class InvalidInput(FhirError):
    """The request is malformed (400)."""


class UnprocessableEntity(FhirError):
    """The request parses but breaks a rule of the profile (422)."""

    status = 422
    code = "business-rule"


class NotAuthenticated(FhirError):
    status = 401
    code = "login"


class Forbidden(FhirError):
    status = 403
    code = "forbidden"


class NotFound(FhirError):
    status = 404
    code = "not-found"


class Conflict(FhirError):
    status = 409
    code = "conflict"


class PreconditionFailed(FhirError):
    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    code = "not-supported"


class NotAcceptable(FhirError):
    """No representation the client accepts (Accept, ``_format``) can be served (RFC 9110
    §15.5.7): carnet answers FHIR JSON only."""

    status = 406
    code = "not-supported"


class MethodNotAllowed(FhirError):
    status = 405
    code = "not-supported"


class ServiceUnavailable(FhirError):
    status = 503
    code = "transient"


# the core's error classes: (status, issue code)
STATUS: dict[type[core.CoreError], tuple[int, str]] = {
    core.Invalid: (400, "invalid"),
    core.Rejected: (422, "business-rule"),
    core.NotFound: (404, "not-found"),
    core.Refused: (403, "forbidden"),
    core.Gone: (410, "deleted"),
    core.Conflict: (409, "conflict"),
    core.Stale: (412, "conflict"),
    core.TooLarge: (413, "too-costly"),
    core.Busy: (503, "transient"),
    core.ConfigurationError: (500, "exception"),
}

# a domain field → where it is in the FHIR resource that carried it
FIELDS: dict[str, str] = {
    "patient.ins": "Patient.identifier",
    "patient.identity_status": "Patient.extension:identityReliability",
    "patient.birth_place": "Patient.extension:birthPlace",
    "patient.email": "Patient.telecom",
    "patient.preferences.access_mode": "Patient.extension:notificationPreferences",
    "document.unique_id": "DocumentReference.masterIdentifier",
    "document.class_code": "DocumentReference.category",
    "document.type_code": "DocumentReference.type",
    "document.confidentiality": "DocumentReference.securityLabel",
    "document.creation_time": "DocumentReference.content.attachment.creation",
    "document.format_code": "DocumentReference.content.format",
    "document.content_type": "DocumentReference.content.attachment.contentType",
    "document.language": "DocumentReference.content.attachment.language",
    "document.facility_code": "DocumentReference.context.facilityType",
    "document.setting_code": "DocumentReference.context.practiceSetting",
    "document.service_start": "DocumentReference.context.period.start",
    "document.service_stop": "DocumentReference.context.period",
    "document.title": "DocumentReference.content.attachment.title",
    "document.patient": "DocumentReference.subject",
    "document.source_patient_id": "DocumentReference.context.sourcePatientInfo",
    "document.author": "DocumentReference.author",
    "document.size": "DocumentReference.content.attachment.size",
    "document.hash": "DocumentReference.content.attachment.hash",
    "document.replaces": "DocumentReference.relatesTo",
    "document.entry_uuid": "DocumentReference.identifier",
    "folder.unique_id": "List.identifier",
    "folder.entry": "List.entry",
    "content.content_type": "Binary.contentType",
    "content.binary": "DocumentReference.content.attachment.url",
    "content": "Binary",
    "submission.patient": "subject",
    "submission.unique_id": "List.identifier",
    "consent.purpose": "Consent.provision.purpose",
    "consent.status": "Consent.status",
    "representative.ins": "RelatedPerson.identifier",
    "representative.relationship": "RelatedPerson.relationship",
    "version": "If-Match",
}

# the names of metadata fields as FHIR clients know them, for messages
FHIR_NAMES: dict[str, str] = {
    "unique_id": "masterIdentifier (uniqueId)",
    "class_code": "category (classCode)",
    "type_code": "type (typeCode)",
    "confidentiality": "securityLabel (confidentialityCode)",
    "creation_time": "content.attachment.creation (creationTime)",
    "format_code": "content.format (formatCode)",
    "content_type": "content.attachment.contentType (mimeType)",
    "language": "content.attachment.language (languageCode)",
    "facility_code": "context.facilityType (healthcareFacilityTypeCode)",
    "setting_code": "context.practiceSetting (practiceSettingCode)",
    "service_start": "context.period.start (serviceStartTime)",
    "title": "content.attachment.title (title)",
    "patient": "subject (patientId)",
    "source_patient_id": "context.sourcePatientInfo (sourcePatientId)",
    "author": "author",
}


def fhir_path(field: str | None, prefixes: dict[str, str] | None = None) -> str | None:
    """The FHIRPath of a domain field; ``prefixes`` maps ``documents[i]`` to where that
    document is in the request (``Bundle.entry[3].resource``)."""
    if not field:
        return None
    head, dot, rest = field.partition(".")
    if prefixes and head in prefixes and dot:
        inner = fhir_path(rest) or rest
        return prefixes[head] + "." + inner.split(".", 1)[-1]
    if field in FIELDS:
        return FIELDS[field]
    return field


def from_core(exc: core.CoreError, prefixes: dict[str, str] | None = None) -> FhirError:
    """The core's error as a FHIR error (status, issue code, FHIRPath)."""
    status, code = next((v for cls, v in STATUS.items() if isinstance(exc, cls)), (400, "invalid"))
    message = exc.message
    if exc.reason is core.Reason.MISSING and exc.fields and message.startswith("missing required"):
        names = [FHIR_NAMES.get(f.rsplit(".", 1)[-1], f) for f in exc.fields]
        rest = message.split(";", 1)[1] if ";" in message else ""
        message = (
            "missing required document metadata (dmp.md §6): "
            + ", ".join(names)
            + (";" + rest if rest else "")
        )
    out = FhirError(message, expression=fhir_path(exc.field, prefixes))
    out.status = status
    out.code = code
    return out
