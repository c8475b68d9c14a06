"""Patient ↔ record: FR Core "Patient INS" (https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html).

- the INS in ``identifier`` (INS-NIR ``urn:oid:1.2.250.1.213.1.4.8``, INS-NIA ``…4.9``; the
  INS-NIR de test ``…4.10`` where allowed);
- the identity reliability in the extension ``fr-core-identity-reliability`` (sub-extension
  ``identityStatus``, code ``VALI`` for a qualified identity);
- the birth place's INSEE code in ``patient-birthPlace`` (``valueAddress`` with the FR Core
  INSEE-code extension, or its ``district``/``postalCode`` holding the 5-character code);
- carnet's extensions: ``dmp-emergency-consents`` (read and written), ``dmp-record-status``,
  ``dmp-creation-consent`` (written).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import iso
from carnet.domain.content import Representation
from carnet.domain.errors import Rejected
from carnet.domain.ins import find_ins, parse_ins
from carnet.domain.professionals import professional_id, same_professional_id
from carnet.domain.records import (
    EmergencyChoices,
    Identity,
    PatientInput,
    PreferencesInput,
    Record,
    RecordState,
)
from carnet.fhir import extensions as X
from carnet.fhir.errors import UnprocessableEntity

FHIR_JSON = "application/fhir+json"

INSEE = re.compile(r"^(?:[0-9]{2}|2A|2B)[0-9]{3}$")
GENDERS = {"male", "female", "other", "unknown"}


def _identity_status(resource: dict[str, Any]) -> str | None:
    ext = X.find_extension(resource.get("extension"), X.FR_CORE_IDENTITY_RELIABILITY)
    if ext is None:
        return None
    status = X.find_extension(ext.get("extension"), "identityStatus")
    if status is None:
        raise UnprocessableEntity(
            "fr-core-identity-reliability has no identityStatus sub-extension",
            expression="Patient.extension:identityReliability.extension:identityStatus",
        )
    coding = status.get("valueCoding")
    if isinstance(coding, dict) and isinstance(coding.get("code"), str):
        return str(coding["code"])
    code = status.get("valueCode")
    if isinstance(code, str):
        return code
    raise UnprocessableEntity(
        "identityStatus must carry a valueCoding (fr-core-cs-v2-0445)",
        expression="Patient.extension:identityReliability.extension:identityStatus",
    )


def _birth_place(resource: dict[str, Any]) -> str | None:
    ext = X.find_extension(resource.get("extension"), X.BIRTH_PLACE)
    if ext is None:
        return None
    addr = ext.get("valueAddress")
    if not isinstance(addr, dict):
        raise UnprocessableEntity(
            "patient-birthPlace must carry a valueAddress",
            expression="Patient.extension:birthPlace",
        )
    insee = X.find_extension(addr.get("extension"), X.FR_CORE_INSEE_CODE)
    candidates: list[object] = []
    if insee is not None:
        coding = insee.get("valueCoding")
        candidates.append(
            coding.get("code") if isinstance(coding, dict) else insee.get("valueCode")
        )
    candidates += [addr.get("district"), addr.get("postalCode")]
    for value in candidates:
        if isinstance(value, str) and INSEE.match(value.upper()):
            return value.upper()
    raise UnprocessableEntity(
        "patient-birthPlace carries no 5-character INSEE code (e.g. 75056, 2A004, 99100)",
        expression="Patient.extension:birthPlace.valueAddress",
    )


def _official_name(resource: dict[str, Any]) -> tuple[str, str]:
    names = resource.get("name")
    if not isinstance(names, list) or not names:
        raise UnprocessableEntity(
            "the patient has no name (birth name and first names are INS traits)",
            expression="Patient.name",
        )
    chosen = next(
        (n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0]
    )
    family = chosen.get("family") if isinstance(chosen, dict) else None
    given = chosen.get("given") if isinstance(chosen, dict) else None
    if not isinstance(family, str) or not family.strip():
        raise UnprocessableEntity("the patient has no birth name", expression="Patient.name.family")
    if not isinstance(given, list) or not given or not all(isinstance(g, str) for g in given):
        raise UnprocessableEntity("the patient has no first name", expression="Patient.name.given")
    return family.strip(), " ".join(g.strip() for g in given)


def emergency_consents(resource: dict[str, Any]) -> EmergencyChoices | None:
    """The emergency consents the resource says (None, or a sub-extension left out: not said;
    the defaults, or the stored ones, hold)."""
    ext = X.find_extension(resource.get("extension"), X.EMERGENCY_CONSENTS)
    if ext is None:
        return None
    values: dict[str, bool] = {}
    for key in ("centre15", "brisDeGlace", "maskedDocuments"):
        sub = X.find_extension(ext.get("extension"), key)
        if sub is None:
            continue
        value = sub.get("valueBoolean")
        if not isinstance(value, bool):
            raise UnprocessableEntity(
                f"dmp-emergency-consents.{key} must be a valueBoolean",
                expression=f"Patient.extension:emergencyConsents.extension:{key}",
            )
        values[key] = value
    return EmergencyChoices(
        centre15=values.get("centre15"),
        bris_de_glace=values.get("brisDeGlace"),
        masked=values.get("maskedDocuments"),
    )


def treating_physician_of(resource: dict[str, Any], *, strict: bool = True) -> str | None:
    """The médecin traitant: ``Patient.generalPractitioner`` naming a professional by RPPS or
    IdNatPS (logical reference by identifier, or a contained Practitioner), as an actor id in
    the one form carnet compares (``rpps:<IdNatPS>``; 422 for an identifier that names no
    professional). ``strict=False`` reads a resource stored before: as written when invalid."""
    refs = resource.get("generalPractitioner")
    if not refs:
        return None
    if not isinstance(refs, list):
        raise UnprocessableEntity(
            "generalPractitioner must be a list", expression="Patient.generalPractitioner"
        )
    contained = {
        "#" + str(c.get("id")): c for c in resource.get("contained") or [] if isinstance(c, dict)
    }
    for index, ref in enumerate(refs):
        if not isinstance(ref, dict):
            continue
        idents = []
        if isinstance(ref.get("identifier"), dict):
            idents.append(ref["identifier"])
        target = contained.get(str(ref.get("reference") or ""))
        if target is not None:
            idents += [i for i in target.get("identifier") or [] if isinstance(i, dict)]
        for ident in idents:
            if ident.get("system") == RPPS_SYSTEM and ident.get("value"):
                value = str(ident["value"])
                if not strict:
                    return same_professional_id(value)
                try:
                    return professional_id(value, field="")
                except Rejected as exc:
                    raise UnprocessableEntity(
                        exc.message, expression=f"Patient.generalPractitioner[{index}]"
                    ) from None
        raise UnprocessableEntity(
            f"the médecin traitant must be named by RPPS (identifier system {RPPS_SYSTEM})",
            expression=f"Patient.generalPractitioner[{index}]",
        )
    return None


def requested_state(resource: dict[str, Any]) -> RecordState | None:
    ext = X.find_extension(resource.get("extension"), X.RECORD_STATUS)
    if ext is None:
        return None
    code = ext.get("valueCode")
    if code in ("active", "closed"):
        return RecordState(str(code))
    raise UnprocessableEntity(
        "dmp-record-status must be 'active' or 'closed' (destruction is asked for separately)",
        expression="Patient.extension:recordStatus",
    )


def identity_from_patient(resource: dict[str, Any], *, allow_test_ins: bool) -> Identity:
    """The identity traits of a Patient (422 naming the field for anything wrong)."""
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list):
        raise UnprocessableEntity(
            "the patient has no INS identifier", expression="Patient.identifier"
        )
    ins_ident = find_ins(identifiers)
    if ins_ident is None:
        raise UnprocessableEntity(
            "the patient has no INS identifier (system urn:oid:1.2.250.1.213.1.4.8 for an "
            "INS-NIR or urn:oid:1.2.250.1.213.1.4.9 for an INS-NIA)",
            expression="Patient.identifier",
        )
    index = identifiers.index(ins_ident)
    ins = parse_ins(
        str(ins_ident.get("system") or ""),
        str(ins_ident.get("value") or ""),
        allow_test=allow_test_ins,
        field=f"Patient.identifier[{index}]",
    )
    status = _identity_status(resource) or "VIDE"
    family, given = _official_name(resource)
    birth_date = resource.get("birthDate")
    if not isinstance(birth_date, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", birth_date):
        raise UnprocessableEntity(
            "birthDate must be a full date (YYYY-MM-DD)", expression="Patient.birthDate"
        )
    gender = resource.get("gender")
    if gender not in GENDERS:
        raise UnprocessableEntity(
            "gender must be male, female, other or unknown", expression="Patient.gender"
        )
    birth_place = _birth_place(resource)
    identity = Identity(ins, status, family, given, birth_date, str(gender), birth_place)
    return identity


def _email(resource: dict[str, Any]) -> str | None:
    """Patient.telecom (system email): where the patient is told (docs/notifications.md)."""
    return next(
        (
            str(t["value"])
            for t in resource.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "email" and t.get("value")
        ),
        None,
    )


def _preferences(resource: dict[str, Any]) -> PreferencesInput | None:
    """carnet's extension ``dmp-notification-preferences``."""
    ext = X.find_extension(resource.get("extension"), X.NOTIFICATION_PREFERENCES)
    subs = ext.get("extension") if ext is not None else None
    if not isinstance(subs, list):
        return None
    new_documents = portal = access_mode = None
    for sub in subs:
        if not isinstance(sub, dict):
            continue
        if sub.get("url") == "newDocuments" and isinstance(sub.get("valueBoolean"), bool):
            new_documents = bool(sub["valueBoolean"])
        elif sub.get("url") == "portal" and isinstance(sub.get("valueBoolean"), bool):
            portal = bool(sub["valueBoolean"])
        elif sub.get("url") == "accessNotices" and sub.get("valueCode") in (
            "digest",
            "immediate",
            "none",
        ):
            access_mode = str(sub["valueCode"])
        else:
            raise UnprocessableEntity(
                "dmp-notification-preferences takes newDocuments (valueBoolean), portal "
                "(valueBoolean) and accessNotices (valueCode digest, immediate or none)",
                expression="Patient.extension:notificationPreferences",
            )
    return PreferencesInput(new_documents=new_documents, portal=portal, access_mode=access_mode)


