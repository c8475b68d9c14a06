"""Structural validation of incoming resources against the FHIR R4 definitions.

fhir.resources' R4B models read R4 data for the resources carnet accepts (Patient,
DocumentReference, List, Binary, Bundle). Each resource is validated once on the way in; the
client's JSON is what is stored (validation and serialisation through models are costly, see
limits.md).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.list import List as FhirList
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from carnet.fhir.errors import InvalidInput

MODELS: dict[str, Any] = {
    "Patient": Patient,
    "DocumentReference": DocumentReference,
    "List": FhirList,
    "Binary": Binary,
    "Bundle": Bundle,
    "Parameters": Parameters,
    "Consent": Consent,
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part).removesuffix("__ext")
    return out


def validate(resource: dict[str, Any], prefix: str = "") -> None:
    """Raise 400 naming the first problems if ``resource`` is not valid FHIR R4."""
    rtype = resource.get("resourceType")
    model = MODELS.get(str(rtype))
    if model is None:
        raise InvalidInput(
            f"resourceType {rtype!r} is not supported here", expression="resourceType"
        )
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            path = _path(tuple(err.get("loc", ())))
            where = f"{prefix}{rtype}.{path}" if path else f"{prefix}{rtype}"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        first = problems[0].split(":", 1)[0] if problems else None
        raise InvalidInput(
            "invalid FHIR resource: " + "; ".join(problems), expression=first
        ) from None
