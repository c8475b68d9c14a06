"""DMP access rules: consents (authorisations, blocks), legal representatives, médecin traitant

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("actor_system", sa.String(length=128), nullable=False),
        sa.Column("actor_value", sa.String(length=64), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("resource", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "consent_id"),
    )
    op.create_index("ix_consents_actor", "consents", ["record_id", "actor_value"])
    op.create_table(
        "representatives",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("representative_ins", sa.String(length=15), nullable=False),
        sa.Column("relationship", sa.String(length=32), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "representative_ins"),
    )
    op.create_index("ix_representatives_ins", "representatives", ["representative_ins"])
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("treating_physician", sa.String(length=64), nullable=True))
    # record keys move to the key store (carnet/store/keystore.py), apart from the data
    op.drop_table("record_keys")


def downgrade() -> None:
    op.create_table(
        "record_keys",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    with op.batch_alter_table("records") as batch:
        batch.drop_column("treating_physician")
    op.drop_index("ix_representatives_ins", table_name="representatives")
    op.drop_table("representatives")
    op.drop_index("ix_consents_actor", table_name="consents")
    op.drop_table("consents")
