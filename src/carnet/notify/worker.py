"""The delivery worker: claims due outbox rows with a lease, delivers them, records the outcome.

At-least-once, crash-safe:

1. **claim** (one short transaction): rows that are due (``pending`` or ``failed`` whose
   ``next_attempt_at`` has come) or abandoned (``sending`` whose lease has expired) become
   ``sending``, with this worker's lease token and ``lease_until``; ``attempts`` is counted
   then, so that a row that crashes the worker every time still ends ``dead``. The statement
   re-checks the condition, so two workers never both claim a row (PostgreSQL also skips rows
   that another worker's claim has locked: ``FOR UPDATE SKIP LOCKED``).
2. **deliver**: an e-mail to the SMTP server, or a portal entry;
3. **finish** (one transaction per row): ``sent``; or ``failed`` with the next attempt after an
   exponential back-off (30 s, doubling, at most 6 h, with jitter); or ``dead`` after
   ``max_attempts`` or a permanent refusal; or ``skipped`` when e-mail is not configured.
   Only the holder of the lease may finish a row.

An e-mail to the patient carries no address in its row: the worker opens the patient's address,
sealed with the record's key in ``notification_preferences``, just before it sends (the record
destroyed meanwhile: the notification is dropped, ``skipped``). An e-mail to a professional (the
médecin traitant) carries their address.

A worker killed after 1 leaves its rows ``sending`` until the lease expires; the next worker
takes them over. A portal entry is written with the outbox update in one transaction, keyed by
the event id: exactly once. An e-mail accepted by the SMTP server just before a crash is sent
again, with the same ``Message-ID``.

Test hook: ``CARNET_NOTIFY_TEST_PAUSE_AFTER_CLAIM=<seconds>`` makes the worker sleep after its
claim is committed and before it delivers, so that a test can kill it at that point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, and_, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.clock import new_id, utcnow
from carnet.domain.notifications import Channel, Status
from carnet.notify.digest import run_digest
from carnet.notify.mailer import DeliveryError, Mailer, SmtpMailer, build_message
from carnet.notify.messages import Text, email_text, portal_text
from carnet.settings import Settings
from carnet.store.crypto import DecryptionError, MasterKey, load_master_key
from carnet.store.keyring import KeyGone, KeyRing
from carnet.store.keystore import KeyStore
from carnet.store.preferences import patient_address
from carnet.store.tables import outbox, portal_notifications
from carnet.store.upsert import insert_ignore

log = logging.getLogger("carnet.notify")

PAUSE_AFTER_CLAIM_ENV = "CARNET_NOTIFY_TEST_PAUSE_AFTER_CLAIM"
EMAIL_DISABLED = "e-mail disabled: CARNET_SMTP_HOST is not set"
NO_ADDRESS = "no e-mail address"
DESTROYED = "not sent: the record was destroyed"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1 after n failed ones: base × factor^(n-1), at most ``cap``,
    shortened by up to ``jitter`` (a fraction) so that failures do not retry in step."""

    base: float = 30.0
    factor: float = 2.0
    cap: float = 6 * 3600.0
    jitter: float = 0.2

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        seconds = min(self.cap, self.base * self.factor ** max(0, attempts - 1))
        if self.jitter:
            seconds *= 1.0 - self.jitter * rng.random()
        return timedelta(seconds=seconds)


@dataclass(slots=True)
class PassResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    lost: int = 0  # the lease expired and another worker took the row over
    errors: list[str] = field(default_factory=list)


class _LeaseLost(Exception):
    pass


