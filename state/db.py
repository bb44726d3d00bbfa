"""Opening the state database: SQLite (WAL, file mode 0600) or PostgreSQL, schema upgraded by Alembic.

Whichever command or daemon replica starts first creates or upgrades the schema; concurrent starts
are serialised by an advisory lock (PostgreSQL) or a lock file beside the database (SQLite). Alembic
(with Mako and Pygments, a fifth of a second to import) is loaded only when the schema is not at the
newest revision: an up-to-date database is recognised with one SELECT, so every other start skips it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS: Final = Path(__file__).with_name("migrations")
_PG_LOCK_ID: Final = 0x63726D73  # "crms": one advisory lock id for schema upgrades


class StateError(RuntimeError):
    """The state store cannot be opened or read; never silently reset."""


def _sqlite_path(url: sa.URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The journal mode is not set here: it is a property of the file, set once by _use_wal.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives kill -9 (not power loss of the last txn)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # a forgotten person's rows are zeroed, not left in free pages
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _use_wal(path: Path) -> None:
    """Put the file in WAL mode (readers never block the writer; one writer at a time), once, under the file lock.

    WAL is kept in the file itself. Switching to it takes an exclusive lock, and SQLite answers "database is
    locked" at once, without waiting out busy_timeout, when another connection switches at the same moment:
    several processes or threads opening a new file together failed that way. The switch is made under the lock
    file that schema upgrades take, by a connection of its own, and only when the file is not in WAL mode yet.
    """
    with _file_lock(path):
        conn = sqlite3.connect(path, timeout=30)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()


def open_engine(url: str, *, pooled: bool = True) -> Engine:
    """An engine for ``url``; a new SQLite file is created with mode 0600 before SQLite touches it.

    ``pooled=False``: every checkout opens a connection and closes it after (a rare side task, such as a run's
    heartbeat, then never adds a connection, and its page cache, to the pool the engine's work uses).
    """
    pool: dict[str, Any] = {} if pooled else {"poolclass": sa.pool.NullPool}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        if path is not None:
            if not path.parent.exists():
                raise StateError(f"state.url: directory {path.parent} does not exist")
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            _use_wal(path)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **pool)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return sa.create_engine(url, pool_pre_ping=True, **pool)
    raise StateError(f"state.url: unsupported database {parsed.get_backend_name()!r} (use sqlite or postgresql)")


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@contextlib.contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    path = _sqlite_path(engine.url)
    if path is None:
        yield
        return
    with _file_lock(path):
        yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Held by one process (or thread) at a time: an flock on a file beside the SQLite database."""
    with open(str(path) + ".lock", "a") as handle:
        os.chmod(handle.name, 0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


# ``revision = '0002'`` / ``down_revision = None`` as Alembic writes them at the top level of a script. Read
# as text, not with ast.parse: CPython 3.11's parser fails ("AST constructor recursion depth mismatch") when
# threads open stores at once, and the scripts never change while a process runs.
_ASSIGNMENT: Final = re.compile(r"^(revision|down_revision)\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|None)\s*$", re.M)


@functools.lru_cache(maxsize=1)
def script_head() -> str | None:
    """The one revision no other revises, read from the scripts' own assignments; None if not exactly one."""
    revises: dict[str, str | None] = {}
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found: dict[str, str | None] = {}
        for match in _ASSIGNMENT.finditer(script.read_text(encoding="utf-8")):
            found.setdefault(match[1], match[2] if match[2] is not None else match[3])
        revision = found.get("revision")
        if revision is None or "down_revision" not in found:
            return None
        revises[revision] = found["down_revision"]
    heads = set(revises) - set(revises.values())
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """True when the database's one recorded revision is the scripts' head (no Alembic needed to tell)."""
    head = script_head()
    if head is None:
        return False
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows == [head]


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    if _at_head(engine):
        return
    from alembic import command

    head = head_revision()
    if current_revision(engine) == head:
        return
    with _upgrade_lock(engine):
        if current_revision(engine) == head:  # another process did it while we waited
            return
        cfg = _alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
