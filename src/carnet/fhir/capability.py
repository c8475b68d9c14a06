"""GET /fhir/metadata: the CapabilityStatement (FHIR R4 §3.1.0.13 "capabilities";
http://hl7.org/fhir/R4/http.html#capabilities).

It is drawn from what is registered (the routes, passed in) and from the search tables below,
so that it declares only what works: a resource's interactions are its routes, its search
parameters those its search handler parses (each with its canonical definition: HL7's, IHE
MHD's or ANS PDSm's, as the PDSm "GestionnaireDePartageDeDocuments" statement names them), PATCH
and its ``patchFormat`` only when a PATCH route exists. What routes cannot say (profiles,
versioning, conditional create, includes) is in :data:`RESOURCES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from carnet import __version__
from carnet.fhir.context import base_url
from carnet.fhir.openapi import Operation, resource
from carnet.fhir.search_spec import FHIR_SP, MHD_SP, PDSM_SP, SearchParam, table
from carnet.fhir.wire import check_accept, fhir_response

S = SearchParam

RESOURCE_ID = S("_id", "token", f"{FHIR_SP}Resource-id", "the resource id")

PATIENT_SEARCH = table(
    S(
        "identifier",
        "token",
        f"{FHIR_SP}Patient-identifier",
        "the INS (system|value): a professional who names a record by its exact INS learns its "
        "state and their own access",
    ),
    S("family", "string", f"{FHIR_SP}individual-family", "the birth or used family name"),
    S("given", "string", f"{FHIR_SP}individual-given", "a given name"),
    S("birthdate", "date", f"{FHIR_SP}individual-birthdate", "the date of birth"),
    RESOURCE_ID,
)
DOCREF_SEARCH = table(
    S(
        "patient",
        "reference",
        f"{FHIR_SP}clinical-patient",
        "the record (Patient/<id>) the document belongs to",
    ),
    S(
        "patient.identifier",
        "token",
        f"{FHIR_SP}clinical-patient",
        "the patient's INS (system|value), chained on patient",
    ),
    S(
        "identifier",
        "token",
        f"{FHIR_SP}clinical-identifier",
        "the document's uniqueId (masterIdentifier)",
    ),
    RESOURCE_ID,
    S("type", "token", f"{FHIR_SP}clinical-type", "the document's type (typeCode)"),
    S(
        "category",
        "token",
        f"{FHIR_SP}DocumentReference-category",
        "the document's class (classCode)",
    ),
    S(
        "date",
        "date",
        f"{FHIR_SP}DocumentReference-date",
        "when the DocumentReference was made (submission time)",
    ),
    S(
        "period",
        "date",
        f"{FHIR_SP}DocumentReference-period",
        "the time of the service the document describes",
    ),
    S(
        "status",
        "token",
        f"{FHIR_SP}DocumentReference-status",
        "current, superseded or entered-in-error",
    ),
    S(
        "author.identifier",
        "token",
        f"{FHIR_SP}DocumentReference-author",
        "the author's identifier (e.g. the RPPS IdNatPS), chained on author",
    ),
    S(
        "setting",
        "token",
        f"{FHIR_SP}DocumentReference-setting",
        "the practice setting (practiceSettingCode)",
    ),
    S(
        "facility",
        "token",
        f"{FHIR_SP}DocumentReference-facility",
        "the facility type (healthcareFacilityTypeCode)",
    ),
    S("format", "token", f"{FHIR_SP}DocumentReference-format", "the format (formatCode)"),
    S(
        "security-label",
        "token",
        f"{FHIR_SP}DocumentReference-security-label",
        "a confidentiality or visibility label",
    ),
    S(
        "archived",
        "token",
        f"{PDSM_SP}PDSm-isArchived",
        "true: the archived documents, false: the others (carnet's name for PDSm isArchived)",
    ),
    S(
        "isArchived",
        "token",
        f"{PDSM_SP}PDSm-isArchived",
        "true: the archived documents, false: the others; absent: archived ones are left out",
    ),
    S(
        "creation",
        "date",
        f"{MHD_SP}DocumentReference-Creation",
        "when the document was written (attachment.creation, creationTime)",
    ),
    S(
        "author",
        "reference",
        f"{FHIR_SP}DocumentReference-author",
        "an author by its identifier (Practitioner?identifier=system|value, or system|value)",
    ),
    S(
        "author.given",
        "string",
        f"{FHIR_SP}DocumentReference-author",
        "an author person's given name (starts with, case and accents ignored)",
    ),
    S(
        "author.family",
        "string",
        f"{FHIR_SP}DocumentReference-author",
        "an author person's family name (starts with, case and accents ignored)",
    ),
    S(
        "subject",
        "reference",
        f"{FHIR_SP}DocumentReference-subject",
        "the record (Patient/<id>), as patient",
    ),
    S("event", "token", f"{FHIR_SP}DocumentReference-event", "an act code (context.event)"),
    S(
        "related",
        "reference",
        f"{FHIR_SP}DocumentReference-related",
        "a related reference (context.related, e.g. an encounter or order identifier)",
    ),
    S(
        "relatesto",
        "reference",
        f"{FHIR_SP}DocumentReference-relatesto",
        "the document this one replaces (DocumentReference/<id>)",
    ),
    S(
        "period-start",
        "date",
        f"{PDSM_SP}PDSm-DocumentReference-period-start",
        "the start of the act (context.period.start)",
    ),
    S(
        "period-end",
        "date",
        f"{PDSM_SP}PDSm-DocumentReference-period-end",
        "the end of the act (context.period.end)",
    ),
    S("_lastUpdated", "date", f"{FHIR_SP}Resource-lastUpdated", "when the entry last changed"),
)
LIST_SEARCH = table(
    S(
        "patient",
        "reference",
        f"{FHIR_SP}clinical-patient",
        "the record (Patient/<id>) the submission set belongs to",
    ),
    S(
        "patient.identifier",
        "token",
        f"{FHIR_SP}clinical-patient",
        "the patient's INS (system|value), chained on patient",
    ),
    S("code", "token", f"{FHIR_SP}clinical-code", "the List's kind (submissionset or folder)"),
    S("date", "date", f"{FHIR_SP}clinical-date", "when the submission set was submitted"),
    S(
        "identifier",
        "token",
        f"{FHIR_SP}clinical-identifier",
        "the submission set's uniqueId or entryUUID",
    ),
    S(
        "source.identifier",
        "token",
        f"{MHD_SP}List-SourceId",
        "the sourceId of the sending system (carnet's name for MHD sourceId)",
    ),
    S("status", "token", f"{FHIR_SP}List-status", "current"),
    S(
        "sourceId",
        "token",
        f"{MHD_SP}List-SourceId",
        "the sourceId of the sending system (a submission set's; no folder has one)",
    ),
    S(
        "designationType",
        "token",
        f"{MHD_SP}List-DesignationType",
        "the submission set's designation type (contentTypeCode)",
    ),
    S("source", "reference", f"{FHIR_SP}List-source", "the submission set's author, by identifier"),
    S(
        "source.given",
        "string",
        f"{FHIR_SP}List-source",
        "the submission set's author's given name (starts with, case and accents ignored)",
    ),
    S(
        "source.family",
        "string",
        f"{FHIR_SP}List-source",
        "the submission set's author's family name (starts with, case and accents ignored)",
    ),
    S(
        "title",
        "string",
        f"{FHIR_SP}List-title",
        "the List's title (starts with; matched sealed, never stored in clear)",
    ),
    S(
        "authorOrg",
        "reference",
        f"{PDSM_SP}PDSm-List-authorOrg",
        "the authoring organisation, by identifier",
    ),
    S(
        "isArchived",
        "token",
        f"{PDSM_SP}PDSm-isArchived",
        "true finds nothing (only documents are archived); false: every List",
    ),
)
AUDIT_SEARCH = table(
    S("patient", "reference", f"{FHIR_SP}AuditEvent-patient", "the record traced"),
    S("date", "date", f"{FHIR_SP}AuditEvent-date", "when the event happened"),
    S("action", "token", f"{FHIR_SP}AuditEvent-action", "C, R, U, D or E"),
    S("subtype", "token", f"{FHIR_SP}AuditEvent-subtype", "carnet's action (docs/traces.md)"),
    S("outcome", "token", f"{FHIR_SP}AuditEvent-outcome", "0 success, 4 refused, 8 failed"),
    S(
        "agent.identifier",
        "token",
        f"{FHIR_SP}AuditEvent-agent",
        "who acted (an RPPS IdNatPS or an INS), chained on agent",
    ),
    S(
        "entity",
        "reference",
        f"{FHIR_SP}AuditEvent-entity",
        "the DocumentReference or Patient the event concerns",
    ),
)
CONSENT_SEARCH = table(
    S("patient", "reference", f"{FHIR_SP}clinical-patient", "the record (Patient/<id>)"),
    S(
        "patient.identifier",
        "token",
        f"{FHIR_SP}clinical-patient",
        "the patient's INS (system|value), chained on patient",
    ),
)
RELATED_PERSON_SEARCH = table(
    S("patient", "reference", f"{FHIR_SP}RelatedPerson-patient", "the record (Patient/<id>)"),
)

SEARCH: dict[str, dict[str, SearchParam]] = {
    "Patient": PATIENT_SEARCH,
    "DocumentReference": DOCREF_SEARCH,
    "List": LIST_SEARCH,
    "AuditEvent": AUDIT_SEARCH,
    "Consent": CONSENT_SEARCH,
    "RelatedPerson": RELATED_PERSON_SEARCH,
}
"""Each resource type's search table (what its search handler parses)."""

