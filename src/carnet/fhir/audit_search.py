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

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.professionals import same_professional_id
from carnet.domain.search import Token, TokenParam
from carnet.domain.traces import ActionFilter, AuditCriteria
from carnet.fhir.audit_resource import (
    ACTION_SYSTEM,
    FHIR_ACTION_SYSTEM,
    OUTCOME_SYSTEM,
    VERBS,
    audit_event_json,
)
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import AUDIT_SEARCH
from carnet.fhir.context import base_url, core_of, scope_of
from carnet.fhir.errors import InvalidInput
from carnet.fhir.openapi import PAGING, Operation, resource
from carnet.fhir.search_params import check_known, count, dates, references, strict_handling, tokens
from carnet.fhir.search_spec import SearchParam
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


INS_SYSTEMS = frozenset(
    f"urn:oid:{oid}"
    for oid in ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10")
)


def _actions(action: TokenParam, subtype: TokenParam) -> list[list[ActionFilter]]:
    """``action`` (AuditEvent.action C R U D E, or our codes) and ``subtype`` (our codes)."""
    out: list[list[ActionFilter]] = []
    for values in action:
        ors: list[ActionFilter] = []
        for t in values:
            if t.code in ("C", "R", "U", "D", "E") and t.system in (None, FHIR_ACTION_SYSTEM):
                if t.code == "E":
                    ors.append(ActionFilter(verbs=frozenset(VERBS), other_than=True))
                else:
                    verbs = frozenset(v for v, letter in VERBS.items() if letter == t.code)
                    ors.append(ActionFilter(verbs=verbs))
            elif t.system in (None, ACTION_SYSTEM):
                ors.append(ActionFilter(code=t.code))
        out.append(ors)
    for values in subtype:
        out.append([ActionFilter(code=t.code) for t in values if t.system in (None, ACTION_SYSTEM)])
    return out


def _outcomes(param: TokenParam) -> list[list[str]]:
    names = {"0": "allow", "allow": "allow", "4": "deny", "deny": "deny"}
    return [
        [names[t.code] for t in values if t.code in names and t.system in (None, OUTCOME_SYSTEM)]
        for values in param
    ]


def _actor_ids(t: Token) -> list[str]:
    if t.system == RPPS_SYSTEM:
        return sorted({f"rpps:{t.code}", same_professional_id(t.code)})
    if t.system in INS_SYSTEMS:
        return [f"ins:{t.code.upper()}"]
    if t.system is None:
        return sorted(
            {f"rpps:{t.code}", same_professional_id(t.code), f"ins:{t.code.upper()}", t.code}
        )
    return []


def _entities(params: QueryParams) -> list[list[tuple[str, str]]]:
    """``entity``: each a Patient (the record) or a DocumentReference (a bare id is one)."""
    out: list[list[tuple[str, str]]] = []
    for raw in params.getlist("entity"):
        values = [v.strip().rstrip("/") for v in raw.split(",")]
        if not all(values):
            raise InvalidInput(f"empty reference in entity={raw!r}", expression="entity")
        group = []
        for ref in values:
            kind, _, ident = ref.rpartition("/")
            if kind.endswith("Patient"):
                group.append(("record", ident))
            elif kind == "" or kind.endswith("DocumentReference"):
                group.append(("document", ident))
            else:
                raise InvalidInput(
                    f"entity={ref!r}: only DocumentReference and Patient entities are traced",
                    expression="entity",
                )
        out.append(group)
    return out


def criteria_from(request: Request, default_count: int, max_count: int) -> AuditCriteria:
    p = request.query_params
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
        actions=_actions(tokens(p, "action"), tokens(p, "subtype")),
        outcomes=_outcomes(tokens(p, "outcome")),
        actor_ids=[
            [i for t in values for i in _actor_ids(t)] for values in tokens(p, "agent.identifier")
        ],
        entities=_entities(p),
        count=count(p, default_count, max_count),
        cursor=decode_cursor(p),
    )


async def search_audit_event(request: Request) -> Response:
    scope = await scope_of(request)
    limits = core_of(request).limits
    ignored = check_known(
        request.query_params, AUDIT_SEARCH, "AuditEvent", strict=strict_handling(request)
    )
    criteria = criteria_from(request, limits.page_size_default, limits.page_size_max)
    page = await scope.traces.search(criteria)
    url = f"{base_url(request)}/AuditEvent"
    params = request.query_params
    next_url = (
        page_url(url, params, encode_cursor(*page.next_cursor), ignored)
        if page.next_cursor
        else None
    )
    return fhir_response(
        searchset(
            self_url=page_url(url, params, params.get("_cursor"), ignored),
            next_url=next_url,
            total=page.total,
            matches=[
                (f"{url}/{ev.event_id}", audit_event_json(ev, page.ins.get(ev.record_id)))
                for ev in page.items
            ],
            ignored=ignored,
        )
    )


SORT_NEWEST = SearchParam(
    "_sort", "special", "http://hl7.org/fhir/R4/search.html#sort", "-date only (the default)"
)

SEARCH = Operation(
    "The traces (search AuditEvent)",
    {200: resource("Bundle", "a searchset Bundle of AuditEvents, newest first")},
    description="dmp.md §5, docs/traces.md: the traces the caller may read.",
    search=AUDIT_SEARCH,
    extra=(*PAGING, SORT_NEWEST),
)
