"""PUT /fhir/DocumentReference/{id}: metadata update of a stored document (DMP TD3.3: status,
visibility labels; FHIR R4 update with If-Match). Only status and securityLabel may change; the
author alone may change them. Anything else is a replacement (ITI-65 with relatesTo)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.errors import InvalidInput
from carnet.fhir.context import scope_of, services_of
from carnet.fhir.validation import validate
from carnet.fhir.wire import etag, fhir_response, parse_if_match, read_resource


async def update_docref(request: Request) -> Response:
    scope = await scope_of(request)
    did = request.path_params["id"]
    resource = await read_resource(
        request, services_of(request).settings.max_upload_bytes, "DocumentReference"
    )
    if resource.get("id") not in (None, did):
        raise InvalidInput(
            f"the resource id {resource.get('id')!r} does not match the URL ({did})",
            expression="DocumentReference.id",
        )
    validate(resource)
    doc = await scope.update_document(
        did, resource, parse_if_match(request.headers.get("if-match"))
    )
    return fhir_response(doc.resource, headers={"ETag": etag(doc.version_id)})
