"""Domain errors. Interfaces translate them into their protocol (OperationOutcome, ACK, CLI)."""

from __future__ import annotations


class CarnetError(Exception):
    """Base class. ``status`` is the HTTP status the FHIR interface answers with."""

    status = 400
    code = "invalid"  # FHIR issue-type

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class ConfigurationError(CarnetError):
    status = 500
    code = "exception"


class InvalidInput(CarnetError):
    """The request is malformed (400)."""

    status = 400
    code = "invalid"


class UnprocessableEntity(CarnetError):
    """The request parses but breaks a business rule (422)."""

    status = 422
    code = "business-rule"


class NotAuthenticated(CarnetError):
    status = 401
    code = "login"


class Forbidden(CarnetError):
    status = 403
    code = "forbidden"


class NotFound(CarnetError):
    status = 404
    code = "not-found"


class Gone(CarnetError):
    status = 410
    code = "deleted"


class Conflict(CarnetError):
    status = 409
    code = "conflict"


class PreconditionFailed(CarnetError):
    status = 412
    code = "conflict"


class PayloadTooLarge(CarnetError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(CarnetError):
    status = 415
    code = "not-supported"


class MethodNotAllowed(CarnetError):
    status = 405
    code = "not-supported"
