"""The patient's notification preferences (docs/notifications.md), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from carnet.domain.clock import utcnow
from carnet.domain.errors import Invalid
from carnet.domain.notifications import (
    DEFAULT_PREFERENCES,
    UNSET,
    AccessNotices,
    Preferences,
    _Unset,
    check_email,
)
from carnet.store.tables import notification_preferences
from carnet.store.upsert import insert_ignore


def preferences_of_row(m: Any) -> Preferences:
    if m is None or m["access_mode"] is None:
        return DEFAULT_PREFERENCES
    return Preferences(
        email=m["email"],
        new_documents=bool(m["new_documents"]),
        access_mode=AccessNotices(m["access_mode"]),
        portal=bool(m["portal"]),
    )


async def get_preferences(conn: AsyncConnection, record_id: str) -> Preferences:
    row = (
        await conn.execute(
            select(notification_preferences).where(
                notification_preferences.c.record_id == record_id
            )
        )
    ).first()
    return preferences_of_row(row._mapping if row is not None else None)


def preference_changes(
    *,
    email: str | _Unset | None = UNSET,
    new_documents: bool | _Unset = UNSET,
    access_mode: AccessNotices | str | _Unset = UNSET,
    portal: bool | _Unset = UNSET,
) -> dict[str, Any]:
    """The columns to change (the others keep their value). ``email=None`` removes it."""
    changes: dict[str, Any] = {}
    if not isinstance(email, _Unset):
        changes["email"] = check_email(email) if email else None
    if not isinstance(new_documents, _Unset):
        changes["new_documents"] = bool(new_documents)
    if not isinstance(access_mode, _Unset):
        try:
            changes["access_mode"] = AccessNotices(access_mode).value
        except ValueError:
            raise Invalid(
                f"access notifications are digest, immediate or none, not {access_mode!r}",
                field="patient.preferences.access_mode",
            ) from None
    if not isinstance(portal, _Unset):
        changes["portal"] = bool(portal)
    return changes


async def set_preferences(
    conn: AsyncConnection,
    record_id: str,
    *,
    email: str | _Unset | None = UNSET,
    new_documents: bool | _Unset = UNSET,
    access_mode: AccessNotices | str | _Unset = UNSET,
    portal: bool | _Unset = UNSET,
) -> Preferences:
    """Change the given preferences of a record in the caller's transaction."""
    changes = preference_changes(
        email=email, new_documents=new_documents, access_mode=access_mode, portal=portal
    )
    now = utcnow()
    d = DEFAULT_PREFERENCES
    inserted = await insert_ignore(
        conn,
        notification_preferences,
        {
            "record_id": record_id,
            "email": d.email,
            "new_documents": d.new_documents,
            "access_mode": d.access_mode.value,
            "portal": d.portal,
            "updated_at": now,
            **changes,
        },
    )
    if not inserted and changes:
        await conn.execute(
            update(notification_preferences)
            .where(notification_preferences.c.record_id == record_id)
            .values(**changes, updated_at=now)
        )
    return await get_preferences(conn, record_id)
