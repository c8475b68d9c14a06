"""folders, and the entryUUIDs of documents and submission sets (IHE MHD 4.2.3)

Revision ID: 0009_folders_entry_uuid
Revises: 0008

- ``documents.entry_uuid`` and ``submission_sets.entry_uuid``: the entryUUID (``urn:uuid:…``)
  the client sent, or the one carnet assigned, as a document registry does. Rows stored before
  this revision have none (NULL): they are still found by their uniqueId.
- ``folders`` and ``folder_documents``: the Folders (List with the code ``folder``) of ITI-65;
  the folder's own metadata (title, codes, the client's resource) sealed in ``resource`` with
  the record's key, as a submission set's are.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_folders_entry_uuid"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("entry_uuid", sa.String(length=64), nullable=True))
        batch.create_index("ix_documents_entry_uuid", ["record_id", "entry_uuid"])
    with op.batch_alter_table("submission_sets") as batch:
        batch.add_column(sa.Column("entry_uuid", sa.String(length=64), nullable=True))
    op.create_table(
        "folders",
        sa.Column("record_id", sa.String(length=64), primary_key=True),
        sa.Column("folder_id", sa.String(length=64), primary_key=True),
        sa.Column("unique_id", sa.String(length=256), nullable=False),
        sa.Column("entry_uuid", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("resource", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("record_id", "unique_id", name="uq_folders_unique_id"),
    )
    op.create_index("ix_folders_entry_uuid", "folders", ["record_id", "entry_uuid"])
    op.create_table(
        "folder_documents",
        sa.Column("record_id", sa.String(length=64), primary_key=True),
        sa.Column("folder_id", sa.String(length=64), primary_key=True),
        sa.Column("doc_id", sa.String(length=64), primary_key=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("folder_documents")
    op.drop_index("ix_folders_entry_uuid", table_name="folders")
    op.drop_table("folders")
    with op.batch_alter_table("submission_sets") as batch:
        batch.drop_column("entry_uuid")
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_entry_uuid")
        batch.drop_column("entry_uuid")
