"""GET /fhir/Patient/{id}, /_history, /_history/{vid} (FHIR R4 read, vread, history;
http://hl7.org/fhir/R4/http.html#read). DMP TD0.2 for the record's state."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.fhir.bundles import history
from carnet.fhir.context import base_url, scope_of
from carnet.fhir.errors import NotFound
from carnet.fhir.openapi import ETAG, Operation, resource
from carnet.fhir.patient_resource import render_patient
from carnet.fhir.wire import etag, fhir_response, http_date


def _version(raw: str) -> int:
    if (
        not (raw.isascii() and raw.isdigit()) or len(raw) > 9
    ):  # versions are 32-bit integers in the store
        raise NotFound(f"no version {raw!r}")
    return int(raw)


async def read_patient(request: Request) -> Response:
    scope = await scope_of(request)
    vid = request.path_params.get("vid")
    record = await scope.records.read(
        request.path_params["id"], _version(vid) if vid is not None else None
    )
    return fhir_response(
        render_patient(record),
        headers={"ETag": etag(record.version_id), "Last-Modified": http_date(record.last_updated)},
    )


async def patient_history(request: Request) -> Response:
    scope = await scope_of(request)
    rid = request.path_params["id"]
    versions = await scope.records.history(rid)
    base = base_url(request)
    entries = [
        (
            f"{base}/Patient/{rid}/_history/{v.version_id}",
            render_patient(v.record),
            iso(v.last_updated),
            "POST" if v.version_id == 1 else "PUT",
        )
        for v in versions
    ]
    return fhir_response(history(f"{base}/Patient/{rid}/_history", entries))


READ = Operation(
    "Read a record's Patient",
    {
        200: resource(
            "Patient", "the Patient", ETag=ETAG, Last_Modified="when this version was made"
        ),
        404: None,
        410: None,
    },
)
VREAD = Operation(
    "Read a version of a record's Patient (vread)",
    {
        200: resource(
            "Patient", "that version", ETag=ETAG, Last_Modified="when this version was made"
        ),
        404: None,
        410: None,
    },
)
HISTORY = Operation(
    "The versions of a record's Patient (history)",
    {200: resource("Bundle", "a history Bundle"), 404: None, 410: None},
)
