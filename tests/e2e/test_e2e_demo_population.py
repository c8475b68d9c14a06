"""``carnet demo --patients N --documents M``: a generated population, loaded by the operator's
bulk import while the server runs, reads through the real server exactly as if it had been
published through the API (dmp.md §3 rules included), and its traces chain."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from carnet.access.core import Core
from carnet.cli.demo import OPERATOR, generate
from carnet.demo.population import Population
from carnet.domain.documents import MASKED, is_entry_uuid
from carnet.settings import Settings
from carnet.store.db import create_engine
from carnet.store.tables import consents, documents, records
from tests.conftest import Server, running_server
from tests.factories import Factory

PATIENTS, DOCUMENTS, SEED = 30, 200, 4
TEST_OID = "1.2.250.1.213.1.4.10"


@pytest.fixture(scope="module")
def loaded(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server of its own, and the population loaded while it runs."""
    with running_server(backend, tmp_path_factory.mktemp(f"carnet-demo-{backend}")) as srv:
        settings = srv.settings
        csv_path = settings.data_dir / "identities.csv"
        done = asyncio.run(
            generate(settings, PATIENTS, DOCUMENTS, seed=SEED, identities=csv_path, progress=False)
        )
        assert done[:2] == (PATIENTS, DOCUMENTS)
        yield srv, csv_path


async def _rows(settings: Settings, query: Any) -> list[Any]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(query))
    finally:
        await engine.dispose()


def _csv(path: Path) -> tuple[list[dict[str, str]], dict[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    patients = [r for r in rows if r["kind"] == "patient"]
    pros = {r["id"]: r for r in rows if r["kind"] == "professional"}
    return patients, pros


def _headers(http: httpx.Client, pro: dict[str, str]) -> dict[str, str]:
    claims = {"rpps": pro["id"], "profession": pro["profession"], "structure": pro["structure"]}
    if pro["specialty"]:
        claims["specialty"] = pro["specialty"]
    return Factory(http).professional(**claims)


def _contents() -> dict[str, bytes]:
    out = {}
    for _, recs in Population(PATIENTS, DOCUMENTS, seed=SEED).batches():
        for rec in recs:
            for d in rec.documents:
                out[str(d.entry.unique_id)] = d.content
    return out


def test_a_professional_finds_searches_and_reads(loaded: tuple[Server, Path]) -> None:
    server, csv_path = loaded
    patients, pros = _csv(csv_path)
    assert len(patients) == PATIENTS and len(pros) >= 22
    rows = asyncio.run(
        _rows(server.settings, select(records.c.ins_value, records.c.treating_physician))
    )
    treated = {ins: gp for ins, gp in rows if gp}
    ins = next(p["id"] for p in patients if p["id"] in treated)
    gp = pros[treated[ins].removeprefix("rpps:")]
    expected = _contents()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        headers = _headers(http, gp)
        found = http.get(
            "/fhir/Patient", params={"identifier": f"urn:oid:{TEST_OID}|{ins}"}, headers=headers
        )
        assert found.status_code == 200, found.text
        (entry,) = found.json()["entry"]
        pid = entry["resource"]["id"]
        assert entry["resource"]["identifier"][0]["value"] == ins
        page = http.get("/fhir/DocumentReference", params={"patient": pid}, headers=headers)
        assert page.status_code == 200, page.text
        docs = [e["resource"] for e in page.json().get("entry", [])]
        assert docs, "the médecin traitant reads the record's documents"
        for doc in docs[:5]:
            uid = doc["masterIdentifier"]["value"].removeprefix("urn:oid:")
            # the import assigns each document an entryUUID, as a publish does
            [entry_uuid] = [i["value"] for i in doc["identifier"] if i["use"] == "official"]
            assert is_entry_uuid(entry_uuid), doc["identifier"]
            body = http.get(f"/fhir/Binary/{doc['id']}", headers=headers)
            assert body.status_code == 200, body.text
            assert body.content == expected[uid]


def test_blocked_professionals_and_masked_documents(loaded: tuple[Server, Path]) -> None:
    server, csv_path = loaded
    _, pros = _csv(csv_path)
    settings = server.settings
    blocks = asyncio.run(
        _rows(
            settings,
            select(records.c.record_id, records.c.ins_value, consents.c.actor_value)
            .join(consents, consents.c.record_id == records.c.record_id)
            .where(consents.c.decision == "deny"),
        )
    )
    assert blocks, f"seed {SEED} makes at least one block"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        rid, _ins, rpps = blocks[0]
        headers = _headers(http, pros[rpps])
        page = http.get("/fhir/DocumentReference", params={"patient": rid}, headers=headers)
        assert page.status_code in (403, 404) or not page.json().get("entry"), page.text
    # a masked document: read by its author, not by another authorised professional
    masked = asyncio.run(
        _rows(
            settings,
            select(
                documents.c.doc_id,
                documents.c.author_id,
                records.c.treating_physician,
                records.c.record_id,
            )
            .join(records, records.c.record_id == documents.c.record_id)
            .where(documents.c.security_labels.like(f"%{MASKED}%")),
        )
    )
    assert masked, f"seed {SEED} makes masked documents"
    permits = asyncio.run(
        _rows(
            settings,
            select(consents.c.record_id, consents.c.actor_value).where(
                consents.c.decision == "permit"
            ),
        )
    )
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for doc_id, author, gp, rid in masked:
            others = [
                v for r, v in permits if r == rid and f"rpps:{v}" not in (author, gp) and v in pros
            ]
            if not others or author.removeprefix("rpps:") not in pros:
                continue
            mine = http.get(
                f"/fhir/DocumentReference/{doc_id}",
                headers=_headers(http, pros[author.removeprefix("rpps:")]),
            )
            assert mine.status_code == 200, mine.text
            theirs = http.get(
                f"/fhir/DocumentReference/{doc_id}", headers=_headers(http, pros[others[0]])
            )
            assert theirs.status_code in (403, 404), theirs.text
            return
    pytest.fail("no masked document with another authorised professional to try")


def test_traces_chain_and_a_second_run_is_refused(loaded: tuple[Server, Path]) -> None:
    server, _ = loaded

    async def check() -> None:
        core = await Core.start(server.settings)
        try:
            report = await core.scope(OPERATOR).traces.verify()
        finally:
            await core.close()
        assert report.ok, report.problems[:3]
        assert report.events >= PATIENTS + DOCUMENTS

    asyncio.run(check())
    from carnet.domain.errors import Conflict

    with pytest.raises(Conflict, match="record already"):
        asyncio.run(generate(server.settings, 5, 10, seed=SEED, progress=False))
    # another seed: another population, added, here by two processes each importing a batch
    added = asyncio.run(
        generate(server.settings, 6, 20, seed=SEED + 1, batch=3, jobs=2, progress=False)
    )
    assert added[:2] == (6, 20)
    # the same again: refused in both processes, told as the core's refusal
    with pytest.raises(Conflict, match="record already"):
        asyncio.run(
            generate(server.settings, 6, 20, seed=SEED + 1, batch=3, jobs=2, progress=False)
        )
