"""Minimal asyncpg scripts doing the database work of each scenario, to compare carnet with.

They run in the same process run as the carnet scenarios, against the same database (carnet's
schema, its migrations applied, the same rows around), with the same concurrency (32 asyncio
tasks sharing an asyncpg pool of as many connections), on the same machine. What they do:

- **publish**, per document, what carnet writes per published document: a ``documents`` row,
  a ``contents`` row, a ``content_chunks`` row (the encrypted 50 KB), a ``submission_sets``
  row, its ``document_authors`` rows, its ``audit_events`` rows (and ``outbox`` rows, if
  carnet wrote any) and the compare-and-set of the chain's ``audit_heads`` row. The rows are
  copies of the rows carnet wrote for one published document (same columns, same sizes), with
  fresh keys, content bytes, hashes and chain positions. Two ways:

  - ``tx``: one transaction, one statement per table (``BEGIN``, 7 statements, ``COMMIT``);
  - ``cte``: one statement (data-modifying CTEs), one round trip, in autocommit;

  over 1,000 records of its own (their chain heads created beforehand), round robin.
- **search**: one record's documents with all their columns (the sealed resource included),
  ``WHERE record_id = $1 ORDER BY date DESC LIMIT 21``, round robin over the searched records.
- **retrieve**: one content chunk (the 50 KB encrypted content) by its key, round robin over
  the retrieved documents' contents.

No rules, no decryption, no JSON, no HTTP: the database's share of the work, and the ceiling
carnet is measured against (limits.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.load import MAX_REQUESTS, MAX_SECONDS, LoadResult

# the tables carnet writes per published document, in the order the minimal script writes them
PUBLISH_TABLES = (
    "documents",
    "contents",
    "content_chunks",
    "submission_sets",
    "document_authors",
    "audit_events",
    "outbox",
)


async def create_pool(dsn: str, size: int) -> Any:
    import asyncpg

    return await asyncpg.create_pool(dsn, min_size=size, max_size=size)


async def run_ops(
    op: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    start_index: int = 0,
    max_error_samples: int = 5,
) -> LoadResult:
    """The closed loop of bench/load.py, for coroutines instead of HTTP requests."""
    seconds = min(seconds, MAX_SECONDS)
    max_requests = min(max_requests, MAX_REQUESTS)
    result = LoadResult()
    counter = itertools.count(start_index)
    stop_index = start_index + max_requests
    t0 = time.perf_counter()
    deadline = t0 + seconds
    buckets: Counter[int] = Counter()

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            if n >= stop_index:
                return
            result.sent += 1
            started = time.perf_counter()
            try:
                await op(n)
            except Exception as exc:
                result.errors += 1
                result.statuses[0] += 1
                result.failed.append(n)
                if len(result.error_samples) < max_error_samples:
                    result.error_samples.append(
                        {"request": n, "status": 0, "body": f"{type(exc).__name__}: {exc}"[:600]}
                    )
                continue
            finished = time.perf_counter()
            result.ok += 1
            result.statuses[200] += 1
            result.latencies_ok.append(finished - started)
            buckets[int(finished - t0)] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - t0
    result.per_second_ok = [buckets.get(i, 0) for i in range(int(result.elapsed) + 1)]
    return result


# -- publish -------------------------------------------------------------------------------------


@dataclass
class PublishTemplate:
    """The rows carnet wrote for one published document, table by table."""

    rows: dict[str, list[dict[str, Any]]]

    def row_counts(self) -> dict[str, int]:
        return {t: len(r) for t, r in self.rows.items()}

    def byte_sizes(self) -> dict[str, int]:
        """Bytes of bytea values per table (the sealed resource, the encrypted content)."""
        return {
            t: sum(len(v) for row in rows for v in row.values() if isinstance(v, bytes))
            for t, rows in self.rows.items()
        }


async def publish_template(dsn: str, doc_id: str) -> PublishTemplate:
    """Read back what carnet wrote for the document ``doc_id``."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        doc = await conn.fetchrow("SELECT * FROM documents WHERE doc_id = $1", doc_id)
        if doc is None:
            raise RuntimeError(f"document {doc_id} not found in the database")
        rid = doc["record_id"]
        content = await conn.fetch(
            "SELECT * FROM contents WHERE record_id = $1 AND sha256 = $2", rid, doc["sha256"]
        )
        blob_ids = [r["blob_id"] for r in content]
        rows: dict[str, list[dict[str, Any]]] = {
            "documents": [dict(doc)],
            "contents": [dict(r) for r in content],
            "content_chunks": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM content_chunks WHERE record_id = $1 AND blob_id = ANY($2)",
                    rid,
                    blob_ids,
                )
            ],
            "submission_sets": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM submission_sets WHERE record_id = $1 AND set_id = $2",
                    rid,
                    doc["submission_set_id"],
                )
            ],
            "document_authors": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM document_authors WHERE record_id = $1 AND doc_id = $2",
                    rid,
                    doc_id,
                )
            ],
            "audit_events": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM audit_events WHERE record_id = $1 AND doc_id = $2 ORDER BY seq",
                    rid,
                    doc_id,
                )
            ],
            "outbox": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM outbox WHERE record_id = $1 AND position($2 in payload) > 0",
                    rid,
                    doc_id,
                )
            ],
        }
    finally:
        await conn.close()
    return PublishTemplate({t: r for t, r in rows.items() if r})


