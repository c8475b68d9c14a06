"""GET /fhir/List?… and /fhir/List/{id}: IHE MHD ITI-66 Find Document Lists
(https://profiles.ihe.net/ITI/MHD/ITI-66.html): the submission sets of a patient."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.search import ListCriteria
from carnet.errors import NotFound
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import LIST_SEARCH
from carnet.fhir.context import base_url, scope_of
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


def _check_fixed(values: list[list[str]], allowed: set[str], name: str) -> bool:
    """code and status have one possible value for submission sets."""
    return all(any(v.split("|")[-1] in allowed for v in group) for group in values)


async def search_list(request: Request) -> Response:
    scope = await scope_of(request)
    p = request.query_params
    check_known(p, set(LIST_SEARCH), "List")
    criteria = ListCriteria(
        record_ids=references(p, "patient", "Patient"),
        patient_identifiers=tokens(p, "patient.identifier"),
        identifier=tokens(p, "identifier"),
        source_id=tokens(p, "source.identifier"),
        date=dates(p, "date"),
        count=count(p, scope.settings.page_size_default, scope.settings.page_size_max),
        cursor=decode_cursor(p),
    )
    codes = [v.split(",") for v in p.getlist("code")]
    statuses = [v.split(",") for v in p.getlist("status")]
    base = base_url(request)
    url = f"{base}/List"
    if not _check_fixed(codes, {"submissionset"}, "code") or not _check_fixed(
        statuses, {"current"}, "status"
    ):
        resources: list[bytes] = []
        total, nxt = 0, None
    else:
        resources, total, nxt = await scope.search_lists(criteria)
    import orjson

    matches = [(f"{url}/{orjson.loads(r)['id']}", r) for r in resources]
    return fhir_response(
        searchset(
            self_url=page_url(url, p, p.get("_cursor")),
            next_url=page_url(url, p, encode_cursor(*nxt)) if nxt else None,
            total=total,
            matches=matches,
        )
    )


async def read_list(request: Request) -> Response:
    scope = await scope_of(request)
    lid = request.path_params["id"]
    resources, _total, _ = await scope.search_lists(
        ListCriteria(record_ids=[[lid.split("-")[0]]], set_ids=[lid], count=1)
    )
    if not resources:
        raise NotFound("no such resource, or no access to it")
    return fhir_response(resources[0])
