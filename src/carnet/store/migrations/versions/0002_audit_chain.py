"""hash-chained traces per record

Revision ID: 0002
Revises: 0001

Adds ``seq``, ``prev_hash`` and ``hash`` to ``audit_events`` (docs/traces.md), chains the
events already stored (per record, in event_id order), and makes the table append-only with
triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

Record destruction will need to delete a record's traces: the triggers below are where to allow
it (e.g. a PostgreSQL session setting checked by the function, or dropping and recreating the
SQLite triggers inside the destroying transaction).

SQLite: a later batch migration that recreates ``audit_events`` drops its triggers; it must
call :func:`create_append_only_triggers` again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = "audit_events is append-only: traces are never changed or removed"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY} (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def create_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for name, event in (
            ("audit_events_no_update", "UPDATE"),
            ("audit_events_no_delete", "DELETE"),
        ):
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")


def _chain_existing() -> None:
    """Give the events stored before this migration their place in the chains."""
    from carnet.domain.traces import GENESIS, HASHED_FIELDS, chain_hash

    bind = op.get_bind()
    table = sa.table(
        "audit_events",
        *(
            sa.column(c, sa.DateTime() if c == "recorded_at" else sa.String())
            for c in (*HASHED_FIELDS, "prev_hash", "hash")
            if c != "seq"
        ),
        sa.column("seq", sa.Integer()),
    )
    columns = [table.c[c] for c in HASHED_FIELDS if c != "seq"]
    rows = bind.execute(
        sa.select(*columns).order_by(table.c.record_id, table.c.event_id)
    ).mappings()
    current: str | None = None
    seq, prev = 0, GENESIS
    updates: list[dict[str, object]] = []
    for row in rows.all():
        if row["record_id"] != current:
            current, seq, prev = row["record_id"], 0, GENESIS
        seq += 1
        event = {**row, "seq": seq}
        digest = chain_hash(prev, event)
        updates.append(
            {"r": row["record_id"], "e": row["event_id"], "s": seq, "p": prev, "h": digest}
        )
        prev = digest
    if updates:
        bind.execute(
            table.update()
            .where(table.c.record_id == sa.bindparam("r"), table.c.event_id == sa.bindparam("e"))
            .values(seq=sa.bindparam("s"), prev_hash=sa.bindparam("p"), hash=sa.bindparam("h")),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_audit_events_seq", ["record_id", "seq"])
        batch_op.create_index("ix_audit_events_actor", ["actor_id", "event_id"], unique=False)
    create_append_only_triggers()


def downgrade() -> None:
    drop_append_only_triggers()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_actor")
        batch_op.drop_constraint("uq_audit_events_seq", type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
