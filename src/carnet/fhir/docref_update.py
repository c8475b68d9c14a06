"""PUT /fhir/DocumentReference/{id}: metadata update of a stored document (DMP TD3.3a–d: status,
visibility labels, archiving; FHIR R4 update with If-Match, http://hl7.org/fhir/R4/http.html#update).
Only ``status``, ``securityLabel`` and the archive extension (PDSm's ``pdsm-ext-is-archived``,
or its alias ``dmp-archived``) may change: the core decides who may change each (the author the
status, archive flag and INVISIBLE_* labels; MASQUE_PS the patient, and the author setting it);
anything else is a replacement (ITI-65 with relatesTo).

:func:`document_change` reads what a client's resource asks of the stored one; PATCH
(docref_patch.py) hands it the patched resource, so that both take the same path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.access.scope import Scope
from carnet.domain.documents import (
    VISIBILITY_CODES,
    DocumentChange,
    DocumentStatus,
    StoredDocument,
)
from carnet.fhir.conditional import IDENTIFIER, named_document, update_replies
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.docref_resource import (
    archived_of,
    entry_from_docref,
    other_extensions,
    render_docref,
)
from carnet.fhir.errors import InvalidInput, UnprocessableEntity
from carnet.fhir.openapi import IF_MATCH, Operation, body
from carnet.fhir.validation import validate
from carnet.fhir.wire import etag, fhir_response, http_date, parse_if_match, read_resource

CHANGEABLE = ("meta", "status", "securityLabel", "id", "text", "extension")


def document_change(
    resource: dict[str, Any], stored: dict[str, Any], doc: StoredDocument
) -> DocumentChange:
    """The change ``resource`` asks of ``doc`` (served as ``stored``); what else differs is
    refused (422 naming it).

    A ``securityLabel`` without a confidentiality code (N, R, V…) keeps the stored one: a
    visibility change is not a change of confidentiality (the PDSm for DMP guide masks by
    replacing ``securityLabel/0`` with ``MASQUE_PS``)."""
    changed = {
        k
        for k in set(stored) | set(resource)
        if k not in CHANGEABLE and stored.get(k) != resource.get(k)
    }
    if other_extensions(stored) != other_extensions(resource):
        changed.add("extension")
    if changed:
        raise UnprocessableEntity(
            "only status, securityLabel and the archive extension (pdsm-ext-is-archived) "
            f"change on a stored document; to change {', '.join(sorted(changed))}, replace it "
            "(ITI-65 with relatesTo)",
            expression=f"DocumentReference.{sorted(changed)[0]}",
        )
    status = resource.get("status")
    if status not in tuple(s.value for s in DocumentStatus):
        raise InvalidInput(
            "status must be current, superseded or entered-in-error",
            expression="DocumentReference.status",
        )
    labels = entry_from_docref({**resource, "content": stored.get("content")}).confidentiality
    if all(code in VISIBILITY_CODES for code in labels):
        labels += [code for code in doc.labels if code not in VISIBILITY_CODES]
    return DocumentChange(
        status=DocumentStatus(status),
        archived=archived_of(resource, doc.archived),
        labels=frozenset(labels),
    )


def change_from(resource: dict[str, Any], base: str) -> Callable[[StoredDocument], DocumentChange]:
    """The change a PUT asks for, given the document as stored."""

    def change_of(doc: StoredDocument) -> DocumentChange:
        return document_change(resource, orjson.loads(render_docref(doc, base)), doc)

    return change_of


def updated_response(doc: StoredDocument, base: str) -> Response:
    """The document after its update (PUT, PATCH): 200, with its version's ETag."""
    return fhir_response(
        render_docref(doc, base),
        headers={"ETag": etag(doc.version_id), "Last-Modified": http_date(doc.last_updated)},
    )


async def update_docref(request: Request) -> Response:
    scope = await scope_of(request)
    did = request.path_params["id"]
    return await _update(request, scope, did)


async def conditional_update_docref(request: Request) -> Response:
    """``PUT DocumentReference?identifier=…`` (conditional.py)."""
    scope = await scope_of(request)
    resource = await read_resource(
        request, settings_of(request).max_upload_bytes, "DocumentReference"
    )
    did = await named_document(request, scope, "PUT")
    return await _update(request, scope, did, resource)


async def _update(
    request: Request, scope: Scope, did: str, resource: dict[str, Any] | None = None
) -> Response:
    resource = (
        resource
        if resource is not None
        else await read_resource(
            request, settings_of(request).max_upload_bytes, "DocumentReference"
        )
    )
    if resource.get("id") not in (None, did):
        raise InvalidInput(
            f"the resource id {resource.get('id')!r} does not match the URL ({did})",
            expression="DocumentReference.id",
        )
    validate(resource)
    base = base_url(request)
    doc = await scope.documents.update(
        did, change_from(resource, base), parse_if_match(request.headers.get("if-match"))
    )
    return updated_response(doc, base)


CONDITIONAL_UPDATE = Operation(
    "Update the one document an identifier names (conditional update)",
    update_replies("updated"),
    description="identifier: the uniqueId or entryUUID, among the documents the caller may "
    "read; none is 404 (documents are published by ITI-65 or ITI-105), several 412.",
    headers=(IF_MATCH,),
    body=body("DocumentReference"),
    extra=(IDENTIFIER,),
)

UPDATE = Operation(
    "Update a document's metadata: status, securityLabel, archiving (DMP TD3.3)",
    update_replies("updated"),
    description="Only status, securityLabel and the archive extension (pdsm-ext-is-archived, "
    "or carnet's dmp-archived) may change.",
    headers=(IF_MATCH,),
    body=body("DocumentReference"),
)
