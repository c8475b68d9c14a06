"""GET and POST /fhir/List[/_search] and GET /fhir/List/{id}: IHE MHD ITI-66 Find Document
Lists (https://profiles.ihe.net/ITI/MHD/ITI-66.html §2:3.66.4.1.2, PDSm "Recherche de lots"):
the submission sets and folders of a patient, each with the documents the caller may read (IHE
MHD 4.2.3 SubmissionSet and Folder Comprehensive: the uniqueId in the ``usual`` identifier, the
entryUUID in the ``official`` one). FHIR R4 search (http://hl7.org/fhir/R4/search.html):
``_count=0`` and ``_summary=count`` answer the total alone; unknown parameters are ignored with
a warning, or refused under ``Prefer: handling=strict`` (search_params.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.domain.documents import StoredFolder, StoredList
from carnet.domain.search import ListCriteria
from carnet.fhir import extensions as X
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import LIST_SEARCH
from carnet.fhir.context import NOT_FOUND, base_url, core_of, scope_of
from carnet.fhir.docref_resource import with_entry_uuid
from carnet.fhir.errors import NotFound
from carnet.fhir.openapi import COUNTING as COUNTING_PARAMS
from carnet.fhir.openapi import PAGING, Operation, resource, search_form
from carnet.fhir.search_params import (
    COUNTING,
    boolean,
    check_known,
    count,
    dates,
    decode_cursor,
    encode_cursor,
    identifier_refs,
    references,
    search_params,
    strict_handling,
    summary_count,
    texts,
    tokens,
)
from carnet.fhir.wire import fhir_response


def render_list(found: StoredList) -> bytes:
    """The List served: the submission set or folder as the client sent it, with carnet's fields
    set, its identifiers in their places and its entries the documents the caller may read."""
    folder = isinstance(found, StoredFolder)
    out: dict[str, Any] = {"resourceType": "List", "status": "current", "mode": "working"}
    if found.source is not None and found.source.media_type == "application/fhir+json":
        out = orjson.loads(found.source.data)
    out["id"] = found.list_id
    updated = found.last_updated if isinstance(found, StoredFolder) else found.created_at
    out["meta"] = {**(out.get("meta") or {}), "versionId": "1", "lastUpdated": iso(updated)}
    if folder:
        out["code"] = {"coding": [{"system": X.MHD_LIST_TYPES, "code": "folder"}]}
        out["date"] = iso(updated)  # Folder.lastUpdateTime
    out["status"] = "current"
    out["mode"] = "working"
    out["identifier"] = _identifiers(out.get("identifier"), found.unique_id, found.entry_uuid)
    out["subject"] = {"reference": f"Patient/{found.record_id}"}
    out["entry"] = [{"item": {"reference": f"DocumentReference/{d}"}} for d in found.documents]
    return orjson.dumps(out)


def _identifiers(sent: object, unique_id: str, entry_uuid: str | None) -> list[Any]:
    """The client's identifiers, with the uniqueId (``usual``) and the entryUUID
    (``official``) in their places when they lack them (carnet made them). A submission set
    sent in carnet's earlier form (its uniqueId as the ``official`` identifier) is served as
    sent."""
    out = list(sent) if isinstance(sent, list) else []
    values = {i.get("value") for i in out if isinstance(i, dict)}
    if unique_id not in values:
        out.insert(0, {"use": "usual", "system": "urn:ietf:rfc:3986", "value": unique_id})
    return with_entry_uuid(out, entry_uuid)


def list_criteria(p: QueryParams, default_count: int, max_count: int) -> ListCriteria:
    return ListCriteria(
        record_ids=references(p, "patient", "Patient"),
        patient_identifiers=tokens(p, "patient.identifier") + tokens(p, "patient:identifier"),
        identifier=tokens(p, "identifier"),
        source_id=tokens(p, "sourceId") + tokens(p, "source.identifier"),
        date=dates(p, "date"),
        code=tokens(p, "code"),
        status=tokens(p, "status"),
        designation_type=tokens(p, "designationType"),
        source_given=texts(p, "source.given"),
        source_family=texts(p, "source.family"),
        source=identifier_refs(p, "source"),
        author_org=identifier_refs(p, "authorOrg"),
        archived=boolean(p, "isArchived"),
        title=texts(p, "title"),
        count=0 if summary_count(p) else count(p, default_count, max_count, zero=True),
        cursor=decode_cursor(p),
    )


async def search_list(request: Request) -> Response:
    scope = await scope_of(request)
    limits = core_of(request).limits
    p = await search_params(request)
    ignored = check_known(p, {**LIST_SEARCH, **COUNTING}, "List", strict=strict_handling(request))
    criteria = list_criteria(p, limits.page_size_default, limits.page_size_max)
    base = base_url(request)
    url = f"{base}/List"
    sets, total, nxt = await scope.documents.lists(criteria)
    return fhir_response(
        searchset(
            self_url=page_url(url, p, p.get("_cursor"), ignored),
            next_url=page_url(url, p, encode_cursor(*nxt), ignored) if nxt else None,
            total=total,
            matches=[(f"{url}/{s.list_id}", render_list(s)) for s in sets],
            ignored=ignored,
        )
    )


async def read_list(request: Request) -> Response:
    scope = await scope_of(request)
    lid = request.path_params["id"]
    sets, _total, _ = await scope.documents.lists(
        ListCriteria(record_ids=[[lid.split("-")[0]]], set_ids=[lid], count=1)
    )
    if not sets:
        raise NotFound(NOT_FOUND)
    return fhir_response(render_list(sets[0]))


SEARCH = Operation(
    "Find Document Lists (ITI-66)",
    {200: resource("Bundle", "a searchset Bundle of Lists")},
    description="IHE MHD ITI-66: a patient's submission sets, each with the documents the "
    "caller may read.",
    search=LIST_SEARCH,
    extra=(*PAGING, *COUNTING_PARAMS),
)

SEARCH_POST = replace(
    SEARCH,
    summary=SEARCH.summary + " by POST (FHIR R4 search: POST [type]/_search)",
    body=search_form(LIST_SEARCH, (*PAGING, *COUNTING_PARAMS)),
)
READ = Operation(
    "Read a List (a submission set)",
    {200: resource("List", "the List, with the documents the caller may read"), 404: None},
)
