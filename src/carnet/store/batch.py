"""A write, as a list of operations committed all together or not at all.

The core's unit of work (access/unit_of_work.py) reads what it needs, decides, then hands the
store one :class:`Write`: row inserts, updates and deletes, and *checks*, the facts its
decisions rest on (a record's ``rules_version``, a document's version, a chain's head). If a
check no longer holds when the write commits, nothing is written and :class:`WriteConflict` is
raised: the unit of work reads the facts again and decides again.

Two ways to commit the same write:

- :func:`execute_pg` on PostgreSQL: **one statement** (a round trip), each operation a
  data-modifying CTE (inserts of many rows through ``unnest`` of arrays, so that the statement
  text, and its prepared plan, depend on the shape of the write, not on its size), checks read
  under a share lock (``FOR SHARE``) and verified at the end by ``carnet_check``, which raises
  and so aborts the whole statement;
- :func:`execute_sql` anywhere (SQLite): the operations one by one in the caller's transaction
  (opened with the write lock, so the facts read before cannot change meanwhile).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, Table, and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from carnet.store.tables import metadata
from carnet.store.upsert import insert_ignore


class WriteConflict(Exception):
    """A check failed or a unique key was taken meanwhile: read again, decide again."""


@dataclass(frozen=True, slots=True)
class Insert:
    table: Table
    rows: Sequence[dict[str, Any]]
    ignore_conflicts: bool = False  # ON CONFLICT DO NOTHING (idempotent facts)


@dataclass(frozen=True, slots=True)
class Update:
    table: Table
    where: dict[str, Any]  # equality conditions: the key and the values expected
    values: dict[str, Any]
    expect_rows: int | None = 1  # None: any number of rows


@dataclass(frozen=True, slots=True)
class Delete:
    table: Table
    where: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Check:
    """A row that must exist, with these values, when the write commits."""

    table: Table
    where: dict[str, Any]
    what: str = "a fact changed"


Op = Insert | Update | Delete | Check


@dataclass(slots=True)
class Write:
    ops: list[Op] = field(default_factory=list)

    def add(self, op: Op) -> None:
        if isinstance(op, Insert) and not op.rows:
            return
        self.ops.append(op)

    def __bool__(self) -> bool:
        return bool(self.ops)


# -- anywhere: one operation after the other, in the caller's transaction ------------------------


def _conds(table: Table, where: dict[str, Any]) -> Any:
    return and_(*[table.c[k] == v for k, v in where.items()])


async def execute_sql(conn: AsyncConnection, write: Write) -> None:
    pg = conn.dialect.name == "postgresql"
    try:
        for op in write.ops:
            if isinstance(op, Check):
                query = select(*[op.table.c[k] for k in op.where]).where(_conds(op.table, op.where))
                if pg:
                    query = query.with_for_update(read=True)
                if (await conn.execute(query)).first() is None:
                    raise WriteConflict(op.what)
            elif isinstance(op, Insert):
                if op.ignore_conflicts:
                    for row in op.rows:
                        await insert_ignore(conn, op.table, row)
                else:
                    await conn.execute(op.table.insert(), list(op.rows))
            elif isinstance(op, Update):
                result = await conn.execute(
                    update(op.table).where(_conds(op.table, op.where)).values(**op.values)
                )
                if op.expect_rows is not None and result.rowcount != op.expect_rows:
                    raise WriteConflict(f"{op.table.name} changed meanwhile")
            else:
                await conn.execute(delete(op.table).where(_conds(op.table, op.where)))
    except IntegrityError as exc:
        raise WriteConflict(f"a unique key was taken meanwhile ({exc.orig})") from None


# -- PostgreSQL: one statement ---------------------------------------------------------------------


def _pg_type(sqltype: TypeEngine[Any]) -> str:
    if isinstance(sqltype, Boolean):
        return "boolean"
    if isinstance(sqltype, Integer):
        return "integer"
    if isinstance(sqltype, DateTime):
        return "timestamp"
    if isinstance(sqltype, LargeBinary):
        return "bytea"
    return "text"


Shape = tuple[tuple[Any, ...], ...]


def _shape(write: Write) -> Shape:
    """What the statement's text depends on: each operation's kind, table, columns, and which
    conditions are NULL (its values go in the arguments)."""
    out: list[tuple[Any, ...]] = []
    for op in write.ops:
        table = op.table.name
        if isinstance(op, Check):
            out.append(("check", table, tuple((k, v is None) for k, v in op.where.items())))
        elif isinstance(op, Insert):
            out.append(("insert", table, tuple(op.rows[0]), op.ignore_conflicts))
        elif isinstance(op, Update):
            out.append(
                (
                    "update",
                    table,
                    tuple(op.values),
                    tuple((k, v is None) for k, v in op.where.items()),
                    op.expect_rows,
                )
            )
        else:
            out.append(("delete", table, tuple((k, v is None) for k, v in op.where.items())))
    return tuple(out)


def _arguments(write: Write) -> list[Any]:
    """The statement's arguments, in the order :func:`_statement` numbers them."""
    args: list[Any] = []
    for op in write.ops:
        if isinstance(op, Insert):
            rows = op.rows
            args += [[row[c] for row in rows] for c in rows[0]]
            continue
        if isinstance(op, Update):
            args += list(op.values.values())
        args += [v for v in op.where.values() if v is not None]
    return args


