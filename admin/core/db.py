"""Engine creation and schema migration (Alembic), shared by the server and the CLI."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event

from admin.core.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer; NORMAL keeps every commit across a crash
            # of the process (WAL's guarantee) and syncs at checkpoints.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def alembic_config(settings: Settings):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    return cfg


def migrate(settings: Settings) -> None:
    """Create or upgrade the schema to the newest revision (every command runs this first)."""
    from alembic import command

    if not settings.sqlalchemy_url.startswith("sqlite"):
        command.upgrade(alembic_config(settings), "head")  # env.py takes an advisory lock
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(settings.data_dir / ".migrate.lock"):
        command.upgrade(alembic_config(settings), "head")


@contextmanager
def _file_lock(path: Path):
    """Processes sharing one SQLite file migrate one at a time (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: run one server process per SQLite file
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
