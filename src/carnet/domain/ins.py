"""The INS (Identifiant National de Santé): dmp.md §1 and §2.

An INS is a NIR (OID 1.2.250.1.213.1.4.8) or a NIA (1.2.250.1.213.1.4.9), 15 characters:
13 characters then a 2-digit key equal to ``97 - (first 13 digits mod 97)``, Corsica's
department codes ``2A`` and ``2B`` read as ``19`` and ``18``. OID 1.2.250.1.213.1.4.10 is the
INS-NIR *de test*, accepted only where test identities are allowed; 1.2.250.1.213.1.4.13 is a
NIR used as a social-security number, never an INS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from carnet.domain.errors import Rejected

OID_NIR = "1.2.250.1.213.1.4.8"
OID_NIA = "1.2.250.1.213.1.4.9"
OID_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_NIR_SOCIAL = "1.2.250.1.213.1.4.13"
INS_OIDS = {OID_NIR: "INS-NIR", OID_NIA: "INS-NIA", OID_NIR_TEST: "INS-NIR de test"}

_SHAPE = re.compile(r"^[1-478][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}$")


@dataclass(frozen=True, slots=True)
class Ins:
    oid: str
    value: str

    @property
    def system(self) -> str:
        return f"urn:oid:{self.oid}"

    @property
    def is_test(self) -> bool:
        return self.oid == OID_NIR_TEST

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"


def nir_key(first13: str) -> int:
    """The key of a NIR or NIA from its first 13 characters (Corsica handled)."""
    digits = first13.upper().replace("2A", "19").replace("2B", "18")
    return 97 - (int(digits) % 97)


def check_ins_value(value: str, *, field: str = "identifier.value") -> str:
    """Return the normalised INS value or raise a 422 naming the problem."""
    v = value.strip().upper().replace(" ", "")
    if len(v) != 15:
        raise Rejected(
            f"INS {value!r} must have 15 characters (13 + a 2-digit key), it has {len(v)}",
            field=field,
        )
    if not _SHAPE.match(v):
        raise Rejected(
            f"INS {value!r} is malformed: expected sex digit, year, month, department "
            "(digits, 2A or 2B), commune, order number and key",
            field=field,
        )
    expected = nir_key(v[:13])
    given = int(v[13:])
    if expected != given:
        raise Rejected(
            f"INS {v}: wrong NIR key {v[13:]}, the key of {v[:13]} is {expected:02d} "
            f"(97 - {v[:13]} mod 97)",
            field=field,
        )
    return v


def parse_ins(system: str | None, value: str | None, *, allow_test: bool, field: str) -> Ins:
    """Validate an INS given as a FHIR identifier (system + value)."""
    if not system:
        raise Rejected("the INS identifier has no system (OID)", field=field)
    oid = system[len("urn:oid:") :] if system.startswith("urn:oid:") else system
    if oid == OID_NIR_SOCIAL:
        raise Rejected(f"OID {OID_NIR_SOCIAL} is a social-security number, not an INS", field=field)
    if oid not in INS_OIDS:
        raise Rejected(
            f"{system!r} is not an INS system: expected urn:oid:{OID_NIR} (INS-NIR) or "
            f"urn:oid:{OID_NIA} (INS-NIA)",
            field=field,
        )
    if oid == OID_NIR_TEST and not allow_test:
        raise Rejected(
            "test INS (urn:oid:1.2.250.1.213.1.4.10) are refused on this server "
            "(set CARNET_ALLOW_TEST_INS=1 for tests and demos)",
            field=field,
        )
    if not value:
        raise Rejected("the INS identifier has no value", field=field)
    return Ins(oid=oid, value=check_ins_value(value, field=f"{field}.value"))


def names_an_ins(system: str | None) -> bool:
    """Whether an identifier's system (or none given) may name an INS. One person has one
    record whatever the OID their INS is written under (INS-NIR, INS-NIR de test; an INS-NIA is
    another number, never the value of a NIR): records, tokens and searches match an INS on its
    value; a system that is not an INS system (an IPP, the NIR as a social-security number)
    names no record."""
    if not system:
        return True
    return system.removeprefix("urn:oid:") in INS_OIDS


def find_ins(identifiers: list[Any]) -> dict[str, Any] | None:
    """The identifier entry that claims to be an INS (by its system), if any."""
    for ident in identifiers:
        if not isinstance(ident, dict):
            continue  # not an Identifier: the caller answers "no INS"
        system = str(ident.get("system") or "")
        oid = system.removeprefix("urn:oid:")
        if oid in INS_OIDS or oid == OID_NIR_SOCIAL:
            return ident
    return None


def make_nir(first13: str) -> str:
    """Append the key to 13 characters (demo and test data)."""
    return f"{first13}{nir_key(first13):02d}"
