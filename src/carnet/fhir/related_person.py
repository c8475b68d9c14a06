"""RelatedPerson at /fhir/RelatedPerson: legal representatives (dmp.md §1; FHIR R4
RelatedPerson, http://hl7.org/fhir/R4/relatedperson.html): create, search by patient, delete."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.clock import iso
from carnet.domain.ins import find_ins, parse_ins
from carnet.domain.representatives import LEGAL_ROLES, Representative, RepresentativeInput
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import RELATED_PERSON_SEARCH
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.errors import InvalidInput, UnprocessableEntity
from carnet.fhir.openapi import LOCATION, Operation, Reply, body, resource
from carnet.fhir.search_params import check_known, references, strict_handling
from carnet.fhir.wire import fhir_response, read_resource

ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def render_related_person(r: Representative) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "id": r.representative_id,
        "meta": {"versionId": "1", "lastUpdated": iso(r.created_at)},
        "active": True,
        "patient": {"reference": f"Patient/{r.record_id}"},
        "identifier": [{"system": r.ins.system, "value": r.ins.value}],
        "relationship": [{"coding": [{"system": ROLE_SYSTEM, "code": r.relationship}]}],
    }


def parse_related_person(resource: dict[str, Any], *, allow_test: bool) -> RepresentativeInput:
    idents = resource.get("identifier")
    ident = find_ins(idents) if isinstance(idents, list) else None
    if ident is None:
        raise UnprocessableEntity(
            "the representative is identified by their INS", expression="RelatedPerson.identifier"
        )
    ins = parse_ins(
        str(ident.get("system") or ""),
        str(ident.get("value") or ""),
        allow_test=allow_test,
        field="RelatedPerson.identifier",
    )
    relationships = resource.get("relationship")
    codes = [
        c.get("code")
        for rel in (relationships if isinstance(relationships, list) else [])
        if isinstance(rel, dict) and isinstance(rel.get("coding"), list)
        for c in rel["coding"]
        if isinstance(c, dict)
    ]
    role = next((c for c in codes if isinstance(c, str) and c in LEGAL_ROLES), None)
    if role is None:
        raise UnprocessableEntity(
            "relationship must say a legal representative (v3-RoleCode GUARD, PRN, MTH, FTH)",
            expression="RelatedPerson.relationship",
        )
    return RepresentativeInput(ins, role)


async def create_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    settings = settings_of(request)
    resource = await read_resource(request, settings.max_upload_bytes, "RelatedPerson")
    patient = resource.get("patient")
    ref = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(ref, str) or "Patient/" not in ref or not ref.rsplit("Patient/", 1)[1]:
        raise InvalidInput(
            "RelatedPerson.patient must reference Patient/<id>", expression="RelatedPerson.patient"
        )
    given = parse_related_person(resource, allow_test=settings.allow_test_ins)
    body = render_related_person(
        await scope.representatives.add(ref.rsplit("Patient/", 1)[1], given)
    )
    return fhir_response(
        body, status=201, headers={"Location": f"{base_url(request)}/RelatedPerson/{body['id']}"}
    )


async def search_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    p = request.query_params
    ignored = check_known(
        p, RELATED_PERSON_SEARCH, "RelatedPerson", strict=strict_handling(request)
    )
    ids = [i for group in references(p, "patient", "Patient") for i in group]
    if not ids:
        raise InvalidInput("RelatedPerson search needs patient", expression="patient")
    found = [render_related_person(r) for rid in ids for r in await scope.representatives.list(rid)]
    base = base_url(request)
    return fhir_response(
        searchset(
            self_url=page_url(f"{base}/RelatedPerson", p, None, ignored),
            next_url=None,
            total=len(found),
            matches=[(f"{base}/RelatedPerson/{r['id']}", orjson.dumps(r)) for r in found],
            ignored=ignored,
        )
    )


async def delete_related_person(request: Request) -> Response:
    scope = await scope_of(request)
    await scope.representatives.remove(request.path_params["id"])
    return Response(status_code=204)


CREATE = Operation(
    "Name a legal representative (create RelatedPerson)",
    {
        201: resource("RelatedPerson", "the representative named", Location=LOCATION),
        400: None,
        404: None,
        409: None,
        413: None,
        422: None,
    },
    body=body("RelatedPerson"),
)
SEARCH = Operation(
    "A record's legal representatives (search RelatedPerson)",
    {200: resource("Bundle", "a searchset Bundle of RelatedPersons"), 404: None},
    search=RELATED_PERSON_SEARCH,
)
DELETE = Operation(
    "Remove a legal representative (delete RelatedPerson)",
    {204: Reply("removed"), 404: None},
)
