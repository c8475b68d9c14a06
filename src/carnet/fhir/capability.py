"""GET /fhir/metadata: the CapabilityStatement (FHIR R4 §3.1.0.13 "capabilities";
http://hl7.org/fhir/R4/http.html#capabilities). It declares only what works; a test checks
every declared interaction and search parameter against the routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from carnet import __version__
from carnet.fhir.context import base_url
from carnet.fhir.wire import fhir_response

PATIENT_SEARCH = {
    "identifier": "token",
    "family": "string",
    "given": "string",
    "birthdate": "date",
    "_id": "token",
}
DOCREF_SEARCH = {
    "patient": "reference",
    "patient.identifier": "token",
    "identifier": "token",
    "_id": "token",
    "type": "token",
    "category": "token",
    "date": "date",
    "period": "date",
    "status": "token",
    "author.identifier": "token",
    "setting": "token",
    "facility": "token",
    "format": "token",
    "security-label": "token",
    "archived": "token",  # carnet's name for isArchived, kept as an alias
    # IHE MHD 4.2.3 ITI-67 and the PDSm guide (docs/fhir.md "Search parameters (ITI-67)")
    "creation": "date",
    "author.given": "string",
    "author.family": "string",
    "author": "reference",
    "subject": "reference",
    "event": "token",
    "related": "reference",
    "relatesto": "reference",
    "period-start": "date",
    "period-end": "date",
    "_lastUpdated": "date",
    "isArchived": "token",
}
LIST_SEARCH = {
    "patient": "reference",
    "patient.identifier": "token",
    "code": "token",
    "date": "date",
    "identifier": "token",
    "source.identifier": "token",  # carnet's name for sourceId, kept as an alias
    "status": "token",
    # IHE MHD 4.2.3 ITI-66 and the PDSm guide (docs/fhir.md "Search parameters (ITI-66)")
    "designationType": "token",
    "sourceId": "token",
    "source.given": "string",
    "source.family": "string",
    "title": "string",
    "source": "reference",
    "authorOrg": "reference",
    "isArchived": "token",
}

AUDIT_SEARCH = {
    "patient": "reference",
    "date": "date",
    "action": "token",
    "subtype": "token",
    "outcome": "token",
    "agent.identifier": "token",
    "entity": "reference",
}


def _params(spec: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": n, "type": t} for n, t in spec.items()]


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "kind": "instance",
        "software": {"name": "carnet", "version": __version__},
        "implementation": {"description": "carnet DMP host", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "instantiates": [
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
        ],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "Bearer JWT (see docs/tokens.md)",
                },
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {
                        "type": "Patient",
                        "profile": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins",
                        "interaction": [
                            {"code": c}
                            for c in (
                                "read",
                                "vread",
                                "update",
                                "create",
                                "delete",
                                "search-type",
                                "history-instance",
                            )
                        ],
                        "versioning": "versioned-update",
                        "conditionalCreate": False,
                        "searchParam": _params(PATIENT_SEARCH),
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            }
                        ],
                    },
                    {
                        "type": "DocumentReference",
                        "supportedProfile": [
                            "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference",
                            "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-simplified-publish",
                        ],
                        "interaction": [
                            {"code": c}
                            for c in (
                                "read",
                                "vread",
                                "update",
                                "create",
                                "search-type",
                                "history-instance",
                            )
                        ],
                        "versioning": "versioned-update",
                        "conditionalCreate": True,
                        "searchInclude": ["DocumentReference:subject"],
                        "searchParam": _params(DOCREF_SEARCH),
                    },
                    {
                        "type": "List",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": _params(LIST_SEARCH),
                    },
                    {
                        "type": "RelatedPerson",
                        "interaction": [{"code": c} for c in ("create", "delete", "search-type")],
                        "searchParam": _params({"patient": "reference"}),
                    },
                    {
                        "type": "Consent",
                        "interaction": [
                            {"code": c}
                            for c in ("read", "create", "update", "delete", "search-type")
                        ],
                        "searchParam": _params(
                            {"patient": "reference", "patient.identifier": "token"}
                        ),
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": _params(AUDIT_SEARCH),
                    },
                    {
                        "type": "Binary",
                        "interaction": [{"code": "read"}, {"code": "create"}],
                    },
                ],
            }
        ],
    }


async def metadata(request: Request) -> Response:
    return fhir_response(capability_statement(base_url(request)))
