"""Alembic environment: migrations run on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from state.models import TABLES

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("crmsync migrations run through state.db.upgrade(), not the alembic CLI")
context.configure(connection=connection, target_metadata=TABLES, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
