"""Notifications: the outbox, the policy of who is told what, the worker (against a real SMTP
server, aiosmtpd), retries with back-off, the digest, and a worker killed mid-delivery.

Every test runs on SQLite, and on PostgreSQL when CARNET_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from carnet.domain.actors import AccessMode, Actor, ActorKind
from carnet.domain.clock import utcnow
from carnet.domain.errors import Invalid as InvalidInput
from carnet.domain.notifications import (
    Contact,
    Kind,
    Status,
    access_notices,
    new_document_notices,
)
from carnet.notify import Backoff, Worker, run_digest
from carnet.notify.mailer import message_id
from carnet.notify.messages import start_of_local_day
from carnet.settings import Settings
from carnet.store.crypto import MasterKey, load_master_key
from carnet.store.db import create_engine, migrate
from carnet.store.keyring import KeyRing
from carnet.store.keystore import KeyStore
from carnet.store.preferences import get_preferences, set_preferences
from carnet.store.tables import outbox, portal_notifications, records
from tests.conftest import PG_URL, _drop_database, _free_port, make_settings

SRC = Path(__file__).resolve().parents[2] / "src"
RECORD = "rec0001"
INS = "280047512345678"
PATIENT_MAIL = "marie.durand@example.org"
DOCTOR_MAIL = "dr.house@mssante.example.fr"
SECRET_TITLE = "Sérologie VIH positive"

DR_MARTIN = Actor(
    kind=ActorKind.PROFESSIONAL,
    subject="martin",
    issuer="test",
    rpps="10001234567",
    profession="10",
    structure="750712184",
    name="Jean Martin",
)
NURSE = Actor(
    kind=ActorKind.PROFESSIONAL,
    subject="lucie",
    issuer="test",
    rpps="20009876543",
    profession="60",
    structure="750712184",
    name="Lucie Bernard",
)
EMERGENCY = Actor(
    kind=ActorKind.PROFESSIONAL,
    subject="urgentiste",
    issuer="test",
    rpps="10009999999",
    profession="10",
    structure="130786049",
    name="Paul Urgent",
    mode=AccessMode.BRIS_DE_GLACE,
    reason="patient inconscient, suspicion d'AVC",
)
PATIENT = Actor(kind=ActorKind.PATIENT, subject="marie", issuer="test", ins=INS)


# -- a real SMTP server ---------------------------------------------------------------------------
@dataclass
class Received:
    sender: str
    rcpt: list[str]
    message: EmailMessage


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1, on a port chosen up front so that it can start late."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.handler = Handler()
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt]


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    srv = SmtpServer()
    try:
        yield srv
    finally:
        srv.stop()


# -- a database per test ---------------------------------------------------------------------------
@pytest.fixture()
def settings(backend: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[Settings]:
    s, dbname = make_settings(
        backend,
        tmp_path / "data",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="dmp@carnet.example.fr",
        base_url="https://carnet.example.fr",
    )
    try:
        yield s
    finally:
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))


# the key ring of each test's database (by its URL): the record's key seals the address
KEYS: dict[str, KeyRing] = {}


async def open_keys(settings: Settings) -> KeyRing:
    """The configured key store, as the server and the worker open it."""
    master = load_master_key(settings.master_key, settings.data_dir / "master.key")
    return KeyRing(MasterKey(master), await KeyStore.open(settings))


@pytest.fixture()
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(settings)
    await migrate(eng)
    keys = await open_keys(settings)
    await keys.create(RECORD)
    KEYS[str(eng.url)] = keys
    async with eng.begin() as conn:
        await conn.execute(records.insert().values(**record_row(RECORD, INS)))
    try:
        yield eng
    finally:
        KEYS.pop(str(eng.url), None)
        await keys.store.close()
        await eng.dispose()


def record_row(record_id: str, ins: str) -> dict[str, Any]:
    now = datetime(2026, 1, 1)
    return {
        "record_id": record_id,
        "ins_oid": "1.2.250.1.213.1.4.10",
        "ins_value": ins,
        "identity_status": "VALI",
        "state": "active",
        "consent_by": "ins:" + ins,
        "consent_by_kind": "patient",
        "consent_structure": None,
        "consent_at": now,
        "emergency_centre15": True,
        "emergency_bris_de_glace": True,
        "emergency_masked": False,
        "version_id": 1,
        "created_at": now,
        "last_updated": now,
        "closed_at": None,
        "resource": b"{}",
    }


class Clock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


T0 = datetime(2026, 3, 12, 9, 0)  # 10:00 in Paris


def worker(engine: AsyncEngine, settings: Settings, clock: Clock, **kw: Any) -> Worker:
    kw.setdefault("backoff", Backoff(jitter=0.0))
    kw.setdefault("keys", KEYS[str(engine.url)])
    return Worker(engine, settings, clock=clock, **kw)


async def rows(engine: AsyncEngine, **where: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        q = select(outbox).order_by(outbox.c.event_id)
        for k, v in where.items():
            q = q.where(outbox.c[k] == v)
        return [dict(r._mapping) for r in await conn.execute(q)]


async def portal(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        q = select(portal_notifications).order_by(portal_notifications.c.notification_id)
        return [dict(r._mapping) for r in await conn.execute(q)]


async def _patient_of(conn: Any, record_id: str) -> str:
    ins = (
        await conn.execute(select(records.c.ins_value).where(records.c.record_id == record_id))
    ).scalar_one_or_none()
    return f"ins:{ins}" if ins else f"record:{record_id}"


async def _write(conn: Any, rows: list[dict[str, Any]]) -> list[str]:
    if rows:
        await conn.execute(outbox.insert(), rows)
    return [str(r["event_id"]) for r in rows]


async def on_access(
    conn: Any,
    actor: Actor,
    record_id: str,
    doc_id: str | None = None,
    treating_physician: str | Contact | None = None,
    **kw: Any,
) -> list[str]:
    """What the core writes with a professional's read (the outbox rows of
    :func:`access_notices`), in the caller's transaction."""
    rows = access_notices(
        actor,
        record_id,
        await _patient_of(conn, record_id),
        await get_preferences(conn, record_id),
        doc_id,
        treating_physician,
        **kw,
    )
    return await _write(conn, rows)


