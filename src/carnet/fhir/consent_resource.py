"""Consent ↔ authorisations, blocks and emergency consents (dmp.md §2-§3, TD0.3; FHIR R4
Consent, http://hl7.org/fhir/R4/consent.html). The contract, documented in docs/consents.md:

- authorise a professional: ``provision.type = permit`` and ``provision.actor`` naming the
  professional by RPPS (``urn:oid:1.2.250.1.71.4.2.1``); a care team (presumed authorised once
  the patient was informed, R1111-46): the actor names a structure (``urn:oid:1.2.250.1.71.4.2.2``);
- block a professional: the same with ``deny``;
- revoke: ``DELETE`` or ``status: inactive``;
- emergency consents: ``provision.purpose`` ``ETREAT`` (centre 15), ``BTG`` (bris de glace) or
  ``MASKED`` (masked documents in an emergency), ``permit`` or ``deny``, no actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.professionals import STRUCTURE_SYSTEM, check_idnatps, check_structure
from carnet.errors import InvalidInput, UnprocessableEntity

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CARNET_PURPOSE = "https://carnet.health/fhir/CodeSystem/dmp-emergency-purpose"
PURPOSES = {"ETREAT": "centre15", "BTG": "bris_de_glace", "MASKED": "masked"}
SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}
CATEGORY = [
    {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}
]


@dataclass(frozen=True, slots=True)
class ConsentInput:
    decision: str  # permit | deny
    status: str  # active | inactive
    purpose: str | None  # ETREAT | BTG | MASKED for an emergency consent
    actor_kind: str | None  # professional | structure
    actor_system: str | None
    actor_value: str | None
    patient: Any  # the Reference to the patient


def parse_consent(resource: dict[str, Any]) -> ConsentInput:
    status = resource.get("status")
    if status not in ("active", "inactive"):
        raise UnprocessableEntity(
            "Consent.status must be active or inactive", expression="Consent.status"
        )
    provision = resource.get("provision")
    if not isinstance(provision, dict):
        raise UnprocessableEntity("Consent.provision is required", expression="Consent.provision")
    decision = provision.get("type")
    if decision not in ("permit", "deny"):
        raise UnprocessableEntity(
            "Consent.provision.type must be permit or deny", expression="Consent.provision.type"
        )
    purpose = None
    purposes = provision.get("purpose") or []
    if purposes:
        if len(purposes) != 1 or not isinstance(purposes[0], dict):
            raise UnprocessableEntity(
                "one provision.purpose per emergency consent",
                expression="Consent.provision.purpose",
            )
        purpose = purposes[0].get("code")
        if purpose not in PURPOSES:
            raise UnprocessableEntity(
                f"provision.purpose {purpose!r} is not an emergency consent of carnet "
                "(ETREAT centre 15, BTG bris de glace, MASKED masked documents)",
                expression="Consent.provision.purpose",
            )
    actors = provision.get("actor") or []
    if purpose is not None:
        if actors:
            raise UnprocessableEntity(
                "an emergency consent names no actor", expression="Consent.provision.actor"
            )
        return ConsentInput(decision, status, purpose, None, None, None, resource.get("patient"))
    if len(actors) != 1 or not isinstance(actors[0], dict):
        raise UnprocessableEntity(
            "an authorisation or a block names exactly one professional (or care team) in "
            "provision.actor",
            expression="Consent.provision.actor",
        )
    ref = actors[0].get("reference")
    ident = ref.get("identifier") if isinstance(ref, dict) else None
    if not isinstance(ident, dict) or not ident.get("value"):
        raise UnprocessableEntity(
            "provision.actor.reference must name the professional by identifier "
            f"({RPPS_SYSTEM} for RPPS)",
            expression="Consent.provision.actor[0].reference.identifier",
        )
    system = ident.get("system")
    where = "Consent.provision.actor[0].reference.identifier"
    if system == RPPS_SYSTEM:
        value = check_idnatps(str(ident["value"]), field=where)
        kind = "professional"
    elif system == STRUCTURE_SYSTEM:
        if decision == "deny":
            raise UnprocessableEntity(
                "a block names a professional, not a structure", expression=where
            )
        value = check_structure(str(ident["value"]), field=where)
        kind = "structure"
    else:
        raise UnprocessableEntity(
            f"provision.actor identifier system {system!r} is not RPPS ({RPPS_SYSTEM}) nor a "
            f"structure ({STRUCTURE_SYSTEM})",
            expression=where,
        )
    return ConsentInput(decision, status, None, kind, system, value, resource.get("patient"))


def render_consent(
    resource: dict[str, Any],
    *,
    consent_id: str,
    record_id: str,
    version_id: int,
    last_updated: str,
    status: str,
    recorded_by: str,
) -> dict[str, Any]:
    out = dict(resource)
    out["id"] = consent_id
    out["meta"] = {
        **(out.get("meta") or {}),
        "versionId": str(version_id),
        "lastUpdated": last_updated,
    }
    out["status"] = status
    out.setdefault("scope", SCOPE)
    out.setdefault("category", CATEGORY)
    out["patient"] = {"reference": f"Patient/{record_id}"}
    out.setdefault("dateTime", last_updated)
    out["performer"] = [{"identifier": _actor_identifier(recorded_by)}]
    return out


def _actor_identifier(actor_id: str) -> dict[str, str]:
    kind, _, value = actor_id.partition(":")
    if kind == "rpps":
        return {"system": RPPS_SYSTEM, "value": value}
    if kind == "ins":
        return {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": value}
    return {"value": actor_id}


def emergency_consent(
    record_id: str, purpose: str, allowed: bool, last_updated: str, version_id: int
) -> dict[str, Any]:
    """The emergency consents live on the record; they are shown as Consents."""
    system = CARNET_PURPOSE if purpose == "MASKED" else ACT_REASON
    return {
        "resourceType": "Consent",
        "id": f"{record_id}-{purpose.lower()}",
        "meta": {"versionId": str(version_id), "lastUpdated": last_updated},
        "status": "active",
        "scope": SCOPE,
        "category": CATEGORY,
        "patient": {"reference": f"Patient/{record_id}"},
        "dateTime": last_updated,
        "provision": {
            "type": "permit" if allowed else "deny",
            "purpose": [{"system": system, "code": purpose}],
        },
    }


def purpose_of_id(consent_id: str) -> str | None:
    suffix = consent_id.rsplit("-", 1)[-1].upper()
    return suffix if suffix in PURPOSES and "-" in consent_id else None


def require_patient_ref(ref: object) -> Any:
    if not isinstance(ref, dict):
        raise InvalidInput("Consent.patient is required", expression="Consent.patient")
    return ref