def default_owner() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}"


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        mailer: Mailer | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease_seconds: float = 300.0,
        batch_size: int = 50,
        max_attempts: int = 8,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        owner: str | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.engine = engine
        self._keys = keys  # the record keys, to open patients' addresses
        self._own_keys: KeyStore | None = None  # a key store this worker opened (and closes)
        self.settings = settings
        self._mailer = mailer
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()  # jitter, not secrets
        self.owner = owner or default_owner()

    @property
    def email_enabled(self) -> bool:
        return self._mailer is not None or bool(self.settings.smtp_host)

    def mailer(self) -> Mailer:
        if self._mailer is None:
            self._mailer = SmtpMailer(self.settings)
        return self._mailer

    async def keys(self) -> KeyRing:
        """The record keys: those given, else the configured key store (opened once)."""
        if self._keys is None:
            s = self.settings
            master = MasterKey(load_master_key(s.master_key, s.data_dir / "master.key"))
            self._own_keys = await KeyStore.open(s)
            self._keys = KeyRing(master, self._own_keys)
        return self._keys

    async def _address(self, m: Any) -> str | None:
        """Where an e-mail goes: a professional's address is in the row; the patient's is
        opened from the record's sealed preferences (KeyGone: the record was destroyed)."""
        if m["address"]:
            return str(m["address"])
        keys = await self.keys()
        try:
            async with self.engine.connect() as conn:
                return await patient_address(conn, keys, m["record_id"])
        finally:
            # keep no record key in this process's memory: one destroyed meanwhile must not
            # outlive its shredding here
            keys.forget(m["record_id"])

    async def close(self) -> None:
        if self._mailer is not None:
            await self._mailer.close()
        if self._own_keys is not None:
            await self._own_keys.close()
            self._own_keys = None
            self._keys = None

    # -- claim --------------------------------------------------------------------------------
    def _due(self, now: datetime) -> Any:
        return or_(
            and_(
                outbox.c.status.in_((Status.PENDING.value, Status.FAILED.value)),
                outbox.c.next_attempt_at <= now,
            ),
            and_(outbox.c.status == Status.SENDING.value, outbox.c.lease_until < now),
        )

    async def claim(self) -> tuple[str, list[Row[Any]]]:
        """Lease up to ``batch_size`` due rows to this worker; returns (lease token, rows)."""
        now = self.clock()
        token = f"{self.owner}:{new_id()[:12]}"[-64:]
        due = self._due(now)
        async with self.engine.begin() as conn:
            query = (
                select(outbox.c.record_id, outbox.c.event_id)
                .where(due)
                .order_by(outbox.c.next_attempt_at, outbox.c.event_id)
                .limit(self.batch_size)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            keys = [(r[0], r[1]) for r in await conn.execute(query)]
            if not keys:
                return token, []
            claimed = await conn.execute(
                update(outbox)
                .where(tuple_(outbox.c.record_id, outbox.c.event_id).in_(keys), due)
                .values(
                    status=Status.SENDING.value,
                    lease_owner=token,
                    lease_until=now + self.lease,
                    attempts=outbox.c.attempts + 1,
                )
                .returning(*outbox.c)
            )
            rows = list(claimed.all())
        rows.sort(key=lambda r: (r._mapping["next_attempt_at"], r._mapping["event_id"]))
        return token, rows

    # -- one pass -----------------------------------------------------------------------------
    async def run_once(self) -> PassResult:
        """Claim one batch and deliver it."""
        token, rows = await self.claim()
        result = PassResult(claimed=len(rows))
        if not rows:
            return result
        pause = os.environ.get(PAUSE_AFTER_CLAIM_ENV)
        if pause:
            log.warning("test hook %s: sleeping %s s after the claim", PAUSE_AFTER_CLAIM_ENV, pause)
            await asyncio.sleep(float(pause))
        for row in rows:
            await self._deliver(token, row, result)
        return result

    async def drain(self, max_passes: int = 1000) -> PassResult:
        """Passes until nothing is due (tests, ``carnet notify once --all``)."""
        total = PassResult()
        for _ in range(max_passes):
            r = await self.run_once()
            for name in ("claimed", "sent", "retried", "dead", "skipped", "lost"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
            total.errors.extend(r.errors)
            if r.claimed == 0:
                break
        return total

    async def _deliver(self, token: str, row: Row[Any], result: PassResult) -> None:
        m = row._mapping
        try:
            payload = orjson.loads(m["payload"])
            if m["channel"] == Channel.PORTAL:
                await self._deliver_portal(token, m, payload, result)
                return
            if m["channel"] != Channel.EMAIL:
                raise DeliveryError(f"unknown channel {m['channel']!r}", permanent=True)
            if not self.email_enabled:
                await self._finish(token, m, Status.SKIPPED, result, error=EMAIL_DISABLED)
                return
            try:
                address = await self._address(m)
            except KeyGone:  # destroyed meanwhile: nothing to tell, nobody to tell it to
                await self._finish(token, m, Status.SKIPPED, result, error=DESTROYED)
                return
            if not address:
                await self._finish(token, m, Status.SKIPPED, result, error=NO_ADDRESS)
                return
            text = email_text(m["kind"], payload, base_url=self.settings.base_url)
            message = build_message(
                text, event_id=m["event_id"], sender=self.settings.smtp_from, to=address
            )
            await self.mailer().send(message)
        except DecryptionError as exc:  # a sealed address that does not open: never will
            await self._failed(token, m, f"cannot open the address: {exc}", True, result)
            return
        except DeliveryError as exc:
            await self._failed(token, m, str(exc), exc.permanent, result)
            return
        except (ValueError, KeyError, TypeError) as exc:  # a row we cannot render: never will
            await self._failed(token, m, f"cannot render: {exc!r}", True, result)
            return
        await self._finish(token, m, Status.SENT, result)

    async def _deliver_portal(
        self, token: str, m: Any, payload: dict[str, Any], result: PassResult
    ) -> None:
        text = portal_text(m["kind"], payload)
        now = self.clock()
        try:
            await self._write_portal(token, m, text, now)
        except _LeaseLost:
            result.lost += 1
            return
        result.sent += 1

    async def _write_portal(self, token: str, m: Any, text: Text, now: datetime) -> None:
        """The portal entry and the outbox update, together: exactly once."""
        async with self.engine.begin() as conn:
            await insert_ignore(
                conn,
                portal_notifications,
                {
                    "record_id": m["record_id"],
                    "notification_id": m["event_id"],
                    "recipient": m["recipient"],
                    "created_at": m["created_at"],
                    "kind": m["kind"],
                    "title": text.subject[:300],
                    "body": text.body,
                    "read_at": None,
                },
            )
            done = await conn.execute(
                self._mine(token, m).values(
                    status=Status.SENT.value,
                    sent_at=now,
                    last_error=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            if done.rowcount != 1:
                raise _LeaseLost  # roll the entry back: the new holder writes it

    def _mine(self, token: str, m: Any) -> Any:
        return update(outbox).where(
            outbox.c.record_id == m["record_id"],
            outbox.c.event_id == m["event_id"],
            outbox.c.status == Status.SENDING.value,
            outbox.c.lease_owner == token,
        )

    async def _finish(
        self, token: str, m: Any, status: Status, result: PassResult, *, error: str | None = None
    ) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            done = await conn.execute(
                self._mine(token, m).values(
                    status=status.value,
                    sent_at=now if status is Status.SENT else None,
                    last_error=error,
                    lease_owner=None,
                    lease_until=None,
                )
            )
        if done.rowcount != 1:
            log.warning(
                "outbox %s/%s: lease lost before it was marked %s (it may be sent twice)",
                m["record_id"],
                m["event_id"],
                status.value,
            )
            result.lost += 1
        elif status is Status.SENT:
            result.sent += 1
        else:
            result.skipped += 1

    async def _failed(
        self, token: str, m: Any, error: str, permanent: bool, result: PassResult
    ) -> None:
        now = self.clock()
        attempts = int(m["attempts"])
        dead = permanent or attempts >= self.max_attempts
        values: dict[str, Any] = {
            "status": (Status.DEAD if dead else Status.FAILED).value,
            "last_error": error[:2000],
            "lease_owner": None,
            "lease_until": None,
        }
        if not dead:
            values["next_attempt_at"] = now + self.backoff.delay(attempts, self.rng)
        async with self.engine.begin() as conn:
            done = await conn.execute(self._mine(token, m).values(**values))
        result.errors.append(error)
        if done.rowcount != 1:
            result.lost += 1
        elif dead:
            log.error(
                "outbox %s/%s: dead after %d attempts: %s",
                m["record_id"],
                m["event_id"],
                attempts,
                error,
            )
            result.dead += 1
        else:
            log.info(
                "outbox %s/%s: attempt %d failed (%s); next at %s",
                m["record_id"],
                m["event_id"],
                attempts,
                error,
                values["next_attempt_at"],
            )
            result.retried += 1

    # -- the loop -----------------------------------------------------------------------------
    async def run(
        self,
        stop: asyncio.Event,
        *,
        interval: float = 5.0,
        digest_every: float = 3600.0,
    ) -> None:
        """Deliver until ``stop`` is set; the batch under way is finished first. Builds the
        daily digests of completed days every ``digest_every`` seconds (0: never)."""
        last_digest: float | None = None
        try:
            while not stop.is_set():
                claimed = 0
                try:
                    if digest_every and (
                        last_digest is None or time.monotonic() - last_digest >= digest_every
                    ):
                        made = await run_digest(self.engine, now=self.clock())
                        last_digest = time.monotonic()
                        if made:
                            log.info("%d digest(s) written", made)
                    result = await self.run_once()
                    claimed = result.claimed
                except Exception:  # the database went away, …: try again later
                    log.exception("notification pass failed")
                if claimed >= self.batch_size:
                    continue  # more is due
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await self.close()
