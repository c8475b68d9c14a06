"""RelatedPerson at /fhir/RelatedPerson: legal representatives (dmp.md §1; FHIR R4
RelatedPerson, http://hl7.org/fhir/R4/relatedperson.html): create, search by patient, delete."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.errors import InvalidInput
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.context import base_url, scope_of, services_of
from carnet.fhir.search_params import check_known, references
from carnet.fhir.wire import fhir_response, read_resource


async def create_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    resource = await read_resource(
        request, services_of(request).settings.max_upload_bytes, "RelatedPerson"
    )
    patient = resource.get("patient")
    ref = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(ref, str) or "Patient/" not in ref:
        raise InvalidInput(
            "RelatedPerson.patient must reference Patient/<id>", expression="RelatedPerson.patient"
        )
    body = await scope.add_representative(ref.rsplit("Patient/", 1)[1], resource)
    return fhir_response(
        body, status=201, headers={"Location": f"{base_url(request)}/RelatedPerson/{body['id']}"}
    )


async def search_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    p = request.query_params
    check_known(p, {"patient"}, "RelatedPerson")
    ids = [i for group in references(p, "patient", "Patient") for i in group]
    if not ids:
        raise InvalidInput("RelatedPerson search needs patient", expression="patient")
    found = [r for rid in ids for r in await scope.list_representatives(rid)]
    base = base_url(request)
    return fhir_response(
        searchset(
            self_url=page_url(f"{base}/RelatedPerson", p, None),
            next_url=None,
            total=len(found),
            matches=[(f"{base}/RelatedPerson/{r['id']}", orjson.dumps(r)) for r in found],
        )
    )


async def delete_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    await scope.remove_representative(request.path_params["id"])
    return Response(status_code=204)
