"""patients' e-mail addresses sealed with the record's key; none in outbox rows

Revision ID: 0008
Revises: 0007

- ``notification_preferences.email_sealed``: the patient's address sealed with the record's key
  (AES-256-GCM, ``store/preferences.py`` ``seal_email``). A migration cannot reach the key
  store, so the addresses already there in clear (``notification_preferences.email``) are
  sealed just after it, by the core, with the keys: ``seal_clear_addresses``, run by every
  process that migrates with its keys at hand (``carnet migrate``, ``carnet serve``, ``carnet
  notify``), in batches each committed on its own, so that an interrupted run goes on where it
  stopped. Until then the clear address is still used; once sealed it is emptied, and nothing
  writes it any more.
- ``outbox.address``: rows to the patient no longer carry the address (the worker opens the
  sealed one when it delivers); the addresses of rows already there are removed now. Only a
  professional's address (the médecin traitant's MSSanté address) stays in a row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notification_preferences") as batch:
        batch.add_column(sa.Column("email_sealed", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE outbox SET address = NULL WHERE address IS NOT NULL AND ("
        "recipient LIKE 'ins:%' OR recipient LIKE 'record:%' OR address IN ("
        "SELECT np.email FROM notification_preferences np "
        "WHERE np.record_id = outbox.record_id AND np.email IS NOT NULL))"
    )


def downgrade() -> None:
    # the sealed addresses cannot be opened here (no keys): they are lost, as are the
    # addresses removed from outbox rows (those rows' e-mails are then skipped)
    with op.batch_alter_table("notification_preferences") as batch:
        batch.drop_column("email_sealed")
