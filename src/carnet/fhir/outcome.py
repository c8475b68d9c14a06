"""OperationOutcome: every FHIR error is one (FHIR R4 §3.1.0 "RESTful API", OperationOutcome).

http://hl7.org/fhir/R4/operationoutcome.html
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

from carnet.fhir.errors import FhirError

FHIR_JSON = "application/fhir+json; charset=utf-8"

_NOT_IN_STRING = re.compile(r"[^ \r\n\t\S]")


def fhir_string(text: str) -> str:
    """``text`` as a FHIR string may carry it (http://hl7.org/fhir/R4/datatypes.html#string,
    pattern ``[ \\r\\n\\t\\S]+``): any other whitespace or control character a client
    sent (a search parameter's name echoed back) is written as a ``\\uXXXX`` escape."""
    return _NOT_IN_STRING.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def operation_outcome(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": code,
        "diagnostics": fhir_string(diagnostics) or code,
    }
    if expression:
        issue["expression"] = [fhir_string(expression)]
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
