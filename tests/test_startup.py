"""Start-up stays light: an up-to-date database opens without Alembic, and a --json run never loads rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from state.db import _alembic_config, current_revision, head_revision, open_engine, script_head
from state.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_the_scripts_head_read_without_alembic_is_alembics_head():
    assert script_head() is not None and script_head() == head_revision()


def test_an_up_to_date_database_opens_without_importing_alembic(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()  # the first start creates the schema (Alembic)
    probe = (
        "import sys; import connector.cli; from state.store import Store; "
        f"Store({url!r}).close(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako', 'rich')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_older_schema_is_still_upgraded(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()
    engine = open_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    assert current_revision(engine) != head_revision()
    Store(url).close()
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("alembic_version")
    engine.dispose()
