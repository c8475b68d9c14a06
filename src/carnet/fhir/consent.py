"""Consent at /fhir/Consent (FHIR R4 Consent create, read, search, update, delete;
http://hl7.org/fhir/R4/consent.html): authorisations, blocks, care teams and emergency consents
(DMP TD0.3; contract in docs/consents.md and carnet/fhir/consent_resource.py)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from carnet.domain.records import PatientRef, RecordCriteria
from carnet.fhir.bundles import page_url, searchset
from carnet.fhir.capability import CONSENT_SEARCH
from carnet.fhir.consent_resource import parse_consent, render_consent, require_patient_ref
from carnet.fhir.context import base_url, scope_of, settings_of
from carnet.fhir.errors import InvalidInput
from carnet.fhir.openapi import ETAG, IF_MATCH, LOCATION, Operation, body, resource
from carnet.fhir.search_params import check_known, references, strict_handling, tokens
from carnet.fhir.submission import subject_ref
from carnet.fhir.validation import validate
from carnet.fhir.wire import etag, fhir_response, parse_if_match, read_resource


def _etag(body: dict[str, Any]) -> dict[str, str]:
    meta = body.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return {"ETag": etag(int(str(version)))} if str(version).isdigit() else {}


async def _read_consent(request: Request) -> tuple[dict[str, Any], PatientRef]:
    settings = settings_of(request)
    resource = await read_resource(request, settings.max_upload_bytes, "Consent")
    validate(resource)
    ref = require_patient_ref(resource.get("patient"))
    return resource, subject_ref(ref, "Consent.patient", allow_test=settings.allow_test_ins)


async def create_consent(request: Request) -> Response:
    scope = await scope_of(request)
    resource, patient = await _read_consent(request)
    body = render_consent(await scope.consents.create(parse_consent(resource, patient)))
    location = f"{base_url(request)}/Consent/{body['id']}"
    return fhir_response(body, status=201, headers={"Location": location, **_etag(body)})


async def read_consent(request: Request) -> Response:
    scope = await scope_of(request)
    body = render_consent(await scope.consents.read(request.path_params["id"]))
    return fhir_response(body, headers=_etag(body))


async def search_consent(request: Request) -> Response:
    scope = await scope_of(request)
    p = request.query_params
    ignored = check_known(p, CONSENT_SEARCH, "Consent", strict=strict_handling(request))
    ids = [i for group in references(p, "patient", "Patient") for i in group]
    idents = [t for group in tokens(p, "patient.identifier") for t in group]
    if idents:
        views = await scope.records.search(
            RecordCriteria(identifiers=[(t.system, t.code) for t in idents])
        )
        ids += [v.record.record_id for v in views]
    if not ids:
        raise InvalidInput(
            "Consent search needs patient or patient.identifier", expression="patient"
        )
    found = [render_consent(c) for c in await scope.consents.search(ids)]
    base = base_url(request)
    return fhir_response(
        searchset(
            self_url=page_url(f"{base}/Consent", p, None, ignored),
            next_url=None,
            total=len(found),
            matches=[(f"{base}/Consent/{c['id']}", orjson.dumps(c)) for c in found],
            ignored=ignored,
        )
    )


async def update_consent(request: Request) -> Response:
    scope = await scope_of(request)
    cid = request.path_params["id"]
    resource, patient = await _read_consent(request)
    if resource.get("id") not in (None, cid):
        raise InvalidInput(
            f"the resource id {resource.get('id')!r} does not match the URL",
            expression="Consent.id",
        )
    consent = await scope.consents.update(
        cid, parse_consent(resource, patient), parse_if_match(request.headers.get("if-match"))
    )
    body = render_consent(consent)
    return fhir_response(body, headers=_etag(body))


async def delete_consent(request: Request) -> Response:
    scope = await scope_of(request)
    body = render_consent(await scope.consents.revoke(request.path_params["id"]))
    return fhir_response(body, headers=_etag(body))


CREATE = Operation(
    "Record a consent (create Consent): an authorisation, a block, a care team, an emergency "
    "consent",
    {
        201: resource("Consent", "the consent recorded", Location=LOCATION, ETag=ETAG),
        400: None,
        404: None,
        409: None,
        413: None,
        422: None,
    },
    description="DMP TD0.3; docs/consents.md.",
    body=body("Consent"),
)
READ = Operation(
    "Read a Consent",
    {200: resource("Consent", "the Consent", ETag=ETAG), 404: None},
)
SEARCH = Operation(
    "A record's consents (search Consent)",
    {200: resource("Bundle", "a searchset Bundle of Consents"), 404: None},
    search=CONSENT_SEARCH,
)
UPDATE = Operation(
    "Update a Consent",
    {
        200: resource("Consent", "the Consent as updated", ETag=ETAG),
        400: None,
        404: None,
        409: None,
        412: None,
        413: None,
        422: None,
    },
    headers=(IF_MATCH,),
    body=body("Consent"),
)
DELETE = Operation(
    "Revoke a Consent (delete)",
    {200: resource("Consent", "the Consent as revoked", ETag=ETAG), 404: None, 409: None},
)
