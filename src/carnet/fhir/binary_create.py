"""POST /fhir/Binary with raw content (FHIR R4 Binary, http://hl7.org/fhir/R4/binary.html#rest):
the content is streamed into the encrypted store as it arrives, never held whole in memory.
The patient it belongs to is named by ``X-Security-Context: Patient/<id>`` (FHIR's header for
Binary.securityContext). A DocumentReference then points at it with
``attachment.url = Binary/<id>`` (ITI-65 or ITI-105)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.context import FHIR_ID, base_url, scope_of, settings_of
from carnet.fhir.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from carnet.fhir.openapi import ANY, LOCATION, RAW, Header, Operation, outcome
from carnet.fhir.outcome import operation_outcome
from carnet.fhir.wire import check_accept, fhir_response, is_json_type


async def create_binary(request: Request) -> Response:
    scope = await scope_of(request)
    check_accept(request)  # the answer is FHIR JSON (scope_of skips Binary paths)
    settings = settings_of(request)
    content_type = request.headers.get("content-type")
    if not content_type:
        raise UnsupportedMediaType("Content-Type is required: the media type of the content")
    if is_json_type(content_type):
        raise UnsupportedMediaType(
            "send the raw content with its own Content-Type (e.g. application/pdf); Binary "
            "resources in JSON travel inside an ITI-65 bundle"
        )
    context = request.headers.get("x-security-context", "")
    if not context.startswith("Patient/") or not FHIR_ID.match(context.removeprefix("Patient/")):
        raise InvalidInput(
            "X-Security-Context: Patient/<id> is required: the record the content belongs to",
            expression="X-Security-Context",
        )
    declared = request.headers.get("content-length")
    if (
        declared
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > settings.max_upload_bytes
    ):
        raise PayloadTooLarge(
            f"content of {declared} bytes exceeds the {settings.max_upload_bytes}-byte limit"
        )
    binary_id, size = await scope.documents.upload(
        context.removeprefix("Patient/"), content_type.split(";")[0].strip(), request.stream()
    )
    location = f"{base_url(request)}/Binary/{binary_id}"
    body = operation_outcome(
        "information", "informational", f"stored {size} bytes as Binary/{binary_id}"
    )
    return fhir_response(body, status=201, headers={"Location": location})


CREATE = Operation(
    "Upload content (create Binary) for a later DocumentReference",
    {
        201: outcome("stored", Location=LOCATION),
        400: None,
        404: None,
        413: None,
        415: None,
        422: None,
    },
    description="The raw content with its own Content-Type (one of CARNET_CONTENT_TYPES; 422 "
    "otherwise), for the record named by X-Security-Context.",
    headers=(
        Header(
            "X-Security-Context",
            "Patient/<id>: the record the content belongs to",
            r"^Patient/[A-Za-z0-9\-][A-Za-z0-9\-.]{0,63}$",
            required=True,
        ),
    ),
    body={ANY: RAW},
    negotiates=False,
)
