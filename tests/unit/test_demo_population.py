"""The generator of ``carnet demo --patients N``: valid identifiers (NIR, RPPS, FINESS keys),
determinism by seed, the identities CSV, and the import refusing invalid data."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.cli.main import app
from carnet.demo.population import CSV_HEADER, Population, patient, professionals
from carnet.domain.errors import Rejected
from carnet.domain.ins import check_ins_value, make_nir, nir_key
from carnet.domain.professionals import (
    check_finess,
    check_idnatps,
    luhn_ok,
    make_finess,
    make_rpps,
)


def test_nir_keys_known_and_corrupted() -> None:
    # the textbook example (key 38)
    assert make_nir("2550814168025") == "255081416802538"
    assert check_ins_value("255081416802538") == "255081416802538"
    # Corsica: 2A reads as 19, 2B as 18
    assert nir_key("169102A123456") == 24 and nir_key("285092B123456") == 74
    assert check_ins_value("169102A12345624") == "169102A12345624"
    for bad in ("255081416802539", "25508141680253", "284032C12345601", "169102B12345624"):
        with pytest.raises(Rejected):
            check_ins_value(bad)


def test_rpps_and_finess_keys() -> None:
    assert make_rpps("1010000001") == "10100000016"  # the demo cast's Dr Bernard (8 + RPPS)
    assert check_idnatps("810100000016", field="x") == "810100000016"
    with pytest.raises(Rejected):
        check_idnatps("810100000017", field="x")
    # AP-HP's FINESS (entité juridique), and others of public hospitals
    assert make_finess("75071218") == "750712184"
    for known in ("750712184", "690781810", "130786049"):
        assert luhn_ok(known) and check_finess(known, field="x") == known
    with pytest.raises(Rejected):
        check_finess("750712185", field="x")
    with pytest.raises(ValueError):
        make_rpps("123")


def test_generated_identifiers_are_valid_and_distinct() -> None:
    import random

    people = [patient(7, i, random.Random(i)) for i in range(20_000)]
    assert len({p.ins for p in people}) == len(people)
    for p in people[:2000]:
        assert check_ins_value(p.ins) == p.ins
    pros = professionals(7, 200)
    assert len({p.rpps for p in pros}) == 200
    assert {p.profession for p in pros} >= {"10", "21", "26", "28", "40", "50", "60", "70", "98"}
    for p in pros:
        check_idnatps(p.rpps, field="x")
        check_finess(p.structure, field="x")


def _digest(seed: int) -> str:
    h = hashlib.sha256()
    for people, records in Population(40, 300, seed=seed).batches(16):
        for p, r in zip(people, records, strict=True):
            h.update(p.ins.encode() + r.identity.family.encode())
            for d in r.documents:
                d.entry.validate()
                assert d.entry.patient_value == p.ins
                h.update(d.content + str(d.entry.unique_id).encode())
    return h.hexdigest()


def test_deterministic_by_seed() -> None:
    assert _digest(1) == _digest(1)
    assert _digest(1) != _digest(2)
    counts = Population(40, 300, seed=1).counts()
    assert sum(counts) == 300 and len(counts) == 40 and len(set(counts)) > 1


def test_identities_csv(tmp_path: Path) -> None:
    out = tmp_path / "ids.csv"
    result = CliRunner().invoke(
        app,
        ["demo", "--patients", "12", "--documents", "40", "--identities", str(out)],
        env={"CARNET_DATA_DIR": str(tmp_path / "data"), "CARNET_DATABASE_URL": ""},
    )
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        assert tuple(next(reader)) == CSV_HEADER
        rows = list(reader)
    patients = [r for r in rows if r[0] == "patient"]
    pros = [r for r in rows if r[0] == "professional"]
    assert len(patients) == 12
    assert all(r[2] == "1.2.250.1.213.1.4.10" and check_ins_value(r[1]) for r in patients)
    assert pros and all(r[2] == "1.2.250.1.71.4.2.1" and r[3] and r[5] for r in pros)
    # the same population again: refused, nothing mixed in
    again = CliRunner().invoke(
        app,
        ["demo", "--patients", "12", "--documents", "40"],
        env={"CARNET_DATA_DIR": str(tmp_path / "data"), "CARNET_DATABASE_URL": ""},
    )
    assert again.exit_code == 1 and "record already" in again.output


async def test_the_import_refuses_invalid_data(core: object) -> None:
    from dataclasses import replace

    from carnet.access.core import Core
    from carnet.cli.demo import OPERATOR
    from carnet.domain.errors import Refused
    from carnet.domain.ins import Ins

    assert isinstance(core, Core)
    _, records = next(Population(3, 6, seed=9).batches())
    bad = records[0]
    bad.identity = replace(bad.identity, ins=Ins(bad.identity.ins.oid, "255081416802539"))
    with pytest.raises(Rejected, match="key"):
        await core.scope(OPERATOR).imports.load(records)
    _, records = next(Population(3, 6, seed=9).batches())
    records[1].documents[0].entry.class_code = None
    with pytest.raises(Rejected, match="class_code"):
        await core.scope(OPERATOR).imports.load(records)
    _, records = next(Population(3, 6, seed=9).batches())
    with pytest.raises(Refused):
        await core.scope(records[0].opened_by).imports.load(records)
    result = await core.scope(OPERATOR).imports.load(records)  # nothing was written before
    assert len(result.record_ids) == 3
    # the same people again, given records between the check and the write: refused too
    from carnet.domain.errors import Conflict
    from carnet.store.bulk import BulkStore

    async def nobody(self: BulkStore, ins: object) -> list[str]:
        return []

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BulkStore, "existing_ins", nobody)
        with pytest.raises(Conflict, match="meanwhile"):
            await core.scope(OPERATOR).imports.load(records)


async def test_the_import_keeps_postgresql_statistics_up_to_date(core: object) -> None:
    """Statistics follow the tables an import fills (autovacuum may be off or behind): without
    them the INS lookup of every batch read every record."""
    from sqlalchemy import text

    from carnet.access.core import Core
    from carnet.cli.demo import OPERATOR
    from carnet.store import bulk
    from carnet.store.db import create_engine

    assert isinstance(core, Core)
    if not core.settings.is_postgresql:
        pytest.skip("PostgreSQL's planner statistics")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bulk, "ANALYZE_MIN_RECORDS", 4)
        mp.setattr(bulk, "_GROWTH", {})
        for _, records in Population(12, 30, seed=11).batches(4):
            await core.scope(OPERATOR).imports.load(records)
    engine = create_engine(core.settings)
    try:
        async with engine.connect() as conn:
            reltuples = (
                await conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert reltuples >= 8  # analysed after 4 records, then after 4 more (as many as it held)


async def test_the_import_seals_the_patients_addresses(core: object) -> None:
    """The bulk path writes the patients' e-mail addresses as the normal path does: sealed with
    each record's key, never in clear (issue 7)."""
    from sqlalchemy import select

    from carnet.access.core import Core
    from carnet.cli.demo import OPERATOR
    from carnet.store.crypto import MasterKey, load_master_key
    from carnet.store.db import create_engine
    from carnet.store.keyring import KeyRing
    from carnet.store.keystore import KeyStore
    from carnet.store.preferences import open_email
    from carnet.store.tables import notification_preferences as np
    from tests.conftest import found_at_rest

    assert isinstance(core, Core)
    _, records = next(Population(10, 10, seed=13).batches())
    given = [r.email for r in records]
    assert any(given)
    result = await core.scope(OPERATOR).imports.load(records)
    s = core.settings
    keys = KeyRing(
        MasterKey(load_master_key(s.master_key, s.data_dir / "master.key")),
        await KeyStore.open(s),
    )
    engine = create_engine(s)
    try:
        async with engine.connect() as conn:
            rows = {
                r[0]: (r[1], r[2])
                for r in await conn.execute(select(np.c.record_id, np.c.email, np.c.email_sealed))
            }
        for rid, email in zip(result.record_ids, given, strict=True):
            clear, sealed = rows[rid]
            assert clear is None
            if email is None:
                assert sealed is None
            else:
                assert open_email(await keys.key_for(rid), rid, sealed) == email
                assert await found_at_rest(s, email) == []
    finally:
        await keys.store.close()
        await engine.dispose()
