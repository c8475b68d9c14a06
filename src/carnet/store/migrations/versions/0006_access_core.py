"""the access core: chain heads, rules versions, document states, content in the database

Revision ID: 0006
Revises: 0005

- ``audit_heads``: the last event of each trace chain, so that appending compares and sets one
  row instead of locking the chain and reading its last event (filled from the events stored);
- ``records.rules_version``: bumped by every change of a fact the policy reads; a write checks
  it under a share lock, so that no decision goes stale before its write;
- ``document_history`` keeps the state of past versions (status, archive flag, labels) instead
  of a sealed copy of the whole resource (rows already there keep theirs);
- ``content_chunks`` and ``contents.store``: content kept in the database, encrypted, when the
  ``db`` content store is configured;
- indexes for the searches that name no patient (author, médecin traitant, consents by actor);
- PostgreSQL: ``carnet_check(ok, what)``, which raises (and so aborts the statement that calls
  it) when a write's guard does not hold (store/batch.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PG_CHECK = """
CREATE OR REPLACE FUNCTION carnet_check(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'carnet: %', what USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("record_id", sa.String(length=64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
    )
    op.execute(
        "INSERT INTO audit_heads (record_id, seq, hash) "
        "SELECT e.record_id, e.seq, e.hash FROM audit_events e "
        "JOIN (SELECT record_id, MAX(seq) AS seq FROM audit_events GROUP BY record_id) m "
        "ON m.record_id = e.record_id AND m.seq = e.seq"
    )
    with op.batch_alter_table("records") as batch:
        batch.add_column(
            sa.Column("rules_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch.create_index("ix_records_treating", ["treating_physician"])
    with op.batch_alter_table("document_history") as batch:
        batch.alter_column("resource", existing_type=sa.LargeBinary(), nullable=True)
        batch.add_column(sa.Column("status", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("archived", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("security_labels", sa.String(length=256), nullable=True))
    with op.batch_alter_table("consents") as batch:
        batch.alter_column("resource", existing_type=sa.LargeBinary(), nullable=True)
        batch.create_index("ix_consents_actor_value", ["actor_value"])
    with op.batch_alter_table("contents") as batch:
        batch.add_column(
            sa.Column("store", sa.String(length=8), nullable=False, server_default="file")
        )
    op.create_table(
        "content_chunks",
        sa.Column("record_id", sa.String(length=64), primary_key=True),
        sa.Column("blob_id", sa.String(length=32), primary_key=True),
        sa.Column("chunk_no", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_documents_author", "documents", ["author_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS carnet_check(boolean, text)")
    op.drop_index("ix_documents_author", table_name="documents")
    op.drop_table("content_chunks")
    with op.batch_alter_table("contents") as batch:
        batch.drop_column("store")
    with op.batch_alter_table("consents") as batch:
        batch.drop_index("ix_consents_actor_value")
    with op.batch_alter_table("document_history") as batch:
        batch.drop_column("security_labels")
        batch.drop_column("archived")
        batch.drop_column("status")
    with op.batch_alter_table("records") as batch:
        batch.drop_index("ix_records_treating")
        batch.drop_column("rules_version")
    op.drop_table("audit_heads")
