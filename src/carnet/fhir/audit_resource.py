"""A trace as a FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html; docs/traces.md).

- ``type``: DICOM 110110 "Patient Record" for events on a record, ``rest`` otherwise;
  ``subtype``: our action code (``document.read``…), ``action``: C R U D E.
- ``outcome``: ``0`` (success) when allowed, ``4`` (minor failure) when denied; ``outcomeDesc``
  the rule that denied.
- ``agent``: the person who acted: ``who.identifier`` their RPPS (professionals) or INS
  (patients), ``altId`` our actor id, ``role`` the TRE_G15 profession, ``purposeOfUse`` the
  TRE_R248 access mode with the stated reason as its text, the structure in an extension.
- ``source``: carnet; ``entity``: the Patient (the record) and the DocumentReference when there
  is one; ``entity.detail`` carries the rule that decided and the detail text.
- extension ``dmp-audit-chain``: ``seq``, ``prevHash``, ``hash``, so that a reader can check the
  chain of their record; left out of a trace shown in part (carnet.domain.trace_view) and of
  traces tied to no record.
- a trace about a document hidden from the reader for now names no document: its entity says
  only that (``what.display``).
"""

from __future__ import annotations

from typing import Any

import orjson

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import iso
from carnet.domain.ins import Ins
from carnet.domain.trace_view import REFUSED
from carnet.domain.traces import StoredEvent

ACTION_SYSTEM = "https://carnet.health/fhir/CodeSystem/dmp-action"
FHIR_ACTION_SYSTEM = "http://hl7.org/fhir/audit-event-action"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"

# AuditEvent.action (C R U D E) from the verb that ends an action code (``document.read``);
# codes of traces written before carnet.domain.actions (``record.lifecycle``…) included
VERBS: dict[str, str] = {
    "create": "C",
    "objection": "C",
    "import": "C",
    "read": "R",
    "search": "R",
    "status": "R",
    "verify": "R",
    "update": "U",
    "replace": "U",
    "mask": "U",
    "lifecycle": "U",
    "write": "U",
    "authorise": "U",
    "block": "U",
    "revoke": "U",
    "emergency": "U",
    "designate": "U",
    "contact": "U",
    "withdraw": "D",
    "close": "U",
    "reopen": "U",
    "add": "U",
    "remove": "U",
    "attach": "U",
    "delete": "D",
    "destroy": "D",
    "purge": "D",
}


def fhir_action(action: str) -> str:
    """C, R, U, D or E (execute: anything else) for one of our action codes."""
    return VERBS.get(action.rsplit(".", 1)[-1], "E")


CARNET_EXT = "https://carnet.health/fhir/StructureDefinition"
CHAIN_EXT = f"{CARNET_EXT}/dmp-audit-chain"
STRUCTURE_EXT = f"{CARNET_EXT}/dmp-agent-structure"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
R248 = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"

_OUTCOMES = {"allow": "0", "deny": "4"}
HIDDEN_DOCUMENT = "a document hidden from you for now"


def _agent(ev: StoredEvent, record_ins: Ins | None) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        }
        if ev.action.endswith((".read", ".search"))
        else {
            "coding": [{"system": PARTICIPATION, "code": "AUT", "display": "author (originator)"}]
        },
    }
    kind, _, value = ev.actor_id.partition(":")
    who: dict[str, Any] = {"display": ev.actor_id}
    if kind == "rpps":
        who["identifier"] = {"system": RPPS_SYSTEM, "value": value}
    elif kind == "ins":
        identifier: dict[str, str] = {"value": value}
        if record_ins is not None and record_ins.value == value:
            identifier["system"] = f"urn:oid:{record_ins.oid}"
        who["identifier"] = identifier
    agent["who"] = who
    agent["altId"] = ev.actor_id
    roles: list[dict[str, Any]] = []
    if ev.profession:
        roles.append({"coding": [{"system": G15, "code": ev.profession}]})
    if ev.actor_kind == "patient":
        roles.append({"coding": [{"system": ROLE_CLASS, "code": "PAT", "display": "patient"}]})
    if roles:
        agent["role"] = roles
    agent["requestor"] = True
    if ev.mode:
        purpose: dict[str, Any] = {"coding": [{"system": R248, "code": ev.mode}]}
        if ev.reason:
            purpose["text"] = ev.reason
        agent["purposeOfUse"] = [purpose]
    if ev.structure:
        agent["extension"] = [{"url": STRUCTURE_EXT, "valueIdentifier": {"value": ev.structure}}]
    return agent


def _details(ev: StoredEvent) -> list[dict[str, str]]:
    out = []
    if ev.rule:
        out.append({"type": "rule", "valueString": ev.rule})
    if ev.detail:
        out.append({"type": "detail", "valueString": ev.detail})
    return out


def _entities(ev: StoredEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if ev.record_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{ev.record_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if ev.doc_id:
        entities.append(
            {
                "what": {"reference": f"DocumentReference/{ev.doc_id}"},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
            }
        )
    elif ev.hidden:  # about a document the reader may not read now: neither named nor counted
        entities.append(
            {
                "what": {"display": HIDDEN_DOCUMENT},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
                "description": HIDDEN_DOCUMENT,
            }
        )
    details = _details(ev)
    if details:
        if entities:
            entities[-1]["detail"] = details
        else:
            entities.append({"detail": details})
    return entities


def render_audit_event(ev: StoredEvent, record_ins: Ins | None = None) -> dict[str, Any]:
    """The AuditEvent of ``ev``; ``record_ins`` is the INS of its record (to name a patient who
    acts on their own record with the right INS system)."""
    on_record = bool(ev.record_id)
    body: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": ev.event_id,
        "meta": {"lastUpdated": iso(ev.recorded_at)},
    }
    if not ev.partial and on_record:  # a trace shown in part, or tied to no record: no chain
        body["extension"] = [
            {
                "url": CHAIN_EXT,
                "extension": [
                    {"url": "seq", "valueInteger": ev.seq},
                    {"url": "prevHash", "valueString": ev.prev_hash},
                    {"url": "hash", "valueString": ev.hash},
                ],
            }
        ]
    body |= {
        "type": {"system": DCM, "code": "110110", "display": "Patient Record"}
        if on_record
        else {"system": AUDIT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [{"system": ACTION_SYSTEM, "code": ev.action}],
        "action": fhir_action(ev.action),
        "recorded": iso(ev.recorded_at),
        "outcome": _OUTCOMES.get(ev.outcome, "8"),
    }
    if ev.outcome != "allow" and ev.rule == REFUSED:
        body["outcomeDesc"] = "refused, or no such resource"
    elif ev.outcome != "allow" and ev.rule:
        body["outcomeDesc"] = f"denied by rule {ev.rule}"
    body["agent"] = [_agent(ev, record_ins)]
    body["source"] = {
        "observer": {"display": "carnet"},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities = _entities(ev)
    if entities:
        body["entity"] = entities
    return body


def audit_event_json(ev: StoredEvent, record_ins: Ins | None = None) -> bytes:
    return orjson.dumps(render_audit_event(ev, record_ins))