def _insert_sql(table: str, columns: Sequence[str], nrows: int, start: int) -> tuple[str, int]:
    """``INSERT INTO table (columns) VALUES ($start…), (…)`` and the next parameter number."""
    groups = []
    n = start
    for _ in range(nrows):
        groups.append("(" + ", ".join(f"${n + i}" for i in range(len(columns))) + ")")
        n += len(columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(groups)}", n


class MinimalPublish:
    """Writes copies of a :class:`PublishTemplate` with fresh keys, over ``records`` records of
    its own (their ``audit_heads`` rows are created by :meth:`prepare`)."""

    HEAD_SQL = "UPDATE audit_heads SET seq = $2, hash = $3 WHERE record_id = $1 AND seq = $4"

    def __init__(self, template: PublishTemplate, records: int, run_id: int) -> None:
        self.template = template
        self.tables = [t for t in PUBLISH_TABLES if t in template.rows]
        self.columns = {t: list(template.rows[t][0]) for t in self.tables}
        self.record_ids = [f"zmin{run_id % 10**6:06d}{i:06d}" for i in range(records)]
        self.heads = {r: (0, "0" * 64) for r in self.record_ids}
        self.run_id = run_id
        # per table statements (tx) and the one statement (cte)
        self.statements: list[tuple[str, str]] = []
        ctes = []
        n = 1
        for t in self.tables:
            sql, _ = _insert_sql(t, self.columns[t], len(template.rows[t]), 1)
            self.statements.append((t, sql))
            cte_sql, n = _insert_sql(t, self.columns[t], len(template.rows[t]), n)
            ctes.append(f"w_{t} AS ({cte_sql} RETURNING 1)")
        self.cte_sql = (
            "WITH "
            + ",\n".join(ctes)
            + f",\nh AS (UPDATE audit_heads SET seq = ${n + 1}, hash = ${n + 2} "
            + f"WHERE record_id = ${n} AND seq = ${n + 3} RETURNING 1)\n"
            + "SELECT count(*) FROM h"
        )

    async def prepare(self, pool: Any) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO audit_heads (record_id, seq, hash) "
                "SELECT r, 0, $2 FROM unnest($1::text[]) AS r ON CONFLICT DO NOTHING",
                self.record_ids,
                "0" * 64,
            )

    def rows_for(self, n: int) -> tuple[str, list[list[Any]], tuple[Any, ...]]:
        """(record id, per table the flat parameter list, the head's update arguments)."""
        rid = self.record_ids[n % len(self.record_ids)]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        suffix = f"{self.run_id % 10**6:06d}{n:014d}"
        doc_id = f"{rid}-{suffix}"
        set_id = f"{rid}-s{suffix}"
        blob_id = secrets.token_hex(16)
        sha256 = secrets.token_hex(32)
        seq, prev = self.heads[rid]
        params: list[list[Any]] = []
        for t in self.tables:
            flat: list[Any] = []
            for row in self.template.rows[t]:
                new = dict(row)
                new["record_id"] = rid
                for key, value in (
                    ("doc_id", doc_id),
                    ("binary_id", doc_id),
                    ("blob_id", blob_id),
                    ("sha256", sha256),
                    ("submission_set_id", set_id),
                    ("created_at", now),
                    ("last_updated", now),
                ):
                    if key in new:
                        new[key] = value
                if t == "documents":
                    new["unique_id"] = f"urn:oid:1.2.250.1.999.{self.run_id}.9.{n}"
                    new["date"] = now
                elif t == "submission_sets":
                    new["set_id"] = set_id
                    new["unique_id"] = f"urn:oid:1.2.250.1.999.{self.run_id}.8.{n}"
                elif t == "content_chunks":
                    data = row["data"]
                    new["data"] = data[:-16] + secrets.token_bytes(16)
                elif t == "audit_events":
                    seq += 1
                    new["event_id"] = f"{suffix}{seq:04d}"[-32:]
                    new["recorded_at"] = now
                    new["seq"] = seq
                    new["prev_hash"] = prev
                    prev = hashlib.sha256(prev.encode() + new["event_id"].encode()).hexdigest()
                    new["hash"] = prev
                elif t == "outbox":
                    new["event_id"] = f"{suffix}o{len(flat):04d}"[-32:]
                    new["next_attempt_at"] = now
                flat += [new[c] for c in self.columns[t]]
            params.append(flat)
        old_seq = self.heads[rid][0]
        self.heads[rid] = (seq, prev)
        return rid, params, (rid, seq, prev, old_seq)

    def tx_op(self, pool: Any) -> Callable[[int], Awaitable[None]]:
        statements = self.statements

        async def op(n: int) -> None:
            _rid, params, head = self.rows_for(n)
            async with pool.acquire() as conn, conn.transaction():
                for (_t, sql), args in zip(statements, params, strict=True):
                    await conn.execute(sql, *args)
                status = await conn.execute(self.HEAD_SQL, *head)
                if status != "UPDATE 1":
                    raise RuntimeError(f"head of {head[0]} moved: {status}")

        return op

    def cte_op(self, pool: Any) -> Callable[[int], Awaitable[None]]:
        sql = self.cte_sql

        async def op(n: int) -> None:
            _rid, params, head = self.rows_for(n)
            args = [v for flat in params for v in flat] + list(head)
            async with pool.acquire() as conn:
                moved = await conn.fetchval(sql, *args)
            if moved != 1:
                raise RuntimeError(f"head of {head[0]} moved")

        return op