async def on_new_document(
    conn: Any, actor: Actor, record_id: str, doc_id: str, title: str | None, **kw: Any
) -> list[str]:
    rows = new_document_notices(
        actor,
        record_id,
        await _patient_of(conn, record_id),
        await get_preferences(conn, record_id),
        doc_id,
        title,
        **kw,
    )
    return await _write(conn, rows)


async def prefs(engine: AsyncEngine, **kw: Any) -> None:
    key = await KEYS[str(engine.url)].key_for(RECORD)
    async with engine.begin() as conn:
        await set_preferences(conn, RECORD, key=key, **kw)


async def access(
    engine: AsyncEngine, actor: Actor, at: datetime, doc: str = "rec0001-d1", **kw: Any
) -> list[str]:
    async with engine.begin() as conn:
        return await on_access(conn, actor, RECORD, doc, title=SECRET_TITLE, now=at, **kw)


def body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


# -- tests ----------------------------------------------------------------------------------------
async def test_emergency_access_tells_patient_and_treating_physician_at_once(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL, portal=False)  # emergencies ignore preferences
    doctor = Contact("rpps:10005555555", email=DOCTOR_MAIL)
    ids = await access(engine, EMERGENCY, T0, treating_physician=doctor)
    assert len(ids) == 4  # patient e-mail + portal, doctor portal + e-mail
    clock = Clock(T0)
    result = await worker(engine, settings, clock).run_once()
    assert (result.claimed, result.sent) == (4, 4)

    [mail] = smtp.to(PATIENT_MAIL)
    assert mail["Subject"] == "Accès en urgence à votre dossier médical partagé"
    assert mail["From"] == "dmp@carnet.example.fr"
    text = body(mail)
    assert "Paul Urgent, médecin (RPPS 10009999999)" in text
    assert "structure 130786049" in text
    assert "le 12/03/2026 à 10:00 (heure de Paris)" in text
    assert "bris de glace" in text
    assert "https://carnet.example.fr" in text
    assert SECRET_TITLE not in text and "AVC" not in text  # no medical content, ever
    email_row = next(
        r for r in await rows(engine, channel="email") if r["recipient"] == f"ins:{INS}"
    )
    assert email_row["address"] is None  # the patient's address is not in the row
    assert mail["Message-ID"] == message_id(email_row["event_id"], settings.smtp_from)

    [dmail] = smtp.to(DOCTOR_MAIL)
    assert "un de vos patients" in dmail["Subject"]
    assert "DURAND" not in body(dmail) and INS not in body(dmail)

    entries = await portal(engine)
    assert {e["recipient"] for e in entries} == {f"ins:{INS}", "rpps:10005555555"}
    mine = next(e for e in entries if e["recipient"] == f"ins:{INS}")
    assert mine["kind"] == Kind.EMERGENCY_ACCESS
    # no row names the document's title: outbox and portal rows are stored in clear (issue 7)
    assert SECRET_TITLE not in mine["body"] and "un document" in mine["body"]
    assert all(r["status"] == Status.SENT for r in await rows(engine))
    assert not any(SECRET_TITLE in str(r) for r in await rows(engine))

    again = await worker(engine, settings, clock).run_once()
    assert again.claimed == 0
    assert len(smtp.received) == 2


