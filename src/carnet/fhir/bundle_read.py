"""GET /fhir/Bundle/{id}: a FHIR document served as the Bundle it is (ANS "PDSm for DMP" TD3.2,
case 3, https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/transaction_td3.2.html; IHE MHD 4.2.3
ITI-65 "FHIR Document Publish" option).

A document whose content is a FHIR document (``application/fhir+json``, a Bundle of type
``document``) has its ``content.attachment.url`` at ``Bundle/{id}``; ``{id}`` is carnet's id of
the document's content, the same as ``Binary/{id}`` (the Bundle's own ``id`` is the client's and
names nothing here; it is replaced by ``{id}`` in the Bundle served, as the guide's example
shows them equal). The content is read exactly as ``GET Binary/{id}`` reads it: one decision, one
trace; a refused document, a missing one and content that is no FHIR document are answered
alike (404).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir.context import NOT_FOUND, scope_of
from carnet.fhir.errors import NotFound
from carnet.fhir.iti68 import SAFE_HEADERS
from carnet.fhir.openapi import Operation, resource
from carnet.fhir.submission import fhir_document, is_fhir_document
from carnet.fhir.wire import fhir_response


async def read_bundle(request: Request) -> Response:
    scope = await scope_of(request)
    bid = request.path_params["id"]
    content = await scope.documents.content(bid)
    if not is_fhir_document(content.info.content_type):
        raise NotFound(NOT_FOUND)
    bundle = fhir_document(await content.read_all())
    if bundle is None:
        raise NotFound(NOT_FOUND)
    bundle["id"] = bid
    return fhir_response(bundle, headers={"ETag": f'"{content.info.etag}"', **SAFE_HEADERS})


READ = Operation(
    "Read a FHIR document (a document whose content is a FHIR Bundle)",
    {
        200: resource("Bundle", "the document Bundle, its id the content's id", ETag="its SHA-256"),
        404: None,
        410: None,
    },
    description="PDSm for DMP TD3.2 case 3: the same decision and trace as GET Binary/{id}.",
)
