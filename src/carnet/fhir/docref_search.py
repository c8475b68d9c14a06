"""GET /fhir/DocumentReference?…: IHE MHD ITI-67 Find Document References (DMP TD3.1;
https://profiles.ihe.net/ITI/MHD/ITI-67.html, PDSm "Consultation").

Sorted by date, newest first by default; paged with a keyset cursor so that next links stay
correct while documents are added; ``total`` counts only what the caller may see;
``_include=DocumentReference:subject`` adds the Patient of each record in the page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.search import DocumentCriteria
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import DOCREF_SEARCH
from carnet.fhir.context import base_url, core_of, scope_of
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.errors import InvalidInput
from carnet.fhir.openapi import PAGING, Operation, resource
from carnet.fhir.patient_resource import render_patient
from carnet.fhir.search_params import (
    check_known,
    count,
    dates,
    decode_cursor,
    encode_cursor,
    references,
    tokens,
)
from carnet.fhir.search_spec import SearchParam
from carnet.fhir.wire import fhir_response


def criteria_from(request: Request, default_count: int, max_count: int) -> DocumentCriteria:
    p = request.query_params
    check_known(p, set(DOCREF_SEARCH), "DocumentReference")
    sort = p.get("_sort", "-date")
    if sort not in ("-date", "date"):
        raise InvalidInput(
            f"_sort={sort!r} is not supported (use date or -date)", expression="_sort"
        )
    include = p.getlist("_include")
    for inc in include:
        if inc != "DocumentReference:subject":
            raise InvalidInput(
                f"_include={inc!r} is not supported (DocumentReference:subject is)",
                expression="_include",
            )
    return DocumentCriteria(
        record_ids=references(p, "patient", "Patient"),
        patient_identifiers=tokens(p, "patient.identifier"),
        ids=[[t.code for t in g] for g in tokens(p, "_id")],
        identifier=tokens(p, "identifier"),
        type=tokens(p, "type"),
        category=tokens(p, "category"),
        status=tokens(p, "status"),
        setting=tokens(p, "setting"),
        facility=tokens(p, "facility"),
        format=tokens(p, "format"),
        security_label=tokens(p, "security-label"),
        author_identifier=tokens(p, "author.identifier"),
        date=dates(p, "date"),
        period=dates(p, "period"),
        sort_desc=sort == "-date",
        count=count(p, default_count, max_count),
        cursor=decode_cursor(p),
        include_subject=bool(include),
        archived=_archived_param(p.get("archived")),
    )


def _archived_param(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise InvalidInput("archived must be true or false", expression="archived")


async def search_docref(request: Request) -> Response:
    scope = await scope_of(request)
    limits = core_of(request).limits
    criteria = criteria_from(request, limits.page_size_default, limits.page_size_max)
    page = await scope.documents.search(criteria)
    base = base_url(request)
    url = f"{base}/DocumentReference"
    params = request.query_params
    next_url = page_url(url, params, encode_cursor(*page.next_cursor)) if page.next_cursor else None
    return fhir_response(
        searchset(
            self_url=page_url(url, params, params.get("_cursor")),
            next_url=next_url,
            total=page.total if page.total is not None else len(page.items),
            matches=[(f"{url}/{d.doc_id}", render_docref(d, base)) for d in page.items],
            includes=[(f"{base}/Patient/{r.record_id}", render_patient(r)) for r in page.included],
        )
    )


SORT = SearchParam(
    "_sort", "special", "http://hl7.org/fhir/R4/search.html#sort", "date or -date (the default)"
)
INCLUDE = SearchParam(
    "_include",
    "special",
    "http://hl7.org/fhir/R4/search.html#include",
    "DocumentReference:subject adds each record's Patient",
)

SEARCH = Operation(
    "Find Document References (ITI-67)",
    {200: resource("Bundle", "a searchset Bundle of DocumentReferences (and their Patients)")},
    description="IHE MHD ITI-67, DMP TD3.1. A document the caller may not read is neither "
    "listed nor counted.",
    search=DOCREF_SEARCH,
    extra=(*PAGING, SORT, INCLUDE),
)
