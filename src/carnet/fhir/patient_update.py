"""PUT /fhir/Patient/{id}: update a record's Patient (DMP TD1.2, reopen; FHIR R4 "update" with
version-aware If-Match, http://hl7.org/fhir/R4/http.html#concurrency)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.context import scope_of, settings_of
from carnet.fhir.errors import InvalidInput
from carnet.fhir.openapi import ETAG, IF_MATCH, Operation, body, resource
from carnet.fhir.patient_resource import patient_input, render_patient
from carnet.fhir.validation import validate
from carnet.fhir.wire import etag, fhir_response, parse_if_match, read_resource


async def update_patient(request: Request) -> Response:
    scope = await scope_of(request)
    rid = request.path_params["id"]
    settings = settings_of(request)
    resource = await read_resource(request, settings.max_upload_bytes, "Patient")
    if resource.get("id") not in (None, rid):
        raise InvalidInput(
            f"the resource id {resource.get('id')!r} does not match the URL ({rid})",
            expression="Patient.id",
        )
    validate(resource)
    record = await scope.records.update(
        rid,
        patient_input(resource, allow_test_ins=settings.allow_test_ins),
        parse_if_match(request.headers.get("if-match")),
    )
    return fhir_response(render_patient(record), headers={"ETag": etag(record.version_id)})


UPDATE = Operation(
    "Update a record's Patient",
    {
        200: resource("Patient", "the Patient as updated", ETag=ETAG),
        400: None,
        404: None,
        409: None,
        410: None,
        412: None,
        413: None,
        422: None,
    },
    description="DMP TD1.2; version-aware with If-Match.",
    headers=(IF_MATCH,),
    body=body("Patient"),
)
