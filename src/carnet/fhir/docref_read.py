"""GET /fhir/DocumentReference/{id}[/_history[/{vid}]] (FHIR R4 read, vread, history;
http://hl7.org/fhir/R4/http.html#read). A deleted document answers 410 to whoever could read it
before, 404 to anyone else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.fhir.bundles import history
from carnet.fhir.context import base_url, scope_of
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.openapi import ETAG, Operation, resource
from carnet.fhir.patient_read import _version
from carnet.fhir.wire import etag, fhir_response, http_date


async def read_docref(request: Request) -> Response:
    scope = await scope_of(request)
    vid = request.path_params.get("vid")
    doc = await scope.documents.read(
        request.path_params["id"], _version(vid) if vid is not None else None
    )
    return fhir_response(
        render_docref(doc, base_url(request)),
        headers={"ETag": etag(doc.version_id), "Last-Modified": http_date(doc.last_updated)},
    )


async def docref_history(request: Request) -> Response:
    scope = await scope_of(request)
    did = request.path_params["id"]
    versions = await scope.documents.history(did)
    base = base_url(request)
    entries = [
        (
            f"{base}/DocumentReference/{did}/_history/{doc.version_id}",
            render_docref(doc, base),
            iso(doc.last_updated),
            "POST" if doc.version_id == 1 else "PUT",
        )
        for doc in versions
    ]
    return fhir_response(history(f"{base}/DocumentReference/{did}/_history", entries))


READ = Operation(
    "Read a DocumentReference",
    {
        200: resource(
            "DocumentReference",
            "the DocumentReference",
            ETag=ETAG,
            Last_Modified="when this version was made",
        ),
        404: None,
        410: None,
    },
)
VREAD = Operation(
    "Read a version of a DocumentReference (vread)",
    {
        200: resource(
            "DocumentReference",
            "that version",
            ETag=ETAG,
            Last_Modified="when this version was made",
        ),
        404: None,
        410: None,
    },
)
HISTORY = Operation(
    "The versions of a DocumentReference (history)",
    {200: resource("Bundle", "a history Bundle"), 404: None, 410: None},
)
