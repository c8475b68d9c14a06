"""GET /fhir/Patient/{id}/$everything: everything of a record the caller may read (FHIR R4
Patient $everything, http://hl7.org/fhir/R4/patient-operation-everything.html): the patient's
export ("download everything", dmp.md §1). Each document is checked by the same rules as a read;
content is reached through each DocumentReference's attachment URL (ITI-68)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.search import DocumentCriteria
from carnet.fhir.bundles import searchset
from carnet.fhir.context import base_url, scope_of
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.openapi import Operation, resource
from carnet.fhir.patient_resource import render_patient
from carnet.fhir.wire import fhir_response

PAGE = 200


async def everything(request: Request) -> Response:
    scope = await scope_of(request)
    rid = request.path_params["id"]
    record = await scope.records.read(rid)
    base = base_url(request)
    matches = [(f"{base}/Patient/{rid}", render_patient(record))]
    for archived in (False, True):
        criteria = DocumentCriteria(record_ids=[[rid]], count=PAGE, archived=archived)
        while True:
            page = await scope.documents.search(criteria)
            matches += [
                (f"{base}/DocumentReference/{d.doc_id}", render_docref(d, base)) for d in page.items
            ]
            if page.next_cursor is None:
                break
            criteria.cursor = page.next_cursor
    return fhir_response(
        searchset(
            self_url=f"{base}/Patient/{rid}/$everything",
            next_url=None,
            total=len(matches),
            matches=matches,
        )
    )


EVERYTHING = Operation(
    "Everything of a record the caller may read (Patient $everything)",
    {
        200: resource("Bundle", "a searchset Bundle: the Patient and its documents"),
        404: None,
        410: None,
    },
)
