"""GET and POST /fhir/DocumentReference[/_search]: IHE MHD ITI-67 Find Document References
(DMP TD3.1; https://profiles.ihe.net/ITI/MHD/ITI-67.html §2:3.67.4.1.2, PDSm "Recherche de
fiche"), FHIR R4 search (http://hl7.org/fhir/R4/search.html).

Sorted by date, newest first by default; paged with a keyset cursor so that next links stay
correct while documents are added; ``total`` counts only what the caller may see (``_count=0``
and ``_summary=count``: the total alone); ``_include=DocumentReference:subject`` adds the
Patient of each record in the page. Unknown parameters are ignored with a warning, or refused
under ``Prefer: handling=strict`` (search_params.py)."""

from __future__ import annotations

from dataclasses import replace

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.search import DocumentCriteria
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import DOCREF_SEARCH
from carnet.fhir.context import base_url, core_of, scope_of
from carnet.fhir.docref_resource import render_docref
from carnet.fhir.errors import InvalidInput
from carnet.fhir.openapi import COUNTING as COUNTING_PARAMS
from carnet.fhir.openapi import PAGING, Operation, resource, search_form
from carnet.fhir.patient_resource import render_patient
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
    refs,
    search_params,
    strict_handling,
    summary_count,
    texts,
    tokens,
)
from carnet.fhir.search_spec import SearchParam
from carnet.fhir.wire import fhir_response


def criteria_from(
    p: QueryParams, default_count: int, max_count: int, *, count_only: bool = False
) -> DocumentCriteria:
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
    if "relatesto:identifier" in p:
        raise InvalidInput(
            "relatesto takes a reference (DocumentReference/<id>), not an identifier",
            expression="relatesto:identifier",
        )
    return DocumentCriteria(
        # subject is the patient here: DocumentReference.subject is a Patient (ITI-67)
        record_ids=references(p, "patient", "Patient") + references(p, "subject", "Patient"),
        patient_identifiers=tokens(p, "patient.identifier")
        + tokens(p, "patient:identifier")
        + tokens(p, "subject:identifier"),
        ids=[[t.code for t in g] for g in tokens(p, "_id")],
        identifier=tokens(p, "identifier"),
        type=tokens(p, "type"),
        category=tokens(p, "category"),
        status=tokens(p, "status"),
        setting=tokens(p, "setting"),
        facility=tokens(p, "facility"),
        format=tokens(p, "format"),
        security_label=tokens(p, "security-label"),
        author_identifier=tokens(p, "author.identifier") + identifier_refs(p, "author"),
        date=dates(p, "date"),
        period=dates(p, "period"),
        creation=dates(p, "creation"),
        period_start=dates(p, "period-start"),
        period_end=dates(p, "period-end"),
        last_updated=dates(p, "_lastUpdated"),
        author_given=texts(p, "author.given"),
        author_family=texts(p, "author.family"),
        event=tokens(p, "event"),
        related=refs(p, "related"),
        relates_to=references(p, "relatesto", "DocumentReference"),
        sort_desc=sort == "-date",
        count=0 if count_only else count(p, default_count, max_count, zero=True),
        cursor=decode_cursor(p),
        include_subject=bool(include),
        archived=boolean(p, "isArchived", "archived"),
    )


async def search_docref(request: Request) -> Response:
    scope = await scope_of(request)
    limits = core_of(request).limits
    params = await search_params(request)
    ignored = check_known(
        params, {**DOCREF_SEARCH, **COUNTING}, "DocumentReference", strict=strict_handling(request)
    )
    count_only = summary_count(params)
    criteria = criteria_from(
        params, limits.page_size_default, limits.page_size_max, count_only=count_only
    )
    page = await scope.documents.search(criteria)
    base = base_url(request)
    url = f"{base}/DocumentReference"
    next_url = None
    if page.next_cursor and criteria.count:
        next_url = page_url(url, params, encode_cursor(*page.next_cursor), ignored)
    return fhir_response(
        searchset(
            self_url=page_url(url, params, params.get("_cursor"), ignored),
            next_url=next_url,
            total=page.total if page.total is not None else len(page.items),
            matches=[(f"{url}/{d.doc_id}", render_docref(d, base)) for d in page.items],
            includes=[(f"{base}/Patient/{r.record_id}", render_patient(r)) for r in page.included],
            ignored=ignored,
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
    extra=(*PAGING, *COUNTING_PARAMS, SORT, INCLUDE),
)

SEARCH_POST = replace(
    SEARCH,
    summary=SEARCH.summary + " by POST (FHIR R4 search: POST [type]/_search)",
    body=search_form(DOCREF_SEARCH, (*PAGING, *COUNTING_PARAMS, SORT, INCLUDE)),
)
