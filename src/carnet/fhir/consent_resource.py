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

from typing import Any

import orjson

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import iso
from carnet.domain.consents import (
    Consent,
    ConsentActorKind,
    ConsentDecision,
    ConsentInput,
    ConsentStatus,
    EmergencyConsentView,
    StoredConsent,
)
from carnet.domain.content import Representation
from carnet.domain.professionals import STRUCTURE_SYSTEM, check_idnatps, check_structure
from carnet.domain.records import EmergencyPurpose, PatientRef
from carnet.fhir.errors import InvalidInput, UnprocessableEntity

FHIR_JSON = "application/fhir+json"

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
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
POLICY_RULES = {
    "permit": {"coding": [{"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}]},
    "deny": {"coding": [{"system": ACT_CODE, "code": "OPTOUT", "display": "opt-out"}]},
}
"""R4 Consent needs a policy or a policyRule (invariant ppc-1): the patient's decision, as the
R4 examples give it (v3-ActCode OPTIN / OPTOUT)."""
ACTOR_ROLE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "PRCP",
            "display": "primary information recipient",
        }
    ]
}
"""R4 ``Consent.provision.actor.role`` (1..1): the professional or care team a decision is
about receives (or is denied) the record's information."""


def parse_consent(resource: dict[str, Any], patient: PatientRef) -> ConsentInput:
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
        return ConsentInput(
            patient,
            ConsentDecision(decision),
            ConsentStatus(status),
            purpose=EmergencyPurpose(purpose),
            source=Representation(FHIR_JSON, orjson.dumps(resource)),
        )
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
    return ConsentInput(
        patient,
        ConsentDecision(decision),
        ConsentStatus(status),
        actor_kind=ConsentActorKind(kind),
        actor_system=system,
        actor_value=value,
        source=Representation(FHIR_JSON, orjson.dumps(resource)),
    )


def _actor_identifier(actor_id: str) -> dict[str, str]:
    kind, _, value = actor_id.partition(":")
    if kind == "rpps":
        return {"system": RPPS_SYSTEM, "value": value}
    if kind == "ins":
        return {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": value}
    return {"value": actor_id}


def render_consent(consent: Consent) -> dict[str, Any]:
    """The Consent served: an authorisation or a block (the client's own resource with carnet's
    fields set), or one of the record's emergency consents."""
    if isinstance(consent, EmergencyConsentView):
        return _emergency(consent)
    return _stored(consent)


def _stored(c: StoredConsent) -> dict[str, Any]:
    if c.source is not None and c.source.media_type == FHIR_JSON:
        out: dict[str, Any] = orjson.loads(c.source.data)
    else:
        system = c.actor_system or RPPS_SYSTEM
        out = {
            "resourceType": "Consent",
            "provision": {
                "type": c.decision.value,
                "actor": [
                    {"reference": {"identifier": {"system": system, "value": c.actor_value}}}
                ],
            },
        }
    last_updated = iso(c.last_updated)
    out["id"] = c.consent_id
    out["meta"] = {
        **(out.get("meta") or {}),
        "versionId": str(c.version_id),
        "lastUpdated": last_updated,
    }
    out["status"] = c.status.value
    _r4_required(out, c.decision.value)
    out["patient"] = {"reference": f"Patient/{c.record_id}"}
    out.setdefault("dateTime", iso(c.created_at))
    out["performer"] = [{"identifier": _actor_identifier(c.recorded_by)}]
    return out


def _r4_required(out: dict[str, Any], decision: str) -> None:
    """What FHIR R4 requires of a Consent and a client may have left out: ``scope`` (1..1),
    ``category`` (1..*), a ``policy`` or ``policyRule`` (ppc-1), each ``provision.actor``'s
    ``role`` (1..1)."""
    if not out.get("scope"):
        out["scope"] = SCOPE
    if not out.get("category"):
        out["category"] = CATEGORY
    if not out.get("policy") and not out.get("policyRule"):
        out["policyRule"] = POLICY_RULES[decision]
    provision = out.get("provision")
    if isinstance(provision, dict) and provision.get("actor"):
        provision["actor"] = [
            {"role": ACTOR_ROLE, **a} if isinstance(a, dict) and not a.get("role") else a
            for a in provision["actor"]
        ]


def _emergency(v: EmergencyConsentView) -> dict[str, Any]:
    """The emergency consents live on the record; they are shown as Consents."""
    purpose = v.purpose.value
    system = CARNET_PURPOSE if purpose == "MASKED" else ACT_REASON
    last_updated = iso(v.last_updated)
    return {
        "resourceType": "Consent",
        "id": v.consent_id,
        "meta": {"versionId": str(v.version_id), "lastUpdated": last_updated},
        "status": "active",
        "scope": SCOPE,
        "category": CATEGORY,
        "patient": {"reference": f"Patient/{v.record_id}"},
        "dateTime": last_updated,
        "policyRule": POLICY_RULES["permit" if v.allowed else "deny"],
        "provision": {
            "type": "permit" if v.allowed else "deny",
            "purpose": [{"system": system, "code": purpose}],
        },
    }


def require_patient_ref(ref: object) -> Any:
    if not isinstance(ref, dict):
        raise InvalidInput("Consent.patient is required", expression="Consent.patient")
    return ref