MHD = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
CONDITIONAL_PATCH = (
    "http://hl7.org/fhir/5.0/StructureDefinition/"
    "extension-CapabilityStatement.rest.resource.conditionalPatch"
)
"""R5's ``conditionalPatch``, which R4 lacks, as an R4 extension (FHIR cross-version)."""

RESOURCES: dict[str, dict[str, Any]] = {
    "Patient": {
        "profile": f"{FR_CORE}fr-core-patient-ins",
        "supportedProfile": [f"{FR_CORE}fr-core-patient"],
    },
    "DocumentReference": {
        "profile": f"{PDSM}pdsm-comprehensive-document-reference",
        "supportedProfile": [
            f"{PDSM}pdsm-simplified-publish",
            f"{MHD}IHE.MHD.Comprehensive.DocumentReference",
            f"{MHD}IHE.MHD.SimplifiedPublish.DocumentReference",
        ],
        "conditionalCreate": True,  # ITI-105 If-None-Exist (iti105.py)
        "searchInclude": ["DocumentReference:subject"],
    },
    "List": {
        "profile": f"{PDSM}pdsm-submissionset-comprehensive",
        "supportedProfile": [
            f"{PDSM}pdsm-folder-comprehensive",
            f"{MHD}IHE.MHD.Comprehensive.SubmissionSet",
            f"{MHD}IHE.MHD.Comprehensive.Folder",
        ],
    },
}
"""What the routes cannot say: profiles, conditional create (kept only with a create route),
includes (only with a search route)."""

