"""GET /fhir/Patient?…: find a record (DMP TD0.2; FHIR R4 search,
http://hl7.org/fhir/R4/patient.html#search). A professional who names a record by its exact INS
learns its state (``dmp-record-status``) and their own access (``dmp-professional-access``),
not the identity traits unless they may read the record."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.records import RecordCriteria
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import PATIENT_SEARCH
from carnet.fhir.context import base_url, core_of, scope_of
from carnet.fhir.openapi import COUNT, Operation, resource
from carnet.fhir.patient_resource import render_patient, status_only
from carnet.fhir.search_params import check_known, count, dates, strict_handling, tokens
from carnet.fhir.wire import fhir_response


async def search_patient(request: Request) -> Response:
    scope = await scope_of(request)
    params = request.query_params
    ignored = check_known(params, PATIENT_SEARCH, "Patient", strict=strict_handling(request))
    limits = core_of(request).limits
    count(params, limits.page_size_default, limits.page_size_max)
    identifiers = [(t.system, t.code) for group in tokens(params, "identifier") for t in group]
    criteria = RecordCriteria(
        identifiers=identifiers,
        family=params.getlist("family"),
        given=params.getlist("given"),
        birthdate=dates(params, "birthdate"),
        ids=[t.code for group in tokens(params, "_id") for t in group],
    )
    views = await scope.records.search(criteria)
    base = base_url(request)
    matches = []
    for view in views:
        body = (
            render_patient(view.record)
            if view.full
            else orjson.dumps(status_only(view.record, "none"))
        )
        matches.append((f"{base}/Patient/{view.record.record_id}", body))
    return fhir_response(
        searchset(
            self_url=page_url(f"{base}/Patient", params, None, ignored),
            next_url=None,
            total=len(matches),
            matches=matches,
            ignored=ignored,
        )
    )


SEARCH = Operation(
    "Find a record (search Patient)",
    {200: resource("Bundle", "a searchset Bundle of Patients")},
    description="DMP TD0.2. Naming a record one may not read answers its state only.",
    search=PATIENT_SEARCH,
    extra=(COUNT,),
)
