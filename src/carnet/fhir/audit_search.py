"""GET /fhir/AuditEvent?…: the traces (dmp.md §5; http://hl7.org/fhir/R4/auditevent.html#search;
docs/traces.md).

The patient reads every trace of their record, the médecin traitant too, a professional their
own (:mod:`carnet.access.audit`). Newest first, paged with a keyset cursor on the time-ordered
event id, so that next links stay right while new events arrive; ``total`` counts only what the
caller may read. Naming a record one may not read answers an empty Bundle, not 403.
"""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.traces import AuditCriteria
from carnet.errors import InvalidInput
from carnet.fhir.audit_resource import audit_event_json
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import AUDIT_SEARCH
from carnet.fhir.context import base_url, scope_of
from carnet.fhir.search_params import check_known, count, dates, references, tokens
from carnet.fhir.wire import fhir_response


def encode_cursor(event_id: str, record_id: str) -> str:
    raw = f"{event_id}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(params: QueryParams) -> tuple[str, str] | None:
    raw = params.get("_cursor")
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        event_id, record_id = text.split("|", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "_cursor is not a cursor this server issued", expression="_cursor"
        ) from None
    return event_id, record_id


def _entities(params: QueryParams) -> list[list[str]]:
    out = []
    for raw in params.getlist("entity"):
        values = [v.strip().rstrip("/") for v in raw.split(",")]
        if not all(values):
            raise InvalidInput(f"empty reference in entity={raw!r}", expression="entity")
        out.append(values)
    return out


def criteria_from(request: Request, default_count: int, max_count: int) -> AuditCriteria:
    p = request.query_params
    check_known(p, set(AUDIT_SEARCH), "AuditEvent")
    sort = p.get("_sort", "-date")
    if sort != "-date":
        raise InvalidInput(
            f"_sort={sort!r} is not supported: traces come newest first (-date)",
            expression="_sort",
        )
    if p.getlist("_include"):
        raise InvalidInput("_include is not supported on AuditEvent", expression="_include")
    return AuditCriteria(
        record_ids=references(p, "patient", "Patient"),
        date=dates(p, "date"),
        action=tokens(p, "action"),
        subtype=tokens(p, "subtype"),
        outcome=tokens(p, "outcome"),
        agent_identifier=tokens(p, "agent.identifier"),
        entity=_entities(p),
        count=count(p, default_count, max_count),
        cursor=decode_cursor(p),
    )


async def search_audit_event(request: Request) -> Response:
    scope = await scope_of(request)
    criteria = criteria_from(
        request, scope.settings.page_size_default, scope.settings.page_size_max
    )
    page = await scope.search_audit(criteria)
    url = f"{base_url(request)}/AuditEvent"
    params = request.query_params
    next_url = page_url(url, params, encode_cursor(*page.next_cursor)) if page.next_cursor else None
    return fhir_response(
        searchset(
            self_url=page_url(url, params, params.get("_cursor")),
            next_url=next_url,
            total=page.total,
            matches=[
                (f"{url}/{ev.event_id}", audit_event_json(ev, page.ins.get(ev.record_id)))
                for ev in page.items
            ],
        )
    )
