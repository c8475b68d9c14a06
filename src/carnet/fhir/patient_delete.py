"""DELETE /fhir/Patient/{id}: destroy a record on the patient's request (dmp.md §2; FHIR R4
delete, http://hl7.org/fhir/R4/http.html#delete). Irreversible: the record's key is destroyed.
Answers the tombstone (state ``destroyed``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.context import scope_of
from carnet.fhir.openapi import Operation, resource
from carnet.fhir.patient_resource import render_tombstone
from carnet.fhir.wire import fhir_response


async def destroy_patient(request: Request) -> Response:
    scope = await scope_of(request)
    tomb = await scope.lifecycle.destroy(request.path_params["id"])
    return fhir_response(render_tombstone(tomb))


DESTROY = Operation(
    "Destroy a record (delete Patient)",
    {200: resource("Patient", "the tombstone (state destroyed)"), 404: None, 409: None, 410: None},
    description="dmp.md §2: on the patient's request; irreversible (the record's key is "
    "destroyed).",
)
