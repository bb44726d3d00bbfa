"""Shared fixtures: a state database per test, on SQLite or (CRMSYNC_TEST_STATE_URL) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ENV = "CRMSYNC_TEST_STATE_URL"  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test


def pytest_report_header(config: pytest.Config) -> str:
    return f"state store under test: {'PostgreSQL' if os.environ.get(PG_ENV) else 'SQLite'}"


@pytest.fixture
def state_url(tmp_path: Path) -> Iterator[str]:
    """A fresh state database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses a state database is marked ``state``: CI runs those again on PostgreSQL."""
    for item in items:
        if "state_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.state)
