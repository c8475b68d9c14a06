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


def luhn_key(digits: str) -> str:
    """The Luhn key digit that makes ``digits`` + key pass :func:`luhn_ok`."""
    for key in "0123456789":
        if luhn_ok(digits + key):
            return key
    raise AssertionError("unreachable")


def make_rpps(first10: str) -> str:
    """An RPPS number (11 digits) from its first 10 (demo and test data)."""
    if not re.fullmatch(r"\d{10}", first10):
        raise ValueError(f"an RPPS number starts with 10 digits, not {first10!r}")
    return first10 + luhn_key(first10)


def make_finess(first8: str) -> str:
    """A FINESS number (9 digits, the last a Luhn key) from its first 8 (demo and test data)."""
    if not re.fullmatch(r"\d{8}", first8):
        raise ValueError(f"a FINESS number starts with 8 digits, not {first8!r}")
    return first8 + luhn_key(first8)


def check_finess(value: str, *, field: str) -> str:
    """A FINESS number: 9 digits (2A/2B for Corsica read as 20), the last a Luhn key."""
    v = value.strip().upper()
    digits = v[:2].replace("2A", "20").replace("2B", "20") + v[2:]
    if not re.fullmatch(r"\d{9}", digits) or not luhn_ok(digits):
        raise Rejected(
            f"{value!r} is not a FINESS number (9 digits, the last a Luhn key)", field=field
        )
    return v
