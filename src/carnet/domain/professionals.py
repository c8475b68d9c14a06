"""Health professionals' national identifiers (dmp.md §1): the RPPS number (11 digits, the
last a Luhn key) and its IdNatPS form (``8`` + RPPS), OID 1.2.250.1.71.4.2.1; structures by
FINESS / SIRET (IdNatStruct, OID 1.2.250.1.71.4.2.2)."""

from __future__ import annotations

import re

from carnet.domain.errors import Rejected

STRUCTURE_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"


_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a string of ASCII digits (False for anything else)."""
    if not _ASCII_DIGITS.fullmatch(digits):
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def check_idnatps(value: str, *, field: str) -> str:
    """The one form carnet keeps a professional in: the IdNatPS (``8`` + the 11-digit RPPS
    number), from an RPPS number or an IdNatPS. ASCII digits only (a full-width or other
    Unicode digit is not a digit here), the RPPS number's Luhn key checked; anything else is
    refused (:class:`Rejected` naming ``field``). Every identifier of a professional that
    carnet stores or compares (tokens, consents, the médecin traitant, authors) goes through
    here once, where it enters, so that the same person is always the same string."""
    v = value.strip(" \t\r\n") if isinstance(value, str) else ""
    rpps = v[1:] if len(v) == 12 and v.startswith("8") else v
    if not (len(rpps) == 11 and luhn_ok(rpps)):
        raise Rejected(
            f"{value!r} names no known professional: an RPPS number has 11 digits (0-9) with a "
            "Luhn key (IdNatPS: 8 followed by the RPPS number)",
            field=field,
        )
    return "8" + rpps


def professional_id(value: str, *, field: str) -> str:
    """The actor id (``rpps:<IdNatPS>``) of a professional named by RPPS or IdNatPS, given
    with or without the ``rpps:`` prefix (:func:`check_idnatps`)."""
    return "rpps:" + check_idnatps(value.removeprefix("rpps:"), field=field)


def same_professional_id(value: str) -> str:
    """``value`` (an actor id or an identifier as written in stored metadata) in the form it is
    compared in: a valid RPPS or IdNatPS becomes ``rpps:<IdNatPS>``, anything else stays as
    written (and so matches no professional's token, whose id is always normalised)."""
    try:
        return professional_id(value, field="")
    except Rejected:
        return value


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