def patient_input(resource: dict[str, Any], *, allow_test_ins: bool) -> PatientInput:
    """A Patient as the core takes it: identity traits, emergency consents, médecin traitant,
    state asked for, notification choices, and the resource itself (served back)."""
    return PatientInput(
        identity=identity_from_patient(resource, allow_test_ins=allow_test_ins),
        emergency=emergency_consents(resource),
        treating_physician=treating_physician_of(resource),
        state=requested_state(resource),
        email=_email(resource),
        preferences=_preferences(resource),
        source=Representation(FHIR_JSON, orjson.dumps(resource)),
    )


def _strip_server_extensions(extensions: object) -> list[Any]:
    ours = {X.RECORD_STATUS, X.CREATION_CONSENT, X.EMERGENCY_CONSENTS}
    if not isinstance(extensions, list):
        return []
    return [e for e in extensions if not (isinstance(e, dict) and e.get("url") in ours)]


def _identity_resource(identity: Identity) -> dict[str, Any]:
    """A Patient from the identity traits alone (a record opened through another interface)."""
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "extension": [
            {
                "url": X.FR_CORE_IDENTITY_RELIABILITY,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {
                            "system": X.FR_CORE_IDENTITY_STATUS_SYSTEM,
                            "code": identity.identity_status,
                        },
                    }
                ],
            }
        ],
        "identifier": [{"system": identity.ins.system, "value": identity.ins.value}],
        "name": [{"use": "official", "family": identity.family, "given": identity.given.split()}],
        "gender": identity.gender,
        "birthDate": identity.birth_date,
    }
    if identity.birth_place:
        out["extension"].append(
            {
                "url": X.BIRTH_PLACE,
                "valueAddress": {
                    "extension": [
                        {"url": X.FR_CORE_INSEE_CODE, "valueCoding": {"code": identity.birth_place}}
                    ]
                },
            }
        )
    return out