@functools.lru_cache(maxsize=512)
def _statement(shape: Shape) -> str:
    """The statement of a write of this shape: each operation a CTE waiting for the one before
    it (``after``: it reads its count), so that they run in the order of the write (a row
    deleted before a row with the same key is inserted, say); the checks verified at the end by
    ``carnet_check``, which aborts the whole statement when one fails."""
    n = 0

    def param(table: str, column: str, array: bool = False) -> str:
        nonlocal n
        n += 1
        kind = _pg_type(metadata.tables[table].c[column].type)
        return f"${n}::{kind}{'[]' if array else ''}"

    def where(table: str, conditions: tuple[tuple[str, bool], ...]) -> str:
        parts = [
            f"{name} IS NULL" if is_null else f"{name} = {param(table, name)}"
            for name, is_null in conditions
        ]
        return " AND ".join(parts) or "true"

    ctes: list[str] = []
    checks: list[str] = []
    for index, part in enumerate(shape):
        kind, table = part[0], part[1]
        name = f"w{index}"
        after = f" AND (SELECT count(*) FROM w{index - 1}) >= 0" if index else ""
        if kind == "check":
            ctes.append(
                f"{name} AS (SELECT 1 FROM {table} WHERE {where(table, part[2])}{after} FOR SHARE)"
            )
            checks.append(f"(SELECT count(*) FROM {name}) = 1")
        elif kind == "insert":
            columns, ignore = part[2], part[3]
            arrays = ", ".join(param(table, c, array=True) for c in columns)
            conflict = " ON CONFLICT DO NOTHING" if ignore else ""
            ctes.append(
                f"{name} AS (INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT * FROM unnest({arrays}) WHERE true{after}{conflict} RETURNING 1)"
            )
        elif kind == "update":
            sets = ", ".join(f"{c} = {param(table, c)}" for c in part[2])
            ctes.append(
                f"{name} AS (UPDATE {table} SET {sets} WHERE {where(table, part[3])}{after} "
                "RETURNING 1)"
            )
            if part[4] is not None:
                checks.append(f"(SELECT count(*) FROM {name}) = {int(part[4])}")
        else:
            ctes.append(
                f"{name} AS (DELETE FROM {table} WHERE {where(table, part[2])}{after} RETURNING 1)"
            )
    final = (
        f"SELECT carnet_check({' AND '.join(checks)}, 'a fact changed meanwhile')"
        if checks
        else "SELECT true"
    )
    return ("WITH " + ",\n".join(ctes) + "\n" + final) if ctes else final


def compile_pg(write: Write) -> tuple[str, list[Any]]:
    """The statement (and its arguments) that commits ``write`` on PostgreSQL; its text is made
    once per shape of write (and asyncpg prepares it once per connection)."""
    return _statement(_shape(write)), _arguments(write)


async def execute_pg(driver: Any, write: Write) -> None:
    """Commit ``write`` with one statement on an asyncpg connection in autocommit."""
    if not write:
        return
    sql, args = compile_pg(write)
    try:
        await driver.fetchval(sql, *args)
    except (
        asyncpg.UniqueViolationError,
        asyncpg.SerializationError,
        asyncpg.DeadlockDetectedError,
    ) as exc:
        raise WriteConflict(str(exc)) from None
