"""OperationOutcome: every FHIR error is one (FHIR R4 §3.1.0 "RESTful API", OperationOutcome).

http://hl7.org/fhir/R4/operationoutcome.html
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from carnet.fhir.errors import FhirError

FHIR_JSON = "application/fhir+json; charset=utf-8"


def operation_outcome(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(
    status: int,
    code: str,
    diagnostics: str,
    expression: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = operation_outcome("error", code, diagnostics, expression)
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def error_response(exc: FhirError) -> Response:
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="carnet"'}
    elif exc.status == 503:
        headers = {"Retry-After": "1"}
    return outcome_response(exc.status, exc.code, exc.message, exc.expression, headers)
