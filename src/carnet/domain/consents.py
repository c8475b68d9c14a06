"""Consents (dmp.md §2-§3; TD0.3): the patient's authorisations and blocks of professionals,
care teams presumed authorised (R1111-46), and the three emergency consents.

Authorisations and blocks are stored one per decision; emergency consents live on the record
(one source of truth) and are shown as consents too (:class:`EmergencyConsentView`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from carnet.domain.content import Representation
from carnet.domain.records import EmergencyPurpose, PatientRef


class ConsentDecision(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class ConsentStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class ConsentActorKind(StrEnum):
    PROFESSIONAL = "professional"  # by IdNatPS (8 + RPPS)
    STRUCTURE = "structure"  # a care team, by FINESS / SIRET


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """A decision of the patient as an interface read it.

    An authorisation or a block names one professional (or, for an authorisation, a care
    team); an emergency consent names a purpose and no one.
    """

    patient: PatientRef
    decision: ConsentDecision
    status: ConsentStatus = ConsentStatus.ACTIVE
    purpose: EmergencyPurpose | None = None
    actor_kind: ConsentActorKind | None = None
    actor_system: str | None = None
    actor_value: str | None = None
    source: Representation | None = None


@dataclass(frozen=True, slots=True)
class StoredConsent:
    record_id: str
    consent_id: str
    decision: ConsentDecision
    actor_kind: ConsentActorKind
    actor_system: str
    actor_value: str
    status: ConsentStatus
    version_id: int
    recorded_by: str
    created_at: datetime
    last_updated: datetime
    source: Representation | None = None


@dataclass(frozen=True, slots=True)
class EmergencyConsentView:
    """One of the record's emergency consents, shown as a consent."""

    record_id: str
    purpose: EmergencyPurpose
    allowed: bool
    version_id: int  # the record's version
    last_updated: datetime

    @property
    def consent_id(self) -> str:
        return f"{self.record_id}-{self.purpose.value.lower()}"


def emergency_purpose_of_id(consent_id: str) -> EmergencyPurpose | None:
    """The purpose an emergency consent's id names (``<record>-etreat``), if any."""
    record, sep, suffix = consent_id.rpartition("-")
    if not sep or not record:
        return None
    try:
        return EmergencyPurpose(suffix.upper())
    except ValueError:
        return None


Consent = StoredConsent | EmergencyConsentView