# -- search and retrieve ---------------------------------------------------------------------


SEARCH_SQL = "SELECT * FROM documents WHERE record_id = $1 ORDER BY date DESC LIMIT 21"
RETRIEVE_SQL = (
    "SELECT data FROM content_chunks WHERE record_id = $1 AND blob_id = $2 AND chunk_no = 0"
)


def search_op(pool: Any, record_ids: Sequence[str]) -> Callable[[int], Awaitable[None]]:
    async def op(n: int) -> None:
        async with pool.acquire() as conn:
            rows = await conn.fetch(SEARCH_SQL, record_ids[n % len(record_ids)])
        if not rows:
            raise RuntimeError("no documents found")

    return op


def retrieve_op(pool: Any, keys: Sequence[tuple[str, str]]) -> Callable[[int], Awaitable[None]]:
    async def op(n: int) -> None:
        rid, blob_id = keys[n % len(keys)]
        async with pool.acquire() as conn:
            data = await conn.fetchval(RETRIEVE_SQL, rid, blob_id)
        if not data:
            raise RuntimeError("no content found")

    return op


async def content_keys(dsn: str, binary_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(record id, blob id) of the first content chunk of each Binary (= document) id."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT d.binary_id, c.record_id, c.blob_id FROM documents d "
            "JOIN contents c ON c.record_id = d.record_id AND c.sha256 = d.sha256 "
            "WHERE d.binary_id = ANY($1::text[])",
            list(binary_ids),
        )
    finally:
        await conn.close()
    found = {r["binary_id"]: (r["record_id"], r["blob_id"]) for r in rows}
    return [found[b] for b in binary_ids if b in found]
