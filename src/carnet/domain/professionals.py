"""Health professionals' national identifiers (dmp.md §1): the RPPS number (11 digits, the
last a Luhn key) and its IdNatPS form (``8`` + RPPS), OID 1.2.250.1.71.4.2.1; structures by
FINESS / SIRET (IdNatStruct, OID 1.2.250.1.71.4.2.2)."""

from __future__ import annotations

import re

from carnet.domain.errors import Rejected

STRUCTURE_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def check_idnatps(value: str, *, field: str) -> str:
    """The IdNatPS (``8`` + RPPS) of a professional named by RPPS or IdNatPS; 422 naming
    ``field`` for an identifier that names no professional."""
    v = value.strip()
    rpps = v[1:] if len(v) == 12 and v.startswith("8") else v
    if not re.fullmatch(r"\d{11}", rpps) or not luhn_ok(rpps):
        raise Rejected(
            f"{value!r} names no known professional: an RPPS number has 11 digits with a Luhn "
            "key (IdNatPS: 8 followed by the RPPS number)",
            field=field,
        )
    return "8" + rpps


def check_structure(value: str, *, field: str) -> str:
    v = value.strip()
    if not re.fullmatch(r"[0-9A-Z]{9,15}", v):
        raise Rejected(
            f"{value!r} is not a structure identifier (FINESS, SIRET or IdNatStruct)",
            field=field,
        )
    return v
