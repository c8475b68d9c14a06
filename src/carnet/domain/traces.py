"""Traces (dmp.md §5): every action and every denial, written in the same transaction as the
action itself. The full DMP rules chain them per record and expose them as AuditEvent."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.access.policy import Action, Decision
from carnet.domain.actors import Actor
from carnet.domain.clock import ordered_id, utcnow
from carnet.store.tables import audit_events


def trace_row(
    actor: Actor,
    action: Action | str,
    record_id: str | None,
    *,
    decision: Decision | None = None,
    outcome: str | None = None,
    doc_id: str | None = None,
    detail: str | None = None,
) -> dict[str, object]:
    allowed = decision.allowed if decision is not None else outcome != "deny"
    return {
        "record_id": record_id or "",
        "event_id": ordered_id(),
        "recorded_at": utcnow(),
        "actor_kind": actor.kind.value,
        "actor_id": actor.id,
        "profession": actor.profession,
        "structure": actor.structure,
        "mode": actor.mode.value,
        "reason": actor.reason,
        "action": str(action),
        "doc_id": doc_id,
        "outcome": outcome or ("allow" if allowed else "deny"),
        "rule": decision.rule if decision is not None else None,
        "detail": detail,
    }


async def write_traces(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    if rows:
        await conn.execute(audit_events.insert(), rows)
