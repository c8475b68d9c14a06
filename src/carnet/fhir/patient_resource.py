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

from carnet.access.policy import RecordState
from carnet.domain.actors import RPPS_SYSTEM
from carnet.domain.clock import iso
from carnet.domain.ins import find_ins, parse_ins
from carnet.domain.records import QUALIFIED, EmergencyConsents, Identity, Record
from carnet.errors import UnprocessableEntity
from carnet.fhir import extensions as X

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


def emergency_consents(resource: dict[str, Any], default: EmergencyConsents) -> EmergencyConsents:
    ext = X.find_extension(resource.get("extension"), X.EMERGENCY_CONSENTS)
    if ext is None:
        return default
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
    return EmergencyConsents(
        centre15=values.get("centre15", default.centre15),
        bris_de_glace=values.get("brisDeGlace", default.bris_de_glace),
        masked=values.get("maskedDocuments", default.masked),
    )


def treating_physician_of(resource: dict[str, Any]) -> str | None:
    """The médecin traitant: ``Patient.generalPractitioner`` naming a professional by RPPS
    (logical reference by identifier, or a contained Practitioner)."""
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
                return f"rpps:{ident['value']}"
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


def require_qualified(identity: Identity, why: str) -> None:
    if identity.identity_status != QUALIFIED:
        raise UnprocessableEntity(
            f"the INS is not qualified (identityStatus {identity.identity_status}, "
            f"{QUALIFIED} required): {why}",
            expression="Patient.extension:identityReliability",
        )
    if identity.birth_place is None:
        raise UnprocessableEntity(
            "a qualified INS needs the birth place (INSEE code, patient-birthPlace)",
            expression="Patient.extension:birthPlace",
        )


def _strip_server_extensions(extensions: object) -> list[Any]:
    ours = {X.RECORD_STATUS, X.CREATION_CONSENT, X.EMERGENCY_CONSENTS}
    if not isinstance(extensions, list):
        return []
    return [e for e in extensions if not (isinstance(e, dict) and e.get("url") in ours)]


def render_patient(
    resource: dict[str, Any],
    *,
    record_id: str,
    version_id: int,
    last_updated: str,
    state: RecordState,
    emergency: EmergencyConsents,
    consent: dict[str, str | None],
) -> bytes:
    """The stored form of a Patient: the client's JSON with carnet's fields set."""
    out = dict(resource)
    out["id"] = record_id
    meta = dict(out.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = last_updated
    out["meta"] = meta
    out["active"] = state is RecordState.ACTIVE
    exts = _strip_server_extensions(out.get("extension"))
    exts.append({"url": X.RECORD_STATUS, "valueCode": state.value})
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
        {"url": "by", "valueString": consent["by"]},
        {"url": "date", "valueDateTime": consent["date"]},
    ]
    if consent.get("structure"):
        consent_ext.append({"url": "structure", "valueString": consent["structure"]})
    exts.append({"url": X.CREATION_CONSENT, "extension": consent_ext})
    out["extension"] = exts
    return orjson.dumps(out)


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