def render_patient(record: Record) -> bytes:
    """The Patient served: the client's own resource (kept by the core) with carnet's fields set
    from the record: id, version, state, emergency consents, creation consent, médecin
    traitant."""
    if record.source is not None and record.source.media_type == FHIR_JSON:
        out: dict[str, Any] = orjson.loads(record.source.data)
    else:
        out = _identity_resource(record.identity)
    out["id"] = record.record_id
    meta = dict(out.get("meta") or {})
    meta["versionId"] = str(record.version_id)
    meta["lastUpdated"] = iso(record.last_updated)
    out["meta"] = meta
    out["active"] = record.state is RecordState.ACTIVE
    exts = _strip_server_extensions(out.get("extension"))
    exts.append({"url": X.RECORD_STATUS, "valueCode": record.state.value})
    emergency = record.emergency
    exts.append(
        {
            "url": X.EMERGENCY_CONSENTS,
            "extension": [
                {"url": "centre15", "valueBoolean": emergency.centre15},
                {"url": "brisDeGlace", "valueBoolean": emergency.bris_de_glace},
                {"url": "maskedDocuments", "valueBoolean": emergency.masked},
            ],
        }
    )
    consent_ext: list[dict[str, Any]] = [
        {"url": "by", "valueString": record.consent.by},
        {"url": "date", "valueDateTime": iso(record.consent.at)},
    ]
    if record.consent.structure:
        consent_ext.append({"url": "structure", "valueString": record.consent.structure})
    exts.append({"url": X.CREATION_CONSENT, "extension": consent_ext})
    out["extension"] = exts
    treating = record.treating_physician
    if treating is None:
        out.pop("generalPractitioner", None)
    elif treating_physician_of(out, strict=False) != treating:
        out["generalPractitioner"] = [
            {"identifier": {"system": RPPS_SYSTEM, "value": treating.removeprefix("rpps:")}}
        ]
    return orjson.dumps(out)


def render_tombstone(record: Record) -> bytes:
    """What is left of a destroyed record: its INS and its state."""
    return orjson.dumps(
        {
            "resourceType": "Patient",
            "id": record.record_id,
            "meta": {"versionId": str(record.version_id), "lastUpdated": iso(record.last_updated)},
            "identifier": [
                {"system": record.identity.ins.system, "value": record.identity.ins.value}
            ],
            "active": False,
            "extension": [{"url": X.RECORD_STATUS, "valueCode": "destroyed"}],
        }
    )


def status_only(record: Record, access: str) -> dict[str, Any]:
    """TD0.2 for a professional without read access: existence and state, no identity traits."""
    ins = record.identity.ins
    return {
        "resourceType": "Patient",
        "id": record.record_id,
        "meta": {"versionId": str(record.version_id), "lastUpdated": iso(record.last_updated)},
        "identifier": [{"system": ins.system, "value": ins.value}],
        "active": record.state is RecordState.ACTIVE,
        "extension": [
            {"url": X.RECORD_STATUS, "valueCode": record.state.value},
            {"url": X.PROFESSIONAL_ACCESS, "valueCode": access},
        ],
    }
