"""The FHIR router: one route per interaction, each implemented in its own module."""

from __future__ import annotations

from fastapi import APIRouter

from carnet.fhir import (
    audit_search,
    binary_create,
    capability,
    consent,
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


def fhir_router() -> APIRouter:
    r = APIRouter(prefix="/fhir")
    add = r.add_api_route
    # the hot paths first: routes are tried in order (ITI-68, ITI-67, ITI-65)
    add("/Binary/{id}", iti68.retrieve, methods=["GET"])
    add("/DocumentReference", docref_search.search_docref, methods=["GET"])
    add("/DocumentReference/_search", docref_search.search_docref, methods=["POST"])
    add("", iti65.provide_document_bundle, methods=["POST"])
    add("/metadata", capability.metadata, methods=["GET"], include_in_schema=True)
    add("/", iti65.provide_document_bundle, methods=["POST"], include_in_schema=False)
    add("/Patient", patient_create.create_patient, methods=["POST"])
    add("/Patient", patient_search.search_patient, methods=["GET"])
    add("/Patient/{id}", patient_read.read_patient, methods=["GET"])
    add("/Patient/{id}", patient_update.update_patient, methods=["PUT"])
    add("/Patient/{id}", patient_delete.destroy_patient, methods=["DELETE"])
    add("/Patient/{id}/_history", patient_read.patient_history, methods=["GET"])
    add("/Patient/{id}/$everything", patient_everything.everything, methods=["GET"])
    add("/Patient/{id}/_history/{vid}", patient_read.read_patient, methods=["GET"])
    add("/DocumentReference", iti105.simplified_publish, methods=["POST"])
    add("/DocumentReference/{id}", docref_read.read_docref, methods=["GET"])
    add("/DocumentReference/{id}", docref_update.update_docref, methods=["PUT"])
    add("/DocumentReference/{id}/_history", docref_read.docref_history, methods=["GET"])
    add("/DocumentReference/{id}/_history/{vid}", docref_read.read_docref, methods=["GET"])
    add("/List", list_search.search_list, methods=["GET"])
    add("/List/_search", list_search.search_list, methods=["POST"])
    add("/List/{id}", list_search.read_list, methods=["GET"])
    add("/Binary", binary_create.create_binary, methods=["POST"])
    add("/AuditEvent", audit_search.search_audit_event, methods=["GET"])
    add("/RelatedPerson", related_person.create_related_person, methods=["POST"])
    add("/RelatedPerson", related_person.search_related_person, methods=["GET"])
    add("/RelatedPerson/{id}", related_person.delete_related_person, methods=["DELETE"])
    add("/Consent", consent.create_consent, methods=["POST"])
    add("/Consent", consent.search_consent, methods=["GET"])
    add("/Consent/{id}", consent.read_consent, methods=["GET"])
    add("/Consent/{id}", consent.update_consent, methods=["PUT"])
    add("/Consent/{id}", consent.delete_consent, methods=["DELETE"])
    return r
