"""The patient's notification preferences (docs/notifications.md), in the caller's transaction.

The patient's e-mail address is stored sealed with the record's key (AES-256-GCM, the record id
and the column as associated data, :func:`seal_email`) in ``notification_preferences.
email_sealed``: a destroyed record (its key shredded) leaves no address readable, and a dump of
the database shows none. Outbox rows to the patient carry no address; the worker opens it when
it delivers (:func:`patient_address`). What the policy needs, whether there is an address, is
known without the key (:func:`preferences_of_row`).

Rows written before migration 0008 hold the address in clear (``email``) until
:func:`seal_clear_addresses` seals it with the record's key; until then it is used as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from carnet.store.crypto import seal, unseal
from carnet.store.keyring import KeyGone, KeyRing
from carnet.store.tables import notification_preferences
from carnet.store.upsert import insert_ignore

log = logging.getLogger("carnet.store")

_np = notification_preferences.c


# -- the sealed address -----------------------------------------------------------------------
def _aad(record_id: str) -> bytes:
    """The record id, and the column: a sealed address is not taken for any other value."""
    return record_id.encode() + b"\x00notification_preferences.email"


def seal_email(key: bytes, record_id: str, email: str) -> bytes:
    """The patient's address sealed with the record's key."""
    return seal(key, _aad(record_id), email.encode())


def open_email(key: bytes, record_id: str, sealed: bytes) -> str:
    """The address sealed by :func:`seal_email` (DecryptionError if it was tampered with)."""
    return unseal(key, _aad(record_id), bytes(sealed)).decode()


def has_email_column() -> ColumnElement[bool]:
    """Whether a row holds an address (sealed, or in clear from before migration 0008)."""
    return or_(_np.email_sealed.is_not(None), _np.email.is_not(None)).label("has_email")


def preferences_of_row(m: Any) -> Preferences:
    """The preferences of a row selected with :func:`has_email_column` (or none: defaults)."""
    if m is None or m["access_mode"] is None:
        return DEFAULT_PREFERENCES
    return Preferences(
        has_email=bool(m["has_email"]),
        new_documents=bool(m["new_documents"]),
        access_mode=AccessNotices(m["access_mode"]),
        portal=bool(m["portal"]),
    )


async def get_preferences(conn: AsyncConnection, record_id: str) -> Preferences:
    row = (
        await conn.execute(
            select(has_email_column(), _np.new_documents, _np.access_mode, _np.portal).where(
                _np.record_id == record_id
            )
        )
    ).first()
    return preferences_of_row(row._mapping if row is not None else None)


async def stored_email(conn: AsyncConnection, key: bytes, record_id: str) -> str | None:
    """The patient's address, opened with the record's key (None without one)."""
    row = (
        await conn.execute(select(_np.email_sealed, _np.email).where(_np.record_id == record_id))
    ).first()
    if row is None:
        return None
    sealed, clear = row
    if sealed is not None:
        return open_email(key, record_id, sealed)
    return str(clear) if clear is not None else None


async def patient_address(conn: AsyncConnection, keys: KeyRing, record_id: str) -> str | None:
    """The address to deliver a patient's e-mail to, opened with the record's key: None when
    there is none (any more). Raises :class:`KeyGone` when the record was destroyed."""
    row = (
        await conn.execute(select(_np.email_sealed, _np.email).where(_np.record_id == record_id))
    ).first()
    if row is None:
        await keys.key_for(record_id)  # KeyGone: destroyed; else no address was ever given
        return None
    sealed, clear = row
    if sealed is not None:
        return open_email(await keys.key_for(record_id), record_id, sealed)
    return str(clear) if clear is not None else None


# -- changes ----------------------------------------------------------------------------------
def preference_changes(
    *,
    email: str | _Unset | None = UNSET,
    new_documents: bool | _Unset = UNSET,
    access_mode: AccessNotices | str | _Unset = UNSET,
    portal: bool | _Unset = UNSET,
) -> dict[str, Any]:
    """The preferences to change, checked (the others keep their value). ``email=None``
    removes it. ``"email"`` holds the address in clear: :func:`sealed_columns` turns the
    changes into the columns to write."""
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


def sealed_columns(changes: dict[str, Any], key: bytes | None, record_id: str) -> dict[str, Any]:
    """The columns that write ``changes`` (:func:`preference_changes`): the address sealed
    with the record's ``key``, and the clear column emptied."""
    out = dict(changes)
    if "email" in out:
        email = out.pop("email")
        if email is not None and key is None:
            raise ValueError("an address is sealed with the record's key")
        out["email_sealed"] = seal_email(key, record_id, email) if email and key else None
        out["email"] = None
    return out


def default_row(record_id: str, now: Any) -> dict[str, Any]:
    """A preferences row with the defaults (every column)."""
    d = DEFAULT_PREFERENCES
    return {
        "record_id": record_id,
        "email": None,
        "email_sealed": None,
        "new_documents": d.new_documents,
        "access_mode": d.access_mode.value,
        "portal": d.portal,
        "updated_at": now,
    }


async def set_preferences(
    conn: AsyncConnection,
    record_id: str,
    *,
    key: bytes | None = None,
    email: str | _Unset | None = UNSET,
    new_documents: bool | _Unset = UNSET,
    access_mode: AccessNotices | str | _Unset = UNSET,
    portal: bool | _Unset = UNSET,
) -> Preferences:
    """Change the given preferences of a record in the caller's transaction (an address needs
    the record's ``key``, to be sealed with it)."""
    changes = sealed_columns(
        preference_changes(
            email=email, new_documents=new_documents, access_mode=access_mode, portal=portal
        ),
        key,
        record_id,
    )
    now = utcnow()
    inserted = await insert_ignore(
        conn, notification_preferences, {**default_row(record_id, now), **changes}
    )
    if not inserted and changes:
        await conn.execute(
            update(notification_preferences)
            .where(_np.record_id == record_id)
            .values(**changes, updated_at=now)
        )
    return await get_preferences(conn, record_id)


# -- rows from before migration 0008 ----------------------------------------------------------
async def seal_clear_addresses(engine: AsyncEngine, keys: KeyRing, *, batch: int = 500) -> int:
    """Seal the addresses stored in clear (before migration 0008) with their record's key and
    empty the clear column; how many were sealed. Resumable: each batch is committed on its
    own, and a row is changed only if its clear address is still the one sealed (another
    process may be doing the same). A record whose key is gone (destroyed) loses its address."""
    done = 0
    while True:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(_np.record_id, _np.email)
                    .where(_np.email.is_not(None))
                    .order_by(_np.record_id)
                    .limit(batch)
                )
            ).all()
            for record_id, email in rows:
                try:
                    sealed: bytes | None = seal_email(
                        await keys.key_for(record_id), record_id, email
                    )
                except KeyGone:
                    sealed = None
                await conn.execute(
                    update(notification_preferences)
                    .where(_np.record_id == record_id, _np.email == email)
                    .values(email_sealed=sealed, email=None)
                )
                done += 1
        if len(rows) < batch:
            break
    if done:
        if engine.dialect.name == "sqlite":
            # the WAL keeps the pages as they were until a checkpoint: copy it in and empty it
            # (secure_delete overwrites what the update left behind in the pages)
            async with engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("%d e-mail address(es) sealed with their record's key", done)
    return done
