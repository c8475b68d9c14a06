"""Rows written before the sealed envelope (migration 0006): their plaintext is the FHIR
resource the FHIR interface stored then. Only what the core needs is read from them, here, once:
the identity traits of a Patient. Nothing else in the core reads such a resource."""

from __future__ import annotations

from typing import Any

import orjson

_INSEE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def legacy_identity_traits(plain: bytes) -> dict[str, Any]:
    """family, given, birth_date, gender and birth_place of a stored FHIR Patient."""
    try:
        data = orjson.loads(plain)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    names = data.get("name") or []
    name = next(
        (n for n in names if isinstance(n, dict) and n.get("use") == "official"),
        names[0] if names else {},
    )
    family = name.get("family") if isinstance(name, dict) else None
    given = name.get("given") if isinstance(name, dict) else None
    birth_place = None
    for ext in data.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == _BIRTH_PLACE:
            addr = ext.get("valueAddress") or {}
            for sub in addr.get("extension") or []:
                if isinstance(sub, dict) and sub.get("url") == _INSEE:
                    birth_place = (sub.get("valueCoding") or {}).get("code")
            birth_place = birth_place or addr.get("district")
    return {
        "family": str(family or ""),
        "given": " ".join(str(g) for g in given) if isinstance(given, list) else "",
        "birth_date": str(data.get("birthDate") or ""),
        "gender": str(data.get("gender") or "unknown"),
        "birth_place": str(birth_place) if birth_place else None,
    }
