"""Who is acting: dmp.md §1. Built from a verified token by carnet.auth, never from loose input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

RPPS_OID = "1.2.250.1.71.4.2.1"
RPPS_SYSTEM = f"urn:oid:{RPPS_OID}"


class ActorKind(StrEnum):
    PATIENT = "patient"
    PROFESSIONAL = "professional"
    SYSTEM = "system"
    OPERATOR = "operator"


class AccessMode(StrEnum):
    """TRE_R248: the access mode every professional request carries."""

    NORMAL = "normal"
    BRIS_DE_GLACE = "bris_de_glace"
    CENTRE_15 = "centre_15"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    subject: str  # the token's ``sub``
    issuer: str
    ins: str | None = None  # patients: the 15-character INS value
    ins_oid: str | None = None
    rpps: str | None = None  # professionals: IdNatPS
    profession: str | None = None  # TRE_G15 code
    specialty: str | None = None  # for médecins (TRE_R38 / G15 savoir-faire)
    structure: str | None = None  # FINESS / SIRET
    mode: AccessMode = AccessMode.NORMAL
    reason: str | None = None
    name: str | None = None

    @property
    def id(self) -> str:
        """A stable identifier for traces and relations."""
        if self.kind is ActorKind.PATIENT and self.ins:
            return f"ins:{self.ins}"
        if self.kind is ActorKind.PROFESSIONAL and self.rpps:
            return f"rpps:{self.rpps}"
        return f"{self.kind.value}:{self.subject}"
