"""what ITI-67 and ITI-66 search, beside the sealed resources

Revision ID: 0010_search_columns
Revises: 0008

The search parameters of IHE MHD 4.2.3 and the PDSm guide (docs/fhir.md "Search parameters")
read columns, so that a search filters in SQL inside the searcher's paged, per-row-decided
loop. Only codes, dates, identifiers and professionals' names (public directory data, as the
author identifiers and type codes already stored in clear) are kept here; a title, which may be
clinical, stays sealed and is matched once each row is opened (src/carnet/fhir/README.md).

- ``documents.creation_time``: the entry's creationTime (``creation``);
- ``document_authors.family``, ``given`` and their folded forms ``family_key``, ``given_key``:
  a professional author's names (``author.given``, ``author.family``); never a patient's;
- ``document_events``: the event codes (``event``);
- ``document_related``: the related references and identifiers (``related``);
- ``submission_sets``: the author's identifier system and a professional author's names
  (``source``, ``source.given``, ``source.family``), the authoring organisation
  (``authorOrg``) and the designation type (``designationType``).

Backfill: the values are in the sealed envelopes only (a migration cannot reach the key
store), so rows stored before this revision have none of them: such documents and submission
sets are not found by these parameters (they are by every parameter that existed before).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_search_columns"
down_revision = "0009_folders_entry_uuid"
branch_labels = None
depends_on = None

_SET_COLUMNS = (
    ("author_system", 128),
    ("author_family", 128),
    ("author_given", 256),
    ("author_family_key", 128),
    ("author_given_key", 256),
    ("author_org_system", 128),
    ("author_org_value", 64),
    ("designation_system", 128),
    ("designation_code", 64),
)


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("creation_time", sa.DateTime(), nullable=True))
    with op.batch_alter_table("document_authors") as batch:
        batch.add_column(sa.Column("family", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("given", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("family_key", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("given_key", sa.String(length=256), nullable=True))
    with op.batch_alter_table("submission_sets") as batch:
        for name, length in _SET_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    op.create_table(
        "document_events",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "doc_id", "system", "code"),
    )
    op.create_index("ix_document_events_code", "document_events", ["record_id", "code"])
    op.create_table(
        "document_related",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("system", sa.String(length=256), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "doc_id", "kind", "system", "value"),
    )
    op.create_index("ix_document_related_value", "document_related", ["record_id", "value"])


def downgrade() -> None:
    op.drop_index("ix_document_related_value", table_name="document_related")
    op.drop_table("document_related")
    op.drop_index("ix_document_events_code", table_name="document_events")
    op.drop_table("document_events")
    with op.batch_alter_table("submission_sets") as batch:
        for name, _length in reversed(_SET_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("document_authors") as batch:
        for name in ("given_key", "family_key", "given", "family"):
            batch.drop_column(name)
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("creation_time")
