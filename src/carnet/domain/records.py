"""Records (dmp.md §2): one per person, keyed by the INS, with the identity traits, the consent
given at creation, the emergency consents, the médecin traitant and the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from carnet.domain.content import Representation
from carnet.domain.errors import Reason, Rejected
from carnet.domain.ins import Ins
from carnet.domain.search import DateRange
from carnet.domain.search import normalise_name as normalise_name  # re-exported

# FR Core identity reliability (INS qualification), fr-core-cs-v2-0445
IDENTITY_STATUSES = {
    "VIDE": "identité non vérifiée (vide)",
    "PROV": "identité provisoire",
    "VALI": "identité validée (qualifiée)",
    "DOUTE": "identité douteuse",
    "FICTI": "identité fictive",
}
QUALIFIED = "VALI"
GENDERS = frozenset({"male", "female", "other", "unknown"})


class RecordState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    DESTROYED = "destroyed"


@dataclass(frozen=True, slots=True)
class EmergencyConsents:
    """dmp.md §2: centre 15 and bris de glace ticked by default; masked documents not."""

    centre15: bool = True
    bris_de_glace: bool = True
    masked: bool = False


@dataclass(frozen=True, slots=True)
class EmergencyChoices:
    """The emergency consents an input says (None: not said, the current one holds)."""

    centre15: bool | None = None
    bris_de_glace: bool | None = None
    masked: bool | None = None

    def applied_to(self, current: EmergencyConsents) -> EmergencyConsents:
        return EmergencyConsents(
            centre15=current.centre15 if self.centre15 is None else self.centre15,
            bris_de_glace=(
                current.bris_de_glace if self.bris_de_glace is None else self.bris_de_glace
            ),
            masked=current.masked if self.masked is None else self.masked,
        )


class EmergencyPurpose(StrEnum):
    """The three emergency consents, by the codes interfaces carry them with."""

    CENTRE_15 = "ETREAT"
    BRIS_DE_GLACE = "BTG"
    MASKED = "MASKED"

    @property
    def attribute(self) -> str:
        return {"ETREAT": "centre15", "BTG": "bris_de_glace", "MASKED": "masked"}[self.value]


@dataclass(frozen=True, slots=True)
class Identity:
    ins: Ins
    identity_status: str
    family: str  # birth name
    given: str  # first names, space separated
    birth_date: str  # YYYY-MM-DD
    gender: str
    birth_place: str | None  # INSEE code

    @property
    def qualified(self) -> bool:
        return self.identity_status == QUALIFIED

    def require_qualified(self, why: str, *, traits: bool = True) -> None:
        """dmp.md §2: only a qualified INS labels health data (``traits``: and the identity
        traits it was qualified with are all there: the birth place)."""
        if self.identity_status != QUALIFIED:
            raise Rejected(
                f"the INS is not qualified (identity status {self.identity_status}, "
                f"{QUALIFIED} required): {why}",
                field="patient.identity_status",
                reason=Reason.NOT_QUALIFIED,
            )
        if traits and self.birth_place is None:
            raise Rejected(
                "a qualified INS needs the birth place (INSEE code)",
                field="patient.birth_place",
                reason=Reason.MISSING,
            )


@dataclass(frozen=True, slots=True)
class CreationConsent:
    """Who recorded the patient's consent to the creation of the record, where and when."""

    by: str  # actor id
    by_kind: str
    structure: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Record:
    record_id: str
    identity: Identity  # traits blank (``sealed``) until the record's key opens them
    state: RecordState
    consent: CreationConsent
    emergency: EmergencyConsents
    version_id: int
    created_at: datetime
    last_updated: datetime
    closed_at: datetime | None
    treating_physician: str | None = None  # actor id (rpps:…) of the médecin traitant
    source: Representation | None = None  # the interface's own form of the patient, if any


@dataclass(frozen=True, slots=True)
class RecordVersion:
    """One past or current version of a record, as it was then."""

    version_id: int
    last_updated: datetime
    record: Record


@dataclass(frozen=True, slots=True)
class PatientInput:
    """A patient as an interface read it: what opening or updating a record needs.

    ``None`` means "not said": on an update, the stored value stays.
    """

    identity: Identity
    emergency: EmergencyChoices | None = None
    treating_physician: str | None = None  # actor id (rpps:…); see ``treating_given``
    treating_given: bool = True  # False: the input says nothing of the médecin traitant
    state: RecordState | None = None  # close or reopen on update
    email: str | None = None  # where the patient is told (notifications)
    preferences: PreferencesInput | None = None
    source: Representation | None = None


@dataclass(frozen=True, slots=True)
class PreferencesInput:
    """The patient's notification choices (docs/notifications.md); None: unchanged."""

    new_documents: bool | None = None
    portal: bool | None = None
    access_mode: str | None = None  # digest | immediate | none


@dataclass(frozen=True, slots=True)
class PatientRef:
    """The patient something is for: a record id, or an INS."""

    record_id: str | None = None
    ins: Ins | None = None

    def __post_init__(self) -> None:
        if (self.record_id is None) == (self.ins is None):
            raise ValueError("a PatientRef names a record id or an INS, exactly one")


@dataclass(frozen=True, slots=True)
class RecordView:
    """A record as a search shows it: in full, or its status only (TD0.2)."""

    record: Record
    full: bool


@dataclass(slots=True)
class RecordCriteria:
    identifiers: list[tuple[str | None, str]] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    birthdate: list[DateRange] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
