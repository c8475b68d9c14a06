"""POST /fhir/Patient: open a record (DMP TD1.1; FHIR R4 "create",
http://hl7.org/fhir/R4/http.html#create), or record an objection to its creation
(``dmp-creation-objection`` true), or withdraw one (``dmp-creation-objection-withdrawn`` true).

The patient's consent is taken from the request itself: who (the token's actor), which
structure (the token's structure), when (now). Emergency consents that differ from the defaults
ride on carnet's ``dmp-emergency-consents`` extension.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.records import PatientInput
from carnet.fhir import extensions as X
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.openapi import ETAG, LOCATION, Operation, body, outcome, resource
from carnet.fhir.outcome import operation_outcome
from carnet.fhir.patient_resource import identity_from_patient, patient_input, render_patient
from carnet.fhir.validation import validate
from carnet.fhir.wire import etag, fhir_response, read_resource


async def create_patient(request: Request) -> Response:
    scope = await scope_of(request)
    settings = settings_of(request)
    resource = await read_resource(request, settings.max_upload_bytes, "Patient")
    validate(resource)
    withdrawn = X.find_extension(resource.get("extension"), X.CREATION_OBJECTION_WITHDRAWN)
    if withdrawn is not None and withdrawn.get("valueBoolean") is True:
        identity = identity_from_patient(resource, allow_test_ins=settings.allow_test_ins)
        ins = await scope.records.withdraw_objection(PatientInput(identity=identity))
        return fhir_response(
            operation_outcome(
                "information",
                "informational",
                f"no objection to the creation of a record holds for INS {ins.value}",
            ),
            status=200,
        )
    objection = X.find_extension(resource.get("extension"), X.CREATION_OBJECTION)
    if objection is not None and objection.get("valueBoolean") is True:
        identity = identity_from_patient(resource, allow_test_ins=settings.allow_test_ins)
        ins = await scope.records.object(PatientInput(identity=identity))
        return fhir_response(
            operation_outcome(
                "information",
                "informational",
                f"objection to the creation of a record recorded for INS {ins.value}: "
                "no record is created",
            ),
            status=200,
        )
    record = await scope.records.open(
        patient_input(resource, allow_test_ins=settings.allow_test_ins)
    )
    location = f"{base_url(request)}/Patient/{record.record_id}/_history/{record.version_id}"
    return fhir_response(
        render_patient(record),
        status=201,
        headers={"Location": location, "ETag": etag(record.version_id)},
    )


CREATE = Operation(
    "Open a record (create a Patient), or record or withdraw an objection to it",
    {
        201: resource("Patient", "the record opened", Location=LOCATION, ETag=ETAG),
        200: outcome("an objection recorded or withdrawn: no record is opened"),
        400: None,
        409: None,
        413: None,
        422: None,
    },
    description="DMP TD1.1. The Patient follows FR Core Patient INS; the patient's consent is "
    "the request itself.",
    body=body("Patient"),
)
