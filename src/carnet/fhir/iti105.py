"""POST /fhir/DocumentReference: IHE MHD ITI-105 Simplified Publish
(https://profiles.ihe.net/ITI/MHD/ITI-105.html; ANS PDSm "pdsm-simplified-publish"), with the
content inline in ``attachment.data``. carnet makes the submission set.

Conditional create (FHIR R4 http://hl7.org/fhir/R4/http.html#ccreate): with
``If-None-Exist: identifier=<system>|<uniqueId>``, a document already stored with that
masterIdentifier is answered (200) instead of stored again. Without the header, sending the
same uniqueId twice still makes one document.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.content import ContentSource, InlineContent, UploadedContent
from carnet.domain.documents import NewDocument, Submission
from carnet.domain.search import DocumentCriteria, Token
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.docref_resource import entry_from_docref, publishable, render_docref
from carnet.fhir.errors import InvalidInput, PreconditionFailed, UnprocessableEntity
from carnet.fhir.openapi import ETAG, LOCATION, Header, Operation, body, resource
from carnet.fhir.submission import (
    check_fhir_document,
    decode_data,
    implicit_submission_set,
    subject_ref,
)
from carnet.fhir.wire import etag, fhir_response, read_valid_resource


async def simplified_publish(request: Request) -> Response:
    scope = await scope_of(request)
    settings = settings_of(request)
    base = base_url(request)
    resource = await read_valid_resource(request, settings.max_upload_bytes, "DocumentReference")
    condition = request.headers.get("if-none-exist")
    if condition:
        pairs = parse_qsl(condition)
        if len(pairs) != 1 or pairs[0][0] != "identifier" or "\x00" in pairs[0][1]:
            raise InvalidInput(
                "If-None-Exist must be identifier=<system>|<value> (the masterIdentifier)",
                expression="If-None-Exist",
            )
        system, _, value = pairs[0][1].rpartition("|")
        page = await scope.documents.search(
            DocumentCriteria(identifier=[[Token(system or None, value)]], count=2)
        )
        if len(page.items) > 1:
            raise PreconditionFailed("If-None-Exist matches more than one document")
        if page.items:
            doc = page.items[0]
            return fhir_response(render_docref(doc, base), headers={"ETag": etag(doc.version_id)})
    subject = subject_ref(
        resource.get("subject"), "DocumentReference.subject", allow_test=settings.allow_test_ins
    )
    entry = entry_from_docref(resource)
    if subject.ins is not None:
        entry.patient_system = subject.ins.system
        entry.patient_value = subject.ins.value
    else:
        entry.patient_value = subject.record_id
    att = ((resource.get("content") or [{}])[0] or {}).get("attachment") or {}
    content: ContentSource
    if att.get("data") is not None:
        content = InlineContent(
            decode_data(att["data"], "DocumentReference.content[0].attachment.data")
        )
    elif isinstance(att.get("url"), str) and "Binary/" in att["url"]:
        content = UploadedContent(att["url"].rsplit("Binary/", 1)[1].split("/", 1)[0])
    else:
        raise UnprocessableEntity(
            "ITI-105 carries the content in content[0].attachment.data (or names an uploaded "
            "Binary in attachment.url)",
            expression="DocumentReference.content[0].attachment",
        )
    check_fhir_document(content, att.get("contentType"), "DocumentReference.content[0].attachment")
    result = await scope.documents.publish(
        Submission(
            patient=subject,
            documents=[
                NewDocument(
                    "DocumentReference", entry, content, publishable(resource, content, entry)
                )
            ],
            submission_set=implicit_submission_set(scope.actor, resource),
        )
    )
    published = result.documents[0]
    stored = await scope.documents.read(published.doc_id)
    location = f"{base}/DocumentReference/{published.doc_id}/_history/{published.version_id}"
    return fhir_response(
        render_docref(stored, base),
        status=201 if published.created else 200,
        headers={"Location": location, "ETag": etag(published.version_id)},
    )


PUBLISH = Operation(
    "Simplified Publish (ITI-105): a DocumentReference with its content inline",
    {
        201: resource("DocumentReference", "the document stored", Location=LOCATION, ETag=ETAG),
        200: resource(
            "DocumentReference",
            "the document already stored with that uniqueId (If-None-Exist, or sent twice)",
            ETag=ETAG,
        ),
        400: None,
        404: None,
        409: None,
        412: None,
        413: None,
        422: None,
    },
    description="IHE MHD ITI-105, ANS PDSm pdsm-simplified-publish.",
    headers=(
        Header(
            "If-None-Exist",
            "identifier=<system>|<uniqueId>: answer the document stored with that "
            "masterIdentifier instead of storing again (conditional create)",
        ),
    ),
    body=body("DocumentReference"),
)
