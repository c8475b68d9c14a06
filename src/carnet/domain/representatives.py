"""Legal representatives (dmp.md §1, rule 4 of §3; R1111-50): a person, identified by their own
INS, who acts for a minor or a protected adult."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from carnet.domain.ins import Ins

LEGAL_ROLES = frozenset({"GUARD", "PRN", "MTH", "FTH", "LEGAL"})  # v3-RoleCode


@dataclass(frozen=True, slots=True)
class RepresentativeInput:
    ins: Ins
    relationship: str  # one of LEGAL_ROLES


@dataclass(frozen=True, slots=True)
class Representative:
    record_id: str
    ins: Ins
    relationship: str
    recorded_by: str
    created_at: datetime

    @property
    def representative_id(self) -> str:
        return f"{self.record_id}-{self.ins.value}"
