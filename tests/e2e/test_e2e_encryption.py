"""Encryption at rest: no plaintext of a document's content anywhere on disk or in the database,
whichever interface brought it (ITI-65 Binary, ITI-105 inline data, raw Binary upload)."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import httpx

from tests.conftest import Server
from tests.e2e.conftest import Pro
from tests.factories import FHIR_JSON, Factory, created_doc_ids, docref, pdf_bytes, stored_blobs

MIB = 1024 * 1024


def _needles(content: bytes, marker: bytes) -> list[bytes]:
    """The marker, and the marker as it reads inside the base64 the client sent (any offset)."""
    out = [marker]
    for shift in range(3):
        b64 = base64.b64encode(b"\0" * shift + marker)
        out.append(b64[4 : len(b64) - 4])
    b64 = base64.b64encode(content)
    out.append(b64[len(b64) // 2 : len(b64) // 2 + 64])
    return out


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def _pg_dump(url: str) -> list[tuple[str, bytes]]:
    """Every row of every table, as text (bytea as hex) and as raw bytes of bytea columns."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        out: list[tuple[str, bytes]] = []
        for table in tables:
            for row in await conn.fetch(f'SELECT t::text AS line FROM "{table}" t'):
                out.append((table, row["line"].encode()))
            cols = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = $1 AND data_type = 'bytea'",
                table,
            )
            for col in cols:
                name = col["column_name"]
                for row in await conn.fetch(f'SELECT "{name}" AS v FROM "{table}"'):
                    if row["v"] is not None:
                        out.append((f"{table}.{name}", bytes(row["v"])))
        return out
    finally:
        await conn.close()


def test_no_plaintext_at_rest(
    http: httpx.Client, factory: Factory, pro: Pro, server: Server
) -> None:
    marker = b"CARNET-PLAINTEXT-MARKER-" + os.urandom(12).hex().encode()
    ins, pid = factory.open_record(pro.headers)
    # ITI-65: a small document, and a large one with the marker across a chunk boundary
    small = pdf_bytes(marker)
    large = bytearray(pdf_bytes(size=2 * MIB + 777))
    for at in (10, MIB - len(marker) // 2, 2 * MIB + 100):
        large[at : at + len(marker)] = marker
    large_b = bytes(large)
    r = factory.publish(
        ins,
        [
            (docref(ins, content=small, author_rpps=pro.rpps), small, "application/pdf"),
            (docref(ins, content=large_b, author_rpps=pro.rpps), large_b, "application/pdf"),
        ],
        pro.headers,
    )
    ids = created_doc_ids(r)
    # ITI-105 with inline data
    inline = b"Compte rendu " + marker + b" fin."
    r105 = http.post(
        "/fhir/DocumentReference",
        json=docref(
            ins, content=inline, inline=True, content_type="text/plain", author_rpps=pro.rpps
        ),
        headers={**pro.headers, **FHIR_JSON},
    )
    assert r105.status_code == 201, r105.text
    ids.append(r105.json()["id"])
    # raw Binary upload, then a DocumentReference pointing at it
    raw = b"%PDF-1.7 raw " + marker * 3
    up = http.post(
        "/fhir/Binary",
        content=raw,
        headers={
            **pro.headers,
            "Content-Type": "application/pdf",
            "X-Security-Context": f"Patient/{pid}",
        },
    )
    assert up.status_code == 201, up.text
    bid = up.headers["location"].rsplit("/Binary/", 1)[1]
    dr = docref(ins, binary_url=f"Binary/{bid}", author_rpps=pro.rpps)
    assert (
        http.post(
            "/fhir/DocumentReference", json=dr, headers={**pro.headers, **FHIR_JSON}
        ).status_code
        == 201
    )

    # what is served is the plaintext ...
    assert http.get(f"/fhir/Binary/{ids[0]}", headers=pro.headers).content == small
    assert http.get(f"/fhir/Binary/{ids[1]}", headers=pro.headers).content == large_b
    assert http.get(f"/fhir/Binary/{ids[2]}", headers=pro.headers).content == inline
    assert http.get(f"/fhir/Binary/{bid}", headers=pro.headers).content == raw
    # ... and stored metadata carry no content
    for did in ids:
        doc = http.get(f"/fhir/DocumentReference/{did}", headers=pro.headers).json()
        assert "data" not in doc["content"][0]["attachment"]
        assert marker.decode() not in str(doc)

    needles = [n for c in (small, large_b, inline, raw) for n in _needles(c, marker)]
    data_dir = server.settings.data_dir
    files = _files(data_dir)
    blobs = [b for did in ids for b in stored_blobs(server.settings, did.split("-")[0]).values()]
    assert blobs, "no blob was written"
    for blob in blobs:
        for needle in needles:
            assert needle not in blob, "plaintext found in a stored blob"
    if not server.settings.is_postgresql:
        names = {p.name for p in files}
        assert "carnet.sqlite" in names
    for path in files:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"plaintext found in {path}"
    # blobs under the content folder name nothing of the content either
    for path in files:
        assert marker.decode() not in str(path)
    if server.settings.is_postgresql:
        assert server.settings.database_url
        rows = asyncio.run(_pg_dump(server.settings.database_url))
        assert any(table == "documents" for table, _ in rows)
        hex_needles = [n.hex().encode() for n in needles]
        for table, value in rows:
            for needle in needles + hex_needles:
                assert needle not in value, f"plaintext found in table {table}"
