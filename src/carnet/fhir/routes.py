"""The FHIR router: one route per interaction, each implemented in its own module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from carnet.fhir import (
    audit_search,
    binary_create,
    bundle_read,
    capability,
    consent,
    docref_patch,
    docref_read,
    docref_search,
    docref_update,
    iti65,
    iti68,
    iti105,
    list_search,
    patient_create,
    patient_delete,
    patient_everything,
    patient_read,
    patient_search,
    patient_update,
    related_person,
)
from carnet.fhir.openapi import Operation

Handler = Callable[[Request], Awaitable[Response]]


def fhir_router() -> APIRouter:
    """Every FHIR route, each with its handler's description for the API's description
    (carnet/fhir/openapi.py): ``add`` takes no route without one."""
    r = APIRouter(prefix="/fhir")

    def add(
        path: str, endpoint: Handler, method: str, described: Operation, *, listed: bool = True
    ) -> None:
        r.add_api_route(
            path,
            endpoint,
            methods=[method],
            include_in_schema=listed,
            **described.route_args(r.prefix + path),
        )

    # the hot paths first: routes are tried in order (ITI-68, ITI-67, ITI-65)
    add("/Binary/{id}", iti68.retrieve, "GET", iti68.RETRIEVE)
    add("/DocumentReference", docref_search.search_docref, "GET", docref_search.SEARCH)
    add(
        "/DocumentReference/_search",
        docref_search.search_docref,
        "POST",
        docref_search.SEARCH_POST,
    )
    add("", iti65.provide_document_bundle, "POST", iti65.PROVIDE)
    add("/metadata", capability.metadata, "GET", capability.METADATA)
    add("/", iti65.provide_document_bundle, "POST", iti65.PROVIDE, listed=False)
    add("/Patient", patient_create.create_patient, "POST", patient_create.CREATE)
    add("/Patient", patient_search.search_patient, "GET", patient_search.SEARCH)
    add("/Patient/{id}", patient_read.read_patient, "GET", patient_read.READ)
    add("/Patient/{id}", patient_update.update_patient, "PUT", patient_update.UPDATE)
    add("/Patient/{id}", patient_delete.destroy_patient, "DELETE", patient_delete.DESTROY)
    add("/Patient/{id}/_history", patient_read.patient_history, "GET", patient_read.HISTORY)
    add(
        "/Patient/{id}/$everything",
        patient_everything.everything,
        "GET",
        patient_everything.EVERYTHING,
    )
    add("/Patient/{id}/_history/{vid}", patient_read.read_patient, "GET", patient_read.VREAD)
    add("/DocumentReference", iti105.simplified_publish, "POST", iti105.PUBLISH)
    add("/DocumentReference/{id}", docref_read.read_docref, "GET", docref_read.READ)
    add("/DocumentReference/{id}", docref_update.update_docref, "PUT", docref_update.UPDATE)
    add("/DocumentReference/{id}", docref_patch.patch_docref, "PATCH", docref_patch.PATCH)
    add(
        "/DocumentReference",
        docref_update.conditional_update_docref,
        "PUT",
        docref_update.CONDITIONAL_UPDATE,
    )
    add(
        "/DocumentReference",
        docref_patch.conditional_patch_docref,
        "PATCH",
        docref_patch.CONDITIONAL_PATCH,
    )
    add(
        "/DocumentReference/{id}/_history",
        docref_read.docref_history,
        "GET",
        docref_read.HISTORY,
    )
    add(
        "/DocumentReference/{id}/_history/{vid}",
        docref_read.read_docref,
        "GET",
        docref_read.VREAD,
    )
    add("/List", list_search.search_list, "GET", list_search.SEARCH)
    add("/List/_search", list_search.search_list, "POST", list_search.SEARCH_POST)
    add("/List/{id}", list_search.read_list, "GET", list_search.READ)
    add("/Binary", binary_create.create_binary, "POST", binary_create.CREATE)
    add("/Bundle/{id}", bundle_read.read_bundle, "GET", bundle_read.READ)
    add("/AuditEvent", audit_search.search_audit_event, "GET", audit_search.SEARCH)
    add("/RelatedPerson", related_person.create_related_person, "POST", related_person.CREATE)
    add("/RelatedPerson", related_person.search_related_person, "GET", related_person.SEARCH)
    add(
        "/RelatedPerson/{id}",
        related_person.delete_related_person,
        "DELETE",
        related_person.DELETE,
    )
    add("/Consent", consent.create_consent, "POST", consent.CREATE)
    add("/Consent", consent.search_consent, "GET", consent.SEARCH)
    add("/Consent/{id}", consent.read_consent, "GET", consent.READ)
    add("/Consent/{id}", consent.update_consent, "PUT", consent.UPDATE)
    add("/Consent/{id}", consent.delete_consent, "DELETE", consent.DELETE)
    return r
