"""The document a conditional update or patch names: ``PUT`` / ``PATCH
DocumentReference?identifier=…`` (FHIR R4 http.html#cond-update and #patch: no match 404 here,
since a document is published by ITI-65 or ITI-105, not created by an update; several 412).

The identifier (uniqueId or entryUUID) is looked up among the documents the caller may read
only, through the same search as ITI-67: a document the caller may not read answers exactly as
a missing one."""

from __future__ import annotations

from starlette.requests import Request

from carnet.access.scope import Scope
from carnet.domain.search import DocumentCriteria
from carnet.fhir.context import NOT_FOUND
from carnet.fhir.errors import InvalidInput, NotFound, PreconditionFailed
from carnet.fhir.openapi import ETAG, Reply, resource
from carnet.fhir.search_params import tokens
from carnet.fhir.search_spec import SearchParam


def _condition(request: Request, verb: str) -> DocumentCriteria:
    params = request.query_params
    other = sorted(set(params) - {"identifier", "_format"})
    if other or len(params.getlist("identifier")) != 1:
        raise InvalidInput(
            f"a conditional {verb} names its document by one identifier: "
            "DocumentReference?identifier=<system>|<uniqueId>"
            + (f" (not {', '.join(other)})" if other else ""),
            expression=other[0] if other else "identifier",
        )
    if "\x00" in params["identifier"]:
        raise InvalidInput("identifier may not contain NUL characters", expression="identifier")
    return DocumentCriteria(identifier=tokens(params, "identifier"), count=2)


async def named_document(request: Request, scope: Scope, verb: str) -> str:
    """The id of the one document the request's ``identifier`` names among those the caller
    may read."""
    page = await scope.documents.search(_condition(request, verb))
    if not page.items:
        raise NotFound(NOT_FOUND)
    if len(page.items) > 1:
        raise PreconditionFailed(
            f"the identifier matches more than one document: {verb} DocumentReference/{{id}}",
            expression="identifier",
        )
    return page.items[0].doc_id


IDENTIFIER = SearchParam(
    "identifier",
    "token",
    "http://hl7.org/fhir/SearchParameter/clinical-identifier",
    "the document's uniqueId or entryUUID (required)",
)
"""The condition of a conditional update or patch, as the API's description shows it."""


def update_replies(done: str) -> dict[int, Reply | None]:
    """What a document's update (PUT, PATCH, and their conditional forms) answers."""
    ok = resource("DocumentReference", f"the DocumentReference as {done}", ETag=ETAG)
    return {200: ok, 400: None, 404: None, 409: None, 410: None, 412: None, 413: None, 422: None}
