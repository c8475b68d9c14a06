"""A record's life (dmp.md §2 and §3 rule 1): closing and reopening, destruction on the
patient's request (irreversible and verifiable, backups included), the ten-year purge, objection
to creation; and $everything, which returns exactly what the caller may read."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from carnet.cli.main import app
from carnet.domain.clock import utcnow
from carnet.store.crypto import MasterKey, load_master_key
from carnet.store.tables import records
from tests.conftest import Server
from tests.factories import (
    ACCESS_EXT,
    ARCHIVED_EXT,
    FHIR_JSON,
    OBJECTION_EXT,
    RECORD_STATUS_EXT,
    TEST_OID,
    Factory,
    Person,
    Rules,
    docref,
    execute_sql,
    ext,
    open_blob,
    outcome,
    patient_resource,
    pdf_bytes,
    random_nir,
    stored_blobs,
)


@pytest.fixture()
def rules(http: httpx.Client, factory: Factory) -> Rules:
    return Rules(http, factory)


def _reads(rules: Rules, who: Person, doc_id: str) -> bool:
    r = rules.read(who, doc_id)
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def _status_only(rules: Rules, who: Person, ins: str) -> dict[str, Any]:
    r = rules.http.get(
        "/fhir/Patient", params={"identifier": f"urn:oid:{TEST_OID}|{ins}"}, headers=who.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1, r.json()
    body: dict[str, Any] = r.json()["entry"][0]["resource"]
    return body


# -- closing and reopening -----------------------------------------------------------------------


def test_closed_record_professionals_get_nothing(rules: Rules) -> None:
    author, reader = rules.pro(), rules.pro()
    ins, pid, patient = rules.record(author)
    doc = rules.doc(ins, author)
    assert rules.consent(patient, pid, rpps=reader.rpps).status_code == 201
    assert rules.visible(reader, pid) == {doc}

    # only the patient closes
    for who in (reader, author):
        r = rules.set_record_status(who, pid, "closed", reader=patient)
        assert r.status_code in (403, 404), r.text
        outcome(r, r.status_code)
    r = rules.set_record_status(patient, pid, "closed")
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert ext(r.json(), RECORD_STATUS_EXT) == {"url": RECORD_STATUS_EXT, "valueCode": "closed"}

    for who in (reader, author):
        assert rules.search(who, pid)["total"] == 0
        refused = rules.read(who, doc)
        outcome(refused, 404)
        assert refused.json() == rules.read(who, f"{pid}-{'0' * 20}").json()
        outcome(rules.content(who, doc), 404)
        outcome(rules.http.get(f"/fhir/Patient/{pid}", headers=who.headers), 404)
        e = rules.http.get(f"/fhir/Patient/{pid}/$everything", headers=who.headers)
        outcome(e, 404)
        # TD0.2: the status only
        status = _status_only(rules, who, ins)
        assert set(status) <= {"resourceType", "id", "meta", "identifier", "active", "extension"}
        assert status["active"] is False
        assert ext(status, RECORD_STATUS_EXT)["valueCode"] == "closed"  # type: ignore[index]
        assert ext(status, ACCESS_EXT)["valueCode"] == "none"  # type: ignore[index]
        assert "name" not in status and "birthDate" not in status
        # a closed record is not fed, and no authorisation is recorded on it
        added = rules.publish(ins, who)
        assert added.status_code in (403, 404), added.text
        c = rules.consent(who, pid, rpps=rules.pro().rpps)
        assert c.status_code in (403, 404), c.text
    # searching by traits gives nothing either
    r = rules.http.get(
        "/fhir/Patient",
        params={"family": "DURAND", "birthdate": "1980-04-12"},
        headers=reader.headers,
    )
    assert pid not in {e["resource"]["id"] for e in r.json().get("entry") or []}

    # the patient still reads everything
    assert rules.visible(patient, pid) == {doc}
    assert _reads(rules, patient, doc)
    assert rules.content(patient, doc).status_code == 200
    assert rules.http.get(f"/fhir/Patient/{pid}", headers=patient.headers).status_code == 200

    # reopening restores
    r = rules.set_record_status(patient, pid, "active")
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    assert rules.visible(reader, pid) == {doc}
    assert _reads(rules, reader, doc)
    assert ext(_status_only(rules, reader, ins), RECORD_STATUS_EXT)["valueCode"] == "active"  # type: ignore[index]


# -- destruction ---------------------------------------------------------------------------------


def _cli(server: Server, *args: str) -> Any:
    env = {
        "CARNET_DATA_DIR": str(server.settings.data_dir),
        "COLUMNS": "250",
        "CARNET_DATABASE_URL": server.settings.database_url or "",
    }
    return CliRunner().invoke(app, list(args), env=env)


def _grep(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _wrapped_key(data_dir: Path, pid: str) -> bytes | None:
    with sqlite3.connect(data_dir / "keys.sqlite") as conn:
        row = conn.execute(
            "SELECT wrapped_key FROM record_keys WHERE record_id = ?", (pid,)
        ).fetchone()
    return bytes(row[0]) if row else None


def _all_keys(data_dir: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(data_dir / "keys.sqlite") as conn:
        return [
            (r[0], bytes(r[1]))
            for r in conn.execute("SELECT record_id, wrapped_key FROM record_keys")
        ]


def _master(server: Server) -> MasterKey:
    data_dir = server.settings.data_dir
    return MasterKey(load_master_key(server.settings.master_key, data_dir / "master.key"))


def _take_backup(server: Server, dest: Path) -> None:
    """``carnet backup`` on SQLite; on PostgreSQL it says to use pg_dump (the content is in the
    database, the ``db`` content store) and copy the content folder (the ``file`` one)."""
    result = _cli(server, "backup", str(dest))
    if server.settings.is_postgresql:
        assert result.exit_code == 2, result.output
        assert "pg_dump" in result.output
        shutil.copytree(
            server.settings.content_dir, dest / "content", ignore=shutil.ignore_patterns(".tmp")
        )
    else:
        assert result.exit_code == 0, result.output
        assert (dest / "carnet.sqlite").is_file()
    assert not list(dest.rglob("keys.sqlite")), "the key store must stay out of backups"
    assert not list(dest.rglob("master.key"))


def test_destruction_is_irreversible_and_verifiable(
    rules: Rules, server: Server, tmp_path: Path
) -> None:
    author, reader = rules.pro(), rules.pro()
    rules.record(author)  # a neighbour, whose key stays in the key store
    ins, pid, patient = rules.record(author)
    assert rules.consent(patient, pid, rpps=reader.rpps).status_code == 201
    marker = b"CARNET-PLAINTEXT-" + uuid.uuid4().hex.encode()
    contents = [pdf_bytes(marker), pdf_bytes(marker)]
    docs = [rules.doc(ins, author, content=c) for c in contents]
    data_dir = server.settings.data_dir
    stored = stored_blobs(server.settings, pid)
    blobs = sorted(stored)
    assert len(blobs) == 2
    assert _wrapped_key(data_dir, pid) is not None

    backup = tmp_path / "backup"
    _take_backup(server, backup)
    # content is never stored in plaintext, live or backed up (on PostgreSQL the backup of the
    # content is the rows as pg_dump would copy them: ``stored``)
    assert _grep(backup, marker) == []
    assert _grep(data_dir, marker) == []
    assert not any(marker in blob for blob in stored.values())
    # ... yet the backed-up blobs open with the live key (so the check below means something)
    key = _master(server).unwrap(pid, _wrapped_key(data_dir, pid))  # type: ignore[arg-type]
    opened = [open_blob(stored[b], b, key, len(contents[0])) for b in blobs]
    assert sorted(opened) == sorted(contents)

    # a professional does not destroy a record; nor does another patient
    for who in (author, reader, rules.patient()):
        r = rules.http.delete(f"/fhir/Patient/{pid}", headers=who.headers)
        assert r.status_code in (403, 404), r.text
        outcome(r, r.status_code)
    assert _reads(rules, patient, docs[0])
    assert stored_blobs(server.settings, pid) and _wrapped_key(data_dir, pid) is not None

    r = rules.http.delete(f"/fhir/Patient/{pid}", headers=patient.headers)
    assert r.status_code == 200, r.text
    assert ext(r.json(), RECORD_STATUS_EXT)["valueCode"] == "destroyed"  # type: ignore[index]
    assert "name" not in r.json()

    # nothing is readable, for anyone
    for who in (patient, author, reader):
        for did in docs:
            outcome(rules.read(who, did), 404)
            outcome(rules.content(who, did), 404)
        outcome(rules.http.get(f"/fhir/Patient/{pid}", headers=who.headers), 404)
        assert rules.search(who, pid)["total"] == 0
        outcome(rules.http.get(f"/fhir/Patient/{pid}/$everything", headers=who.headers), 404)
    outcome(rules.http.delete(f"/fhir/Patient/{pid}", headers=patient.headers), 404)
    # the content (folder or rows) and the key are gone
    assert stored_blobs(server.settings, pid) == {}
    assert not (server.settings.content_dir / pid[:2] / pid).exists()
    assert _wrapped_key(data_dir, pid) is None
    # the backup taken before holds nothing readable: no plaintext, and no key of the live key
    # store opens its blobs
    assert _grep(backup, marker) == []
    master = _master(server)
    tried = 0
    for rid, wrapped in _all_keys(data_dir):
        other = master.unwrap(rid, wrapped)
        for b in blobs:
            tried += 1
            with pytest.raises(Exception):  # DecryptionError, whichever key
                open_blob(stored[b], b, other, len(contents[0]))
    assert tried > 0

    # the person may open a new record with the same INS
    r = rules.http.post(
        "/fhir/Patient", json=patient_resource(ins), headers={**author.headers, **FHIR_JSON}
    )
    assert r.status_code == 201, r.text
    new_pid = r.json()["id"]
    assert new_pid != pid
    assert rules.visible(patient, new_pid) == set()
    assert rules.http.get(f"/fhir/Patient/{new_pid}", headers=patient.headers).status_code == 200
    assert _wrapped_key(data_dir, new_pid) is not None


def test_destruction_leaves_no_readable_metadata_in_backups(
    rules: Rules, server: Server, tmp_path: Path
) -> None:
    author = rules.pro()
    marker = "ZZ" + uuid.uuid4().hex[:12].upper()
    ins = random_nir()
    r = rules.http.post(
        "/fhir/Patient",
        json=patient_resource(ins, family=marker),
        headers={**author.headers, **FHIR_JSON},
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    patient = rules.patient(ins)
    dr = docref(ins, author_rpps=author.rpps)
    dr["content"][0]["attachment"]["title"] = f"Synthèse {marker}"
    assert (
        rules.factory.publish(
            ins, [(dr, pdf_bytes(), "application/pdf")], author.headers
        ).status_code
        == 200
    )
    backup = tmp_path / "backup"
    _take_backup(server, backup)
    if server.settings.is_postgresql:
        _dump_tables(server, backup / "dump.bin")  # what pg_dump would hold: every row's bytes
    assert rules.http.delete(f"/fhir/Patient/{pid}", headers=patient.headers).status_code == 200
    assert _grep(backup, marker.encode()) == []


def _dump_tables(server: Server, dest: Path) -> None:
    """Every row of every table of the database, as bytes: a stand-in for pg_dump."""
    import asyncio

    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from carnet.store.tables import metadata

    async def go() -> bytes:
        engine = create_async_engine(server.settings.sqlalchemy_url)
        out = bytearray()
        try:
            async with engine.connect() as conn:
                for table in metadata.sorted_tables:
                    for row in (await conn.execute(select(table))).all():
                        for value in row:
                            out += value if isinstance(value, bytes) else str(value).encode()
                            out += b"\x00"
        finally:
            await engine.dispose()
        return bytes(out)

    data = asyncio.run(go())
    assert len(data) > 1000
    dest.write_bytes(data)


def _set_closed_at(server: Server, pid: str, years: int) -> None:
    changed = execute_sql(
        server.settings.sqlalchemy_url,
        update(records)
        .where(records.c.record_id == pid)
        .values(closed_at=utcnow() - timedelta(days=366 * years)),
    )
    assert changed == 1


def test_purge_after_ten_years(rules: Rules, server: Server) -> None:
    author = rules.pro()
    old_ins, old, old_patient = rules.record(author)
    _young_ins, young, young_patient = rules.record(author)
    old_doc = rules.doc(old_ins, author)
    for who, pid in ((old_patient, old), (young_patient, young)):
        assert rules.set_record_status(who, pid, "closed").status_code == 200
    _set_closed_at(server, old, 11)
    _set_closed_at(server, young, 9)
    assert stored_blobs(server.settings, old)

    dry = _cli(server, "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    text = " ".join(dry.output.split())
    assert f"would destroy Patient/{old}" in text
    assert young not in text
    assert "nothing changed" in text
    # nothing changed
    assert _reads(rules, old_patient, old_doc)
    assert stored_blobs(server.settings, old)
    assert _wrapped_key(server.settings.data_dir, old) is not None

    done = _cli(server, "purge")
    assert done.exit_code == 0, done.output
    assert "destroyed" in done.output
    outcome(rules.http.get(f"/fhir/Patient/{old}", headers=old_patient.headers), 404)
    outcome(rules.read(old_patient, old_doc), 404)
    assert stored_blobs(server.settings, old) == {}
    assert _wrapped_key(server.settings.data_dir, old) is None
    # the record closed nine years ago stays
    assert (
        rules.http.get(f"/fhir/Patient/{young}", headers=young_patient.headers).status_code == 200
    )
    again = _cli(server, "purge", "--dry-run")
    assert old not in again.output and young not in again.output


# -- objection to creation -----------------------------------------------------------------------


@pytest.mark.parametrize("by", ["professional", "patient"])
def test_objection_then_creation_is_refused(rules: Rules, by: str) -> None:
    ins = random_nir()
    who = rules.pro() if by == "professional" else rules.patient(ins)
    objection = patient_resource(
        ins, extra_extensions=[{"url": OBJECTION_EXT, "valueBoolean": True}]
    )
    r = rules.http.post("/fhir/Patient", json=objection, headers={**who.headers, **FHIR_JSON})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"
    # a professional opens no record for them, and is not told why (issue 7)
    r = rules.http.post(
        "/fhir/Patient", json=patient_resource(ins), headers={**rules.pro().headers, **FHIR_JSON}
    )
    assert "object" not in outcome(r, 403)["diagnostics"]
    r = rules.http.get(
        "/fhir/Patient",
        params={"identifier": f"urn:oid:{TEST_OID}|{ins}"},
        headers=rules.pro().headers,
    )
    assert r.status_code == 200 and r.json()["total"] == 0


# -- traces of refusals --------------------------------------------------------------------------


def test_refusals_are_traced_for_the_patient(rules: Rules) -> None:
    author, stranger = rules.pro(), rules.pro()
    ins, pid, patient = rules.record(author)
    probe = rules.http.get("/fhir/AuditEvent", params={"patient": pid}, headers=patient.headers)
    assert probe.status_code == 200, probe.text
    doc = rules.doc(ins, author)
    other_patient = rules.patient()
    outcome(rules.read(stranger, doc), 404)
    outcome(rules.consent(author, pid, rpps=stranger.rpps, decision="deny"), 403)
    stored = rules.read(author, doc).json()
    outcome(rules.relabel(other_patient, stored, ["N", "MASQUE_PS"]), 404)
    outcome(rules.relabel(stranger, stored, ["N", "MASQUE_PS"]), 404)
    masked = rules.read(author, rules.doc(ins, author, labels=["N", "MASQUE_PS"])).json()
    outcome(rules.relabel(author, masked, ["N"]), 403)  # only the patient unmasks

    r = rules.http.get(
        "/fhir/AuditEvent", params={"patient": pid, "_count": 200}, headers=patient.headers
    )
    assert r.status_code == 200, r.text
    denials: dict[str, list[str]] = {}
    for e in r.json()["entry"]:
        ev = e["resource"]
        if ev["outcome"] != "4":
            continue
        rules_ = [
            d["valueString"]
            for ent in ev.get("entity") or []
            for d in ent.get("detail") or []
            if d.get("type") == "rule"
        ]
        denials.setdefault(ev["agent"][0]["altId"], []).extend(rules_)
    assert "not-authorised" in denials.get(f"rpps:{stranger.rpps}", []), denials
    assert "patient-only" in denials.get(f"rpps:{author.rpps}", []), denials
    assert "patient" in denials.get(f"ins:{other_patient.ins}", []), denials
    # a professional sees their own traces, not the others'
    r = rules.http.get(
        "/fhir/AuditEvent", params={"patient": pid, "_count": 200}, headers=stranger.headers
    )
    assert r.status_code == 200
    agents = {e["resource"]["agent"][0]["altId"] for e in r.json().get("entry") or []}
    assert agents <= {f"rpps:{stranger.rpps}"}


# -- $everything ---------------------------------------------------------------------------------


def _everything(rules: Rules, who: Person, pid: str) -> tuple[dict[str, Any], set[str]]:
    r = rules.http.get(f"/fhir/Patient/{pid}/$everything", headers=who.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "searchset" and body["total"] == len(body["entry"])
    patients = [e["resource"] for e in body["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert [p["id"] for p in patients] == [pid]
    docs = [
        e["resource"]["id"]
        for e in body["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert len(docs) == len(set(docs))
    return patients[0], set(docs)


def test_everything_is_what_the_caller_may_read(rules: Rules) -> None:
    author, reader, stranger = rules.pro(), rules.pro(), rules.pro()
    ins, pid, patient = rules.record(author)
    assert rules.consent(patient, pid, rpps=reader.rpps).status_code == 201
    plain = rules.doc(ins, author)
    masked = rules.doc(ins, author, labels=["N", "MASQUE_PS"])
    hidden = rules.doc(ins, author, labels=["N", "INVISIBLE_PATIENT"])
    secret = rules.doc(ins, author, labels=["N", "INVISIBLE_REPRESENTANTS_LEGAUX"])
    psy = rules.doc(ins, author, type_code="68599-0", class_code="11")
    old = rules.doc(ins, author)
    new = rules.doc(ins, author, replaces=old)
    archived = rules.doc(ins, author)
    deleted = rules.doc(ins, author)
    stored = rules.read(author, archived).json()
    r = rules.put_doc(
        author, {**stored, "extension": [{"url": ARCHIVED_EXT, "valueBoolean": True}]}
    )
    assert r.status_code == 200, r.text
    stored = rules.read(author, deleted).json()
    assert rules.put_doc(author, {**stored, "status": "entered-in-error"}).status_code == 200
    dentist = rules.pro(profession="40")
    assert rules.consent(patient, pid, rpps=dentist.rpps).status_code == 201

    expected = {
        patient: {plain, masked, secret, psy, old, new, archived},
        author: {plain, masked, hidden, secret, psy, old, new, archived},
        reader: {plain, hidden, secret, psy, old, new, archived},
        dentist: {plain, hidden, secret, old, new, archived},
    }
    for who, ids in expected.items():
        resource, docs = _everything(rules, who, pid)
        searched = rules.visible(who, pid) | rules.visible(who, pid, archived="true")
        assert docs == searched == ids, (docs ^ ids, searched ^ ids)
        assert deleted not in docs
        for did in docs:
            assert _reads(rules, who, did)
    assert resource["id"] == pid
    outcome(rules.http.get(f"/fhir/Patient/{pid}/$everything", headers=stranger.headers), 404)
    outcome(
        rules.http.get(f"/fhir/Patient/{pid}/$everything", headers=rules.patient().headers), 404
    )
