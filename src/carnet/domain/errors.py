"""Errors of the core, in the core's own terms.

An error names what went wrong (its class), why (a :class:`Reason` code) and where (a domain
``field`` such as ``document.type_code`` or ``documents[1].size``): never an HTTP status, a
FHIRPath, an HL7 segment or a page. Each interface maps them into its own language
(``carnet/fhir/errors.py``: an OperationOutcome with a FHIRPath expression; later HL7 v2 ERR
segments, XDS RegistryErrors, a translated message on a page).

The message is for a person reading a log or a diagnostic; it never says more about the data
than the caller may know (a refused read is a :class:`NotFound`, exactly as a missing one).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why the core refused an input or an operation."""

    MISSING = "missing"  # a required value is absent
    MALFORMED = "malformed"  # a value does not parse
    UNKNOWN_CODE = "unknown-code"  # a code outside its value set
    MISMATCH = "mismatch"  # contradicts another value (hash, size, patient, media type)
    NOT_QUALIFIED = "not-qualified"  # the INS is not qualified (dmp.md §2)
    NOT_ALLOWED = "not-allowed"  # the rules refuse it (a visible refusal)
    NOT_FOUND = "not-found"  # no such thing, or no access to it
    DELETED = "deleted"  # it existed and was deleted
    DUPLICATE = "duplicate"  # an identifier already used for something else
    EXISTS = "exists"  # the thing to create exists already
    OBJECTED = "objected"  # the person objected to the creation of their record
    STATE = "state"  # not possible in the current state (closed record, superseded document)
    VERSION = "version"  # the version given is not the current one
    TOO_LARGE = "too-large"
    LIMIT = "limit"  # too many values at once
    BUSY = "busy"  # the store is busy or unreachable: try again
    CONFIGURATION = "configuration"


class CoreError(Exception):
    """Base class of the core's errors."""

    reason: Reason = Reason.MALFORMED

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: Reason | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field if field is not None else (fields[0] if fields else None)
        self.fields = fields or ((field,) if field else ())
        if reason is not None:
            self.reason = reason

    def at(self, prefix: str) -> CoreError:
        """The same error with its fields placed under ``prefix`` (``documents[2]``)."""
        self.fields = tuple(f"{prefix}.{f}" for f in self.fields)
        self.field = self.fields[0] if self.fields else prefix
        return self


class Invalid(CoreError):
    """The input is malformed (it does not parse, a value has the wrong shape)."""


class Rejected(CoreError):
    """The input parses but breaks a rule of the record (missing metadata, wrong INS key,
    content that contradicts its metadata)."""


class NotFound(CoreError):
    """No such thing, or the caller may not know it exists: both answer the same."""

    reason = Reason.NOT_FOUND


class Refused(CoreError):
    """The rules refuse an operation on something the caller may know exists."""

    reason = Reason.NOT_ALLOWED


class Gone(CoreError):
    """It existed and was deleted (told only to whoever could read it before)."""

    reason = Reason.DELETED


class Conflict(CoreError):
    """The operation conflicts with what is stored (duplicate identifier, existing record)."""

    reason = Reason.DUPLICATE


class Stale(CoreError):
    """The version the caller based its change on is no longer the current one."""

    reason = Reason.VERSION


class TooLarge(CoreError):
    reason = Reason.TOO_LARGE


class Busy(CoreError):
    """The store could not do it now (locked, restarting): the caller may try again."""

    reason = Reason.BUSY


class NotAuthenticated(CoreError):
    """No verified identity: no token, or one that does not verify (the message says why)."""

    reason = Reason.NOT_ALLOWED


class ConfigurationError(CoreError):
    """The operator's configuration is wrong (told at start, never to a client)."""

    reason = Reason.CONFIGURATION
