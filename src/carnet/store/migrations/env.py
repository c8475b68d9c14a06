"""Alembic environment: migrations run on the connection handed over by carnet.store.db."""

from __future__ import annotations

from alembic import context

from carnet.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - carnet always hands a connection over
    raise RuntimeError("run migrations through carnet (carnet migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
