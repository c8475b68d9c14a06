"""The daily digest: professionals' accesses told by e-mail once a day (the default preference).

An ordinary access waiting for the digest is an outbox row of kind ``access``, channel
``email``, status ``held``. The digest job turns, in one transaction, every held row of a
completed day (Paris time) into ``digested`` and writes one ``digest`` row per record and day,
which the worker then delivers like any other notification. Two jobs running at once cannot
tell an access twice: each held row changes state once, and only the job that changed it
puts it in a digest.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.clock import utcnow
from carnet.domain.notifications import (
    AccessNotices,
    Channel,
    Kind,
    Recipient,
    Status,
    outbox_rows,
)
from carnet.notify.messages import local_day, start_of_local_day
from carnet.store.preferences import get_preferences
from carnet.store.tables import outbox

NO_ADDRESS = "not told: no e-mail address, or access notifications turned off, at digest time"


async def run_digest(
    engine: AsyncEngine, *, now: datetime | None = None, include_today: bool = False
) -> int:
    """Write the digests of held accesses of completed days (and of today's so far with
    ``include_today``). Returns how many digests were written."""
    at = now or utcnow()
    cutoff = at if include_today else start_of_local_day(at)
    written = 0
    async with engine.begin() as conn:
        taken = (
            await conn.execute(
                update(outbox)
                .where(
                    outbox.c.status == Status.HELD.value,
                    outbox.c.kind == Kind.ACCESS.value,
                    outbox.c.created_at < cutoff,
                )
                .values(status=Status.DIGESTED.value, sent_at=at)
                .returning(
                    outbox.c.record_id,
                    outbox.c.event_id,
                    outbox.c.recipient,
                    outbox.c.created_at,
                    outbox.c.payload,
                )
            )
        ).all()
        groups: dict[tuple[str, str, date], list[Any]] = {}
        for row in taken:
            m = row._mapping
            key = (m["record_id"], m["recipient"], local_day(m["created_at"]))
            groups.setdefault(key, []).append(m)
        for (record_id, recipient, day), items in sorted(groups.items()):
            items.sort(key=lambda m: (m["created_at"], m["event_id"]))
            prefs = await get_preferences(conn, record_id)
            if not prefs.has_email or prefs.access_mode is AccessNotices.NONE:
                await conn.execute(
                    update(outbox)
                    .where(
                        tuple_(outbox.c.record_id, outbox.c.event_id).in_(
                            [(record_id, m["event_id"]) for m in items]
                        )
                    )
                    .values(status=Status.SKIPPED.value, sent_at=None, last_error=NO_ADDRESS)
                )
                continue
            accesses = []
            for m in items:
                p = orjson.loads(m["payload"])
                p.pop("title", None)  # e-mail: never a title
                p.pop("to", None)
                accesses.append(p)
            rows = outbox_rows(
                record_id=record_id,
                kind=Kind.DIGEST,
                payload={"day": day.isoformat(), "accesses": accesses},
                # the address is not in the row: the worker opens the sealed one to deliver
                recipients=[Recipient(recipient, Channel.EMAIL)],
                now=at,
            )
            await conn.execute(outbox.insert(), rows)
            written += 1
    return written
