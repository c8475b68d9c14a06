"""Records (dmp.md §2): one per person, keyed by the INS, with the identity traits, the consent
given at creation, the emergency consents and the state."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from carnet.access.policy import RecordState
from carnet.domain.ins import Ins

# FR Core identity reliability (INS qualification), fr-core-cs-v2-0445
IDENTITY_STATUSES = {
    "VIDE": "identité non vérifiée (vide)",
    "PROV": "identité provisoire",
    "VALI": "identité validée (qualifiée)",
    "DOUTE": "identité douteuse",
    "FICTI": "identité fictive",
}
QUALIFIED = "VALI"


@dataclass(frozen=True, slots=True)
class EmergencyConsents:
    """dmp.md §2: centre 15 and bris de glace ticked by default; masked documents not."""

    centre15: bool = True
    bris_de_glace: bool = True
    masked: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    ins: Ins
    identity_status: str
    family: str  # birth name
    given: str  # first names, space separated
    birth_date: str
    gender: str
    birth_place: str | None

    @property
    def qualified(self) -> bool:
        return self.identity_status == QUALIFIED


@dataclass(frozen=True, slots=True)
class Record:
    record_id: str
    identity: Identity
    state: RecordState
    consent_by: str
    consent_by_kind: str
    consent_structure: str | None
    consent_at: datetime
    emergency: EmergencyConsents
    version_id: int
    created_at: datetime
    last_updated: datetime
    closed_at: datetime | None
    resource: bytes
    treating_physician: str | None = None  # actor id (rpps:…) of the médecin traitant


def normalise_name(text: str) -> str:
    """Case- and accent-insensitive form used by name searches."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.upper().replace("-", " ").replace("'", " ").split())