async def test_nothing_is_written_when_the_event_rolls_back(engine: AsyncEngine) -> None:
    await prefs(engine, email=PATIENT_MAIL)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await on_access(conn, EMERGENCY, RECORD, "rec0001-d1", now=T0)
            raise RuntimeError("the read failed after all")
    assert await rows(engine) == []


async def test_ordinary_accesses_are_grouped_in_a_daily_digest(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL)  # default: digest, portal on
    await access(engine, DR_MARTIN, T0, "rec0001-d1")
    await access(engine, DR_MARTIN, T0 + timedelta(minutes=5), "rec0001-d2")
    await access(engine, NURSE, T0 + timedelta(hours=3), "rec0001-d1")
    next_day = T0 + timedelta(days=1)
    await access(engine, NURSE, next_day, "rec0001-d3")
    clock = Clock(T0 + timedelta(hours=4))
    w = worker(engine, settings, clock)
    first = await w.run_once()
    assert first.sent == 3  # the portal entries that are due, at once
    assert smtp.received == []  # e-mails wait for the digest
    assert len(await rows(engine, status=Status.HELD)) == 4

    assert await run_digest(engine, now=T0 + timedelta(hours=5)) == 0  # the day is not over
    clock.now = next_day + timedelta(hours=2)
    assert await run_digest(engine, now=clock.now) == 1
    assert await run_digest(engine, now=clock.now) == 0  # told once
    await w.run_once()
    [mail] = smtp.to(PATIENT_MAIL)
    assert mail["Subject"] == "Accès à votre dossier médical partagé : résumé du 12/03/2026"
    text = body(mail)
    assert "Jean Martin, médecin (RPPS 10001234567)" in text
    assert "2 consultations (2 documents), à 10:00, 10:05" in text
    assert "Lucie Bernard, infirmier (RPPS 20009876543)" in text
    assert "1 consultation (1 document), à 13:00" in text
    assert SECRET_TITLE not in text
    assert len(await rows(engine, status=Status.DIGESTED)) == 3
    assert len(await rows(engine, status=Status.HELD)) == 1  # next day's, still waiting

    assert await run_digest(engine, now=clock.now, include_today=True) == 1
    await w.run_once()
    assert len(smtp.to(PATIENT_MAIL)) == 2
    assert "résumé du 13/03/2026" in smtp.to(PATIENT_MAIL)[1]["Subject"]


