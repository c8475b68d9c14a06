"""GET /fhir/List?… and /fhir/List/{id}: IHE MHD ITI-66 Find Document Lists
(https://profiles.ihe.net/ITI/MHD/ITI-66.html): the submission sets and folders of a patient,
each with the documents the caller may read (IHE MHD 4.2.3 SubmissionSet and Folder
Comprehensive: the uniqueId in the ``usual`` identifier, the entryUUID in the ``official``
one)."""

from __future__ import annotations

from typing import Any

import orjson
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
from carnet.fhir.openapi import PAGING, Operation, resource
from carnet.fhir.search_params import (
    check_known,
    count,
    dates,
    decode_cursor,
    encode_cursor,
    references,
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


async def search_list(request: Request) -> Response:
    scope = await scope_of(request)
    limits = core_of(request).limits
    p = request.query_params
    check_known(p, set(LIST_SEARCH), "List")
    criteria = ListCriteria(
        record_ids=references(p, "patient", "Patient"),
        patient_identifiers=tokens(p, "patient.identifier"),
        identifier=tokens(p, "identifier"),
        source_id=tokens(p, "source.identifier"),
        date=dates(p, "date"),
        code=tokens(p, "code"),
        status=tokens(p, "status"),
        count=count(p, limits.page_size_default, limits.page_size_max),
        cursor=decode_cursor(p),
    )
    base = base_url(request)
    url = f"{base}/List"
    sets, total, nxt = await scope.documents.lists(criteria)
    return fhir_response(
        searchset(
            self_url=page_url(url, p, p.get("_cursor")),
            next_url=page_url(url, p, encode_cursor(*nxt)) if nxt else None,
            total=total,
            matches=[(f"{url}/{s.list_id}", render_list(s)) for s in sets],
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
    extra=PAGING,
)
READ = Operation(
    "Read a List (a submission set)",
    {200: resource("List", "the List, with the documents the caller may read"), 404: None},
)
