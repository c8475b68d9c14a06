"""A search parameter as carnet declares it: its name, FHIR type, canonical definition and
documentation (FHIR R4 CapabilityStatement.rest.resource.searchParam,
http://hl7.org/fhir/R4/capabilitystatement-definitions.html#CapabilityStatement.rest.resource.searchParam).

The search tables of carnet/fhir/capability.py are made of these; the handlers check a request
against the tables' names, the CapabilityStatement and the API's description (openapi.py) are
drawn from them, so that a parameter is declared where, and only where, it is understood.
"""

from __future__ import annotations

from dataclasses import dataclass

FHIR_SP = "http://hl7.org/fhir/SearchParameter/"
"""HL7's FHIR R4 core search parameters."""
MHD_SP = "https://profiles.ihe.net/ITI/MHD/SearchParameter/"
"""IHE MHD 4.2.3's search parameters (ITI-66, ITI-67)."""
PDSM_SP = "https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/"
"""ANS PDSm 3.1.1's search parameters."""


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter: ``name`` as sent in the query, ``type`` its FHIR search type
    (token, reference, date, string, number, uri, quantity, composite, special),
    ``definition`` the canonical URL of the SearchParameter that defines it (for a chained or
    carnet-named parameter, the one it is built on), ``documentation`` what carnet does with it."""

    name: str
    type: str
    definition: str
    documentation: str


def table(*params: SearchParam) -> dict[str, SearchParam]:
    """A search table: the parameters by name (a name given twice is a mistake)."""
    out: dict[str, SearchParam] = {}
    for p in params:
        if p.name in out:
            raise ValueError(f"search parameter {p.name!r} declared twice")
        out[p.name] = p
    return out