# (method, path under /fhir/{type}) → interaction
_INSTANCE = {
    ("GET", "/{id}"): "read",
    ("GET", "/{id}/_history/{vid}"): "vread",
    ("GET", "/{id}/_history"): "history-instance",
    ("PUT", "/{id}"): "update",
    ("PATCH", "/{id}"): "patch",
    ("DELETE", "/{id}"): "delete",
    ("POST", ""): "create",
    ("GET", ""): "search-type",
    ("POST", "/_search"): "search-type",
}
_ORDER = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "create",
    "search-type",
)
_PATH = re.compile(r"^/fhir/([A-Z][A-Za-z]+)(.*)$")


def _registered(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for route in routes
        for path in [getattr(route, "path", "")]
        if path.startswith("/fhir")
        for method in getattr(route, "methods", None) or ()
    }


def _resource(rtype: str, verbs: dict[str, set[str]]) -> dict[str, Any]:
    found = verbs.get(rtype, set())
    codes = [c for c in _ORDER if c in found]
    out: dict[str, Any] = {"type": rtype}
    facts = RESOURCES.get(rtype, {})
    for key in ("profile", "supportedProfile"):
        if key in facts:
            out[key] = facts[key]
    out["interaction"] = [{"code": c} for c in codes]
    if "update" in codes or "patch" in codes:
        out["versioning"] = "versioned-update"
    if "create" in codes and "conditionalCreate" in facts:
        out["conditionalCreate"] = facts["conditionalCreate"]
    if "conditional-update" in found:
        out["conditionalUpdate"] = True
    if "conditional-patch" in found:
        # R4 has no conditionalPatch: R5's element travels as its cross-version extension
        out["extension"] = [{"url": CONDITIONAL_PATCH, "valueBoolean": True}]
    if "search-type" in codes:
        if "searchInclude" in facts:
            out["searchInclude"] = facts["searchInclude"]
        out["searchParam"] = [
            {
                "name": p.name,
                "definition": p.definition,
                "type": p.type,
                "documentation": p.documentation,
            }
            for p in SEARCH.get(rtype, {}).values()
        ]
    if "everything" in found:
        out["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            }
        ]
    return out


def capability_statement(base: str, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The CapabilityStatement of a server whose routes are ``routes``."""
    registered = _registered(routes)
    verbs: dict[str, set[str]] = {}
    for method, path in registered:
        m = _PATH.match(path)
        if m is None:
            continue
        rtype, tail = m[1], m[2]
        code = _INSTANCE.get((method, tail))
        if tail == "/{id}/$everything" and method == "GET":
            code = "everything"
        elif tail == "" and method == "PATCH":
            code = "conditional-patch"
        elif tail == "" and method == "PUT":
            code = "conditional-update"
        if code is not None:
            verbs.setdefault(rtype, set()).add(code)
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-28",
        "kind": "instance",
        "software": {"name": "carnet", "version": __version__},
        "implementation": {"description": "carnet DMP host", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
    }
    if any(method == "PATCH" for method, _ in registered):
        statement["patchFormat"] = ["application/json-patch+json"]
    statement["instantiates"] = [
        "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
        "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
    ]
    rest: dict[str, Any] = {
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
    }
    if ("POST", "/fhir") in registered:
        rest["interaction"] = [
            {
                "code": "transaction",
                "documentation": f"{PDSM}pdsm-comprehensive-provide-document-bundle (ITI-65)",
            }
        ]
    rest["resource"] = [_resource(t, verbs) for t in sorted(verbs)]
    statement["rest"] = [rest]
    return statement


async def metadata(request: Request) -> Response:
    check_accept(request)  # served in JSON only: 406 to a client that accepts no JSON
    routes: tuple[BaseRoute, ...] = request.app.state.fhir_routes
    return fhir_response(capability_statement(base_url(request), routes))


METADATA = Operation(
    "The CapabilityStatement (FHIR capabilities)",
    {200: resource("CapabilityStatement", "what this server does")},
    description="Public: no token needed. Drawn from the registered routes and search tables.",
    public=True,
)
