"""The access-scoped service (architecture.md "one choke point: decide, then trace").

Interfaces build one :class:`Scope` per request from the verified actor and call nothing else
to reach records and documents.
"""

from __future__ import annotations

from carnet.access.audit import AuditOps
from carnet.access.lifecycle import LifecycleOps
from carnet.access.representatives import RepresentativeOps


class Scope(LifecycleOps, RepresentativeOps, AuditOps):
    """Every operation on records and documents for one actor."""
