"""identity traits leave the columns: they live in the Patient resource, sealed with the
record's key (destroying the key leaves nothing of them readable, backups included)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("family", "given", "family_norm", "given_norm", "birth_date", "gender", "birth_place")


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_index("ix_records_family_norm")
        batch.drop_index("ix_records_birth_date")
        for name in COLUMNS:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=200), nullable=True))
        batch.create_index("ix_records_family_norm", ["family_norm"])
        batch.create_index("ix_records_birth_date", ["birth_date"])
