"""GET /fhir/DocumentReference/{id}[/_history[/{vid}]] (FHIR R4 read, vread, history;
http://hl7.org/fhir/R4/http.html#read). A deleted document answers 410 to whoever could read the
record, 404 to anyone else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.fhir.bundles import history
from carnet.fhir.context import base_url, scope_of
from carnet.fhir.patient_read import _version
from carnet.fhir.wire import etag, fhir_response


async def read_docref(request: Request) -> Response:
    scope = await scope_of(request)
    vid = request.path_params.get("vid")
    doc = await scope.read_document(
        request.path_params["id"], _version(vid) if vid is not None else None
    )
    return fhir_response(
        doc.resource,
        headers={"ETag": etag(doc.version_id), "Last-Modified": iso(doc.last_updated)},
    )


async def docref_history(request: Request) -> Response:
    scope = await scope_of(request)
    did = request.path_params["id"]
    versions = await scope.document_history(did)
    base = base_url(request)
    entries = [
        (
            f"{base}/DocumentReference/{did}/_history/{v}",
            body,
            iso(updated),
            "POST" if v == 1 else "PUT",
        )
        for v, updated, body in versions
    ]
    return fhir_response(history(f"{base}/DocumentReference/{did}/_history", entries))