async def test_preferences_are_respected(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    assert (await prefs_of(engine)).access_mode == "digest"
    # no address: the portal only
    assert len(await access(engine, DR_MARTIN, T0)) == 1
    # the patient's own reads and new documents they added tell nobody
    assert await access(engine, PATIENT, T0) == []
    # at once
    await prefs(engine, email=PATIENT_MAIL, access_mode="immediate", portal=False)
    assert len(await access(engine, DR_MARTIN, T0)) == 1
    # not at all
    await prefs(engine, access_mode="none")
    assert await access(engine, DR_MARTIN, T0) == []
    # new documents: only when asked for
    async with engine.begin() as conn:
        assert await on_new_document(conn, DR_MARTIN, RECORD, "rec0001-d9", SECRET_TITLE) == []
    await prefs(engine, new_documents=True, portal=True)
    async with engine.begin() as conn:
        assert await on_new_document(conn, PATIENT, RECORD, "rec0001-d9", SECRET_TITLE) == []
        ids = await on_new_document(conn, DR_MARTIN, RECORD, "rec0001-d9", SECRET_TITLE, now=T0)
    assert len(ids) == 2
    p = await prefs_of(engine)
    assert (p.has_email, p.new_documents, p.access_mode, p.portal) == (
        True,
        True,
        "none",
        True,
    )

    result = await worker(engine, settings, Clock(T0)).run_once()
    assert result.sent == 4
    mails = smtp.to(PATIENT_MAIL)
    assert [m["Subject"] for m in mails] == [
        "Accès à votre dossier médical partagé",
        "Nouveau document dans votre dossier médical partagé",
    ]
    assert "Un nouveau document a été ajouté" in body(mails[1])
    assert SECRET_TITLE not in body(mails[1]) and "Jean Martin" not in body(mails[1])
    entries = await portal(engine)
    assert [e["kind"] for e in entries] == ["access", "new_document"]
    assert SECRET_TITLE not in str(entries) and SECRET_TITLE not in str(await rows(engine))

    with pytest.raises(InvalidInput):
        await prefs(engine, email="marie@example.org\r\nBcc: spy@example.org")
    with pytest.raises(InvalidInput):
        await prefs(engine, access_mode="weekly")
    await prefs(engine, email=None)
    assert not (await prefs_of(engine)).has_email


async def prefs_of(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return await get_preferences(conn, RECORD)


async def test_retries_with_back_off_until_the_smtp_server_answers(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    await prefs(engine, email=PATIENT_MAIL, portal=False)
    await access(engine, EMERGENCY, T0)
    clock = Clock(T0)
    w = worker(engine, settings, clock)

    r = await w.run_once()  # nobody listens on the port
    assert (r.claimed, r.sent, r.retried) == (2, 1, 1)  # the portal entry is in
    [row] = await rows(engine, channel="email")
    assert row["status"] == Status.FAILED and row["attempts"] == 1
    assert "Connection refused" in row["last_error"] or "Errno" in row["last_error"]
    assert row["next_attempt_at"] == T0 + timedelta(seconds=30)

    clock.advance(29)
    assert (await w.run_once()).claimed == 0  # not yet
    clock.advance(1)
    r = await w.run_once()  # still down: the delay doubles
    assert r.retried == 1
    [row] = await rows(engine, channel="email")
    assert row["attempts"] == 2
    assert row["next_attempt_at"] == clock.now + timedelta(seconds=60)

    smtp.start()
    clock.advance(60)
    r = await w.run_once()
    assert r.sent == 1
    [row] = await rows(engine, channel="email")
    assert (row["status"], row["attempts"], row["sent_at"]) == (Status.SENT, 3, clock.now)
    assert len(smtp.received) == 1
    await w.close()


def test_back_off_doubles_up_to_six_hours_with_jitter() -> None:
    import random

    b = Backoff(jitter=0.0)
    rng = random.Random(1)
    assert [b.delay(n, rng).total_seconds() for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert b.delay(20, rng) == timedelta(hours=6)
    jittered = [Backoff().delay(3, rng).total_seconds() for _ in range(50)]
    assert all(96 <= d <= 120 for d in jittered) and len(set(jittered)) > 1


async def test_dead_after_max_attempts_and_at_once_when_refused(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    await prefs(engine, email=PATIENT_MAIL, portal=False)
    await access(engine, EMERGENCY, T0)
    clock = Clock(T0)
    w = worker(engine, settings, clock, max_attempts=3)
    outcomes = []
    for _ in range(3):
        r = await w.run_once()
        outcomes.append((r.retried, r.dead))
        clock.advance(6 * 3600)
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    [row] = await rows(engine, channel="email")
    assert (row["status"], row["attempts"]) == (Status.DEAD, 3)
    assert row["last_error"]
    assert (await w.run_once()).claimed == 0  # dead stays dead

    # a mailbox that does not exist is refused for good (5xx): dead at the first attempt
    smtp.handler.refuse.add("nobody@example.org")
    smtp.start()
    await prefs(engine, email="nobody@example.org")
    await access(engine, EMERGENCY, clock.now)
    r = await w.run_once()
    assert r.dead == 1
    row = (await rows(engine, channel="email"))[-1]
    assert row["status"] == Status.DEAD and row["attempts"] == 1
    assert "550" in row["last_error"]
    await w.close()


async def test_without_smtp_server_e_mails_are_skipped(engine: AsyncEngine, tmp_path: Path) -> None:
    await prefs(engine, email=PATIENT_MAIL)
    await access(engine, EMERGENCY, T0)
    off = Settings(data_dir=tmp_path)  # no CARNET_SMTP_HOST
    r = await Worker(engine, off, clock=Clock(T0)).run_once()
    assert (r.sent, r.skipped) == (1, 1)
    [row] = await rows(engine, channel="email")
    assert row["status"] == Status.SKIPPED
    assert "CARNET_SMTP_HOST" in row["last_error"]


async def test_an_expired_lease_is_taken_over_and_the_late_worker_loses(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL)
    await access(engine, EMERGENCY, T0)
    clock = Clock(T0)
    slow = worker(engine, settings, clock, lease_seconds=60, owner="slow")
    token, claimed = await slow.claim()
    assert len(claimed) == 2
    fast = worker(engine, settings, clock, lease_seconds=60, owner="fast")
    assert (await fast.run_once()).claimed == 0  # leased to the slow one
    clock.advance(61)
    r = await fast.run_once()
    assert (r.claimed, r.sent) == (2, 2)
    # the slow worker wakes up: it may not mark or write anything any more
    from carnet.notify.worker import PassResult

    late = PassResult()
    for row in claimed:
        if row._mapping["channel"] == "portal":
            await slow._deliver(token, row, late)
    assert late.lost == 1 and late.sent == 0
    assert len(await portal(engine)) == 1
    assert all(r["status"] == Status.SENT and r["attempts"] == 2 for r in await rows(engine))
    await slow.close()
    await fast.close()


# -- processes: a worker killed between its claim and the delivery, a clean stop ----------------
def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(
        PYTHONPATH=str(SRC),
        CARNET_DATA_DIR=str(settings.data_dir),
        CARNET_SMTP_HOST=str(settings.smtp_host),
        CARNET_SMTP_PORT=str(settings.smtp_port),
        CARNET_SMTP_FROM=settings.smtp_from,
    )
    if settings.database_url:
        env["CARNET_DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


async def _carnet(settings: Settings, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "carnet",
        "notify",
        *args,
        env=_env(settings, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stderr(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    return (await proc.stderr.read()).decode(errors="replace")


async def _count(engine: AsyncEngine, *statuses: Status) -> int:
    async with engine.connect() as conn:
        q = (
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.status.in_([s.value for s in statuses]))
        )
        return int((await conn.execute(q)).scalar_one())


async def test_a_worker_killed_after_its_claim_loses_nothing(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL)
    n = 5
    for i in range(n):
        await access(engine, EMERGENCY, utcnow(), f"rec0001-d{i}")
    total = 2 * n  # e-mail + portal each

    # a worker that claims everything, then sleeps (test hook) before delivering: kill it there
    proc = await _carnet(
        settings, "once", "--lease-seconds", "4", CARNET_NOTIFY_TEST_PAUSE_AFTER_CLAIM="120"
    )
    try:
        deadline = time.monotonic() + 60
        while await _count(engine, Status.SENDING) < total:
            if proc.returncode is not None:
                raise AssertionError(f"the worker ended: {await _stderr(proc)}")
            assert time.monotonic() < deadline, "the worker never claimed"
            await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        _, err = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    assert smtp.received == [] and await portal(engine) == []
    assert await _count(engine, Status.SENDING) == total  # claimed, leased, not delivered

    # until the lease expires, nobody else takes them
    assert (await Worker(engine, settings).run_once()).claimed == 0
    lease_until = max(r["lease_until"] for r in await rows(engine))
    await asyncio.sleep(max(0.0, (lease_until - utcnow()).total_seconds()) + 0.2)
    # the lease expired: the next worker takes them over
    late = await _carnet(settings, "once", "--all")
    out, err = await late.communicate()
    assert late.returncode == 0, err.decode()
    assert f"sent {total}" in out.decode()

    final = await rows(engine)
    assert len(final) == total
    assert all(r["status"] == Status.SENT and r["attempts"] == 2 for r in final)
    mails = smtp.to(PATIENT_MAIL)
    assert len(mails) == n  # each exactly once
    expected = {
        message_id(r["event_id"], settings.smtp_from) for r in final if r["channel"] == "email"
    }
    assert {m["Message-ID"] for m in mails} == expected
    entries = await portal(engine)
    assert len(entries) == n
    assert {e["notification_id"] for e in entries} == {
        r["event_id"] for r in final if r["channel"] == "portal"
    }


async def test_run_stops_cleanly_on_sigterm(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL, portal=False)
    proc = await _carnet(settings, "run", "--interval", "0.1")
    try:
        await access(engine, EMERGENCY, utcnow())
        deadline = time.monotonic() + 60
        while not smtp.received:
            if proc.returncode is not None:
                raise AssertionError(f"the worker ended: {await _stderr(proc)}")
            assert time.monotonic() < deadline, "nothing was delivered"
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "notification worker stopped" in err.decode()
    assert len(smtp.received) == 1
    assert await _count(engine, Status.PENDING, Status.SENDING) == 0


async def test_the_digest_day_is_the_paris_day(engine: AsyncEngine) -> None:
    # 23:30 UTC on 12 March is 00:30 on 13 March in Paris
    late = datetime(2026, 3, 12, 23, 30)
    assert start_of_local_day(late) == datetime(2026, 3, 12, 23, 0)
    await prefs(engine, email=PATIENT_MAIL, portal=False)
    await access(engine, DR_MARTIN, late)
    assert await run_digest(engine, now=datetime(2026, 3, 13, 22, 0)) == 0  # 23:00 in Paris
    assert await run_digest(engine, now=datetime(2026, 3, 13, 23, 1)) == 1
    [digest] = await rows(engine, kind="digest")
    assert orjson.loads(digest["payload"])["day"] == "2026-03-13"


def test_cli_digest_writes_the_digests(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from carnet.cli.main import app

    async def seed() -> None:
        eng = create_engine(settings)
        await migrate(eng)
        keys = await open_keys(settings)
        try:
            key = await keys.create(RECORD)
            async with eng.begin() as conn:
                await conn.execute(records.insert().values(**record_row(RECORD, INS)))
                await set_preferences(conn, RECORD, key=key, email=PATIENT_MAIL)
                await on_access(conn, DR_MARTIN, RECORD, "rec0001-d1")
        finally:
            await keys.store.close()
            await eng.dispose()

    asyncio.run(seed())
    for name in list(os.environ):
        if name.startswith("CARNET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARNET_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("CARNET_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    today = runner.invoke(app, ["notify", "digest"])
    assert today.exit_code == 0, today.output
    assert "0 digest(s) written" in today.output  # today is not over
    now = runner.invoke(app, ["notify", "digest", "--include-today"])
    assert now.exit_code == 0, now.output
    assert "1 digest(s) written" in now.output


# -- the address at rest (issue 7) -----------------------------------------------------------------
async def test_the_patients_address_is_sealed_at_rest_and_gone_with_the_key(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    from carnet.domain.notifications import Channel, Recipient, outbox_rows
    from carnet.store.crypto import DecryptionError
    from carnet.store.keyring import KeyGone
    from carnet.store.preferences import open_email
    from carnet.store.tables import notification_preferences
    from tests.conftest import found_at_rest

    smtp.start()
    await prefs(engine, email=PATIENT_MAIL, access_mode="immediate")
    await access(engine, EMERGENCY, T0)
    await access(engine, DR_MARTIN, T0)  # at once
    await access(engine, NURSE, T0 - timedelta(days=1))  # …and one for a digest
    async with engine.begin() as conn:
        await set_preferences(conn, RECORD, access_mode="digest")
        await on_access(conn, NURSE, RECORD, "rec0001-d2", now=T0 - timedelta(days=1))
    assert await run_digest(engine, now=T0) == 1
    result = await worker(engine, settings, Clock(T0)).drain()
    assert result.sent == 8 and result.errors == []  # 4 e-mails (1 digest), 4 portal entries
    assert len(smtp.to(PATIENT_MAIL)) == 4

    # no row holds the address in clear: not the preferences, not the outbox (sent or not)
    assert all(r["address"] is None for r in await rows(engine))
    assert await found_at_rest(settings, PATIENT_MAIL) == []
    async with engine.connect() as conn:
        [(clear, sealed)] = (
            await conn.execute(
                select(notification_preferences.c.email, notification_preferences.c.email_sealed)
            )
        ).all()
    assert clear is None and PATIENT_MAIL.encode() not in sealed
    keys = KEYS[str(engine.url)]
    key = await keys.key_for(RECORD)
    assert open_email(key, RECORD, sealed) == PATIENT_MAIL
    with pytest.raises(DecryptionError):  # bound to its record: not moved to another
        open_email(key, "rec0002", sealed)

    # the record is destroyed (its key shredded): what is left opens with no key there is
    pending = outbox_rows(
        record_id=RECORD,
        kind=Kind.ACCESS,
        payload={"actor": {"name": "x"}, "mode": "normal", "at": "2026-03-12T10:00:00"},
        recipients=[Recipient(f"ins:{INS}", Channel.EMAIL)],
        now=T0,
    )
    async with engine.begin() as conn:
        await conn.execute(outbox.insert(), pending)
    await keys.destroy(RECORD)
    with pytest.raises(KeyGone):
        await keys.key_for(RECORD)
    assert await found_at_rest(settings, PATIENT_MAIL) == []
    # a notification still due when its record was destroyed is dropped, never sent
    r = await worker(engine, settings, Clock(T0)).run_once()
    assert (r.claimed, r.skipped, r.sent) == (1, 1, 0)
    [row] = await rows(engine, event_id=pending[0]["event_id"])
    assert row["status"] == Status.SKIPPED and "destroyed" in row["last_error"]
    assert len(smtp.to(PATIENT_MAIL)) == 4


async def test_an_address_changed_after_the_event_is_the_one_written_to(
    engine: AsyncEngine, settings: Settings, smtp: SmtpServer
) -> None:
    """The row does not copy the address: the worker opens the current one; without one any
    more, the e-mail is skipped."""
    smtp.start()
    await prefs(engine, email=PATIENT_MAIL, portal=False)
    await access(engine, EMERGENCY, T0)
    await prefs(engine, email="marie.new@example.org")
    await access(engine, EMERGENCY, T0)
    await prefs(engine, email=None)
    await access(engine, EMERGENCY, T0)  # no address: no e-mail row (the portal is told)
    await prefs(engine, email="marie.new@example.org")
    first = await worker(engine, settings, Clock(T0)).drain()
    assert first.sent == 5  # 2 e-mails, 3 portal entries
    assert len(smtp.to("marie.new@example.org")) == 2 and smtp.to(PATIENT_MAIL) == []
    await access(engine, EMERGENCY, T0)
    await prefs(engine, email=None)
    r = await worker(engine, settings, Clock(T0)).drain()
    assert r.skipped == 1
    [row] = [x for x in await rows(engine, channel="email") if x["status"] == Status.SKIPPED]
    assert row["last_error"] == "no e-mail address"


def test_addresses_stored_before_0008_are_sealed_after_it(backend: str, tmp_path: Path) -> None:
    """Rows written before migration 0008: the migration removes the addresses of outbox rows
    to the patient; the addresses of the preferences are sealed with each record's key when a
    process starts with the keys (carnet migrate, serve, notify), resumably, and the worker
    still delivers to them."""
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    from carnet.store.db import alembic_config
    from carnet.store.preferences import open_email, seal_clear_addresses, stored_email
    from carnet.store.services import StoreServices
    from carnet.store.tables import notification_preferences
    from tests.conftest import found_at_rest

    made, dbname = make_settings(backend, tmp_path / "data")
    at = "2026-01-01 00:00:00"
    ids = [f"rec{i:04d}" for i in range(1, 6)]  # rec0005: destroyed, its key gone

    def before(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "0007")
        for i, rid in enumerate(ids):
            row = record_row(rid, f"28004751234{i:04d}")
            conn.execute(records.insert().values(**row))
            conn.execute(
                text(
                    "INSERT INTO notification_preferences (record_id, email, new_documents, "
                    f"access_mode, portal, updated_at) VALUES ('{rid}', 'p.{rid}@example.org', "
                    f"false, 'immediate', true, '{at}')"
                )
            )
        for recipient, address in (
            ("ins:280047512340000", "p.rec0001@example.org"),
            ("rpps:10005555555", DOCTOR_MAIL),
        ):
            conn.execute(
                text(
                    "INSERT INTO outbox (record_id, event_id, kind, channel, recipient, address, "
                    "payload, status, attempts, next_attempt_at, created_at) VALUES ('rec0001', "
                    f"'e-{recipient[:4]}', 'emergency_access', 'email', '{recipient}', "
                    f"'{address}', '{{}}', 'sent', 1, '{at}', '{at}')"
                )
            )

    def after(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "head")

    async def go() -> None:
        eng = create_engine(made)
        keys = await open_keys(made)
        try:
            for rid in ids[:-1]:
                await keys.create(rid)
            async with eng.begin() as conn:
                await conn.run_sync(before)
            async with eng.begin() as conn:
                await conn.run_sync(after)
            by_recipient = {r["recipient"]: r["address"] for r in await rows(eng)}
            # the patient's address left the outbox; a professional's stays
            assert by_recipient == {"ins:280047512340000": None, "rpps:10005555555": DOCTOR_MAIL}
            # before the sealing, the clear address still counts
            async with eng.connect() as conn:
                assert (await get_preferences(conn, "rec0001")).has_email
                assert await stored_email(conn, b"", "rec0001") == "p.rec0001@example.org"
            # two at a time, as an interrupted run would have left it: it goes on from there
            assert await seal_clear_addresses(eng, keys, batch=2) == 5
            assert await seal_clear_addresses(eng, keys, batch=2) == 0
            async with eng.connect() as conn:
                got = {
                    r[0]: (r[1], r[2])
                    for r in await conn.execute(
                        select(
                            notification_preferences.c.record_id,
                            notification_preferences.c.email,
                            notification_preferences.c.email_sealed,
                        )
                    )
                }
            for rid in ids[:-1]:
                clear, sealed = got[rid]
                assert clear is None
                assert open_email(await keys.key_for(rid), rid, sealed) == f"p.{rid}@example.org"
            assert got["rec0005"] == (None, None)  # destroyed: no key to seal with, dropped
            for rid in ids:  # nowhere in clear, in the database's files either
                assert await found_at_rest(made, f"p.{rid}@example.org") == []
        finally:
            await keys.store.close()
            await eng.dispose()
        # a start with the keys (here: the store's own) finds nothing left to seal
        store = await StoreServices.start(made)
        await store.close()

    try:
        asyncio.run(go())
    finally:
        if dbname and PG_URL:
            asyncio.run(_drop_database(PG_URL, dbname))
