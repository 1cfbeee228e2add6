"""Backup and restore of the whole database: `dashfleet-admin backup FILE` and `restore FILE`.

- A SQLite database is copied with SQLite's online backup API: a consistent snapshot taken while
  the server keeps writing, and a plain SQLite file any sqlite3 tool opens.
- Any other database (PostgreSQL) is dumped as JSON Lines through SQLAlchemy, table by table in
  foreign-key order: no pg_dump needed, and no tie to one PostgreSQL version.

Restore reads either format into whichever database is configured, so restoring a SQLite backup
with DASHFLEET_DATABASE_URL=postgresql+psycopg://... also moves a single node to PostgreSQL. It is
one transaction: every table is emptied and refilled, or, on any problem (another schema
revision, a foreign or truncated file, a row the database refuses), nothing changes at all.

The JSON Lines file: a header object, then for each table `{"table": name, "columns": [...]}`
followed by one JSON array per row, and a last line `{"end": true, "rows": N}` that tells a
complete file from a truncated one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from admin.core.db import is_sqlite, schema_revision
from admin.services.errors import ServiceError
from common.version import __version__

FORMAT_NAME = "dashfleet-backup"
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
ALEMBIC_TABLE = "alembic_version"
BATCH_ROWS = 1000
JSON_TYPES = (str, int, float, type(None))  # bool is an int

# Events both readers yield, so restore has one path whatever the format:
# ("table", (name, columns)), then ("row", values) for each of its rows, ..., ("end", row_count).
Event = tuple[str, Any]
Events = Callable[[list[str]], Iterator[Event]]  # given the target's tables, parents first


class BackupError(ServiceError):
    """The backup file or the database is not fit for the operation; nothing was changed."""


def _data_tables(meta: MetaData) -> list[Table]:
    """The tables to save, parents before children (foreign keys hold at every insert)."""
    return [t for t in meta.sorted_tables if t.name != ALEMBIC_TABLE]


def _reflect(conn: Connection) -> MetaData:
    # The tables as the migrations made them, not as the models say: a backup holds what is there.
    meta = MetaData()
    meta.reflect(bind=conn)
    return meta


# --------------------------------------------------------------------------------------------
# Backup


def backup(engine: Engine, path: Path, *, force: bool = False) -> dict[str, Any]:
    """Writes the database to `path` (written beside it first, then renamed: never half a file)."""
    if path.is_dir():
        raise BackupError(f"{path} is a folder, not a file name")
    if path.exists() and not force:
        raise BackupError(f"{path} already exists (give --force to replace it)")
    partial = path.with_name(path.name + ".partial")
    try:
        # Owner-only from the first byte: a backup holds key and password hashes.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(partial, 0o600)  # also when an old .partial was left with other rights
        summary = _backup_sqlite(engine, partial) if is_sqlite(engine) else _backup_jsonl(engine, partial)
        os.replace(partial, path)
    except OSError as exc:
        raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return {"file": str(path), **summary}


def _backup_sqlite(engine: Engine, target: Path) -> dict[str, Any]:
    raw = engine.raw_connection()
    try:
        copy = sqlite3.connect(target)
        try:
            # One read transaction: a consistent snapshot, and in WAL mode the server writes on.
            source = raw.driver_connection
            assert isinstance(source, sqlite3.Connection)  # pysqlite, the engine's driver here
            source.backup(copy)
            # A self-contained file: the copy must not depend on a -wal file beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        raw.close()
    return _summarise_sqlite_file(target)


def _summarise_sqlite_file(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        revision = conn.execute(f"SELECT version_num FROM {ALEMBIC_TABLE}").fetchone()
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        counts = {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names if n != ALEMBIC_TABLE}
    finally:
        conn.close()
    return {"format": "sqlite", "schema_revision": revision[0] if revision else None, "tables": counts}


def _backup_jsonl(engine: Engine, target: Path) -> dict[str, Any]:
    counts: dict[str, int] = {}
    # REPEATABLE READ: every table is read from the same snapshot, however long the dump takes.
    with (
        engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        target.open("w", encoding="utf-8") as out,
        conn.begin(),
    ):
        revision = schema_revision(conn)
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "schema_revision": revision,
            "dashfleet_version": __version__,
            "database": engine.dialect.name,
            "created_at": time.time(),
        }
        out.write(json.dumps(header) + "\n")
        for table in _data_tables(_reflect(conn)):
            columns = [c.name for c in table.columns]
            out.write(json.dumps({"table": table.name, "columns": columns}) + "\n")
            counts[table.name] = 0
            rows = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                select(table).order_by(*table.primary_key.columns)
            )
            for row in rows:
                out.write(json.dumps(_plain(table.name, columns, row), allow_nan=False) + "\n")
                counts[table.name] += 1
        out.write(json.dumps({"end": True, "rows": sum(counts.values())}) + "\n")
    return {"format": "jsonl", "schema_revision": revision, "tables": counts}


def _plain(table: str, columns: list[str], row: Sequence[object]) -> list[object]:
    for name, value in zip(columns, row):
        if not isinstance(value, JSON_TYPES):
            # A column type this format does not carry yet: say so rather than write a lossy file.
            raise BackupError(
                f"column {table}.{name} holds {type(value).__name__} values, which backups cannot store yet"
            )
    return list(row)


# --------------------------------------------------------------------------------------------
# Reading a backup file


def _open(path: Path) -> tuple[str, dict[str, Any], Events]:
    """(format, header, events) of a backup file, or a BackupError saying why it is not one."""
    try:
        with path.open("rb") as handle:
            start = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist") from None
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from None
    if start == SQLITE_MAGIC:
        return "sqlite", *_open_sqlite(path)
    return "jsonl", *_open_jsonl(path)


def _open_sqlite(path: Path) -> tuple[dict[str, Any], Events]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError(f"{path} is a damaged SQLite file")
        revision = conn.execute(f"SELECT version_num FROM {ALEMBIC_TABLE}").fetchone()
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BackupError(f"{path} is not a DashFleet backup ({exc})") from None
    except BackupError:
        conn.close()
        raise
    header = {"schema_revision": revision[0] if revision else None}

    def events(order: list[str]) -> Iterator[Event]:
        # The target's order (same schema revision: same tables); tables it lacks come last, to be
        # refused by the restore.
        extra = [n for n in names if n not in order and n != ALEMBIC_TABLE]
        try:
            for name in [n for n in order if n in names] + extra:
                cursor = conn.execute(f'SELECT * FROM "{name}"')
                yield "table", (name, [d[0] for d in cursor.description])
                for row in cursor:
                    yield "row", list(row)
            yield "end", None
        finally:
            conn.close()

    return header, events


def _open_jsonl(path: Path) -> tuple[dict[str, Any], Events]:
    handle = path.open("r", encoding="utf-8", errors="strict")
    try:
        header = json.loads(handle.readline())
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        handle.close()
        raise BackupError(f"{path} is not a DashFleet backup (neither a SQLite file nor {FORMAT_NAME} JSON Lines)")
    if header.get("format_version") != FORMAT_VERSION:
        handle.close()
        raise BackupError(
            f"{path} is backup format {header.get('format_version')!r}; this version reads format {FORMAT_VERSION}"
        )

    def events(_order: list[str]) -> Iterator[Event]:
        # The file's own order: the backup wrote parents first.
        with handle:
            for number, line in enumerate(handle, start=2):
                try:
                    item = json.loads(line, parse_constant=_refuse_constant)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise BackupError(f"{path} line {number} is not valid JSON ({exc})") from None
                if isinstance(item, list):
                    yield "row", item
                elif (
                    isinstance(item, dict)
                    and isinstance(item.get("table"), str)
                    and isinstance(item.get("columns"), list)
                ):
                    yield "table", (item["table"], item["columns"])
                elif isinstance(item, dict) and item.get("end") is True:
                    yield "end", item.get("rows")
                    return
                else:
                    raise BackupError(f"{path} line {number} is not part of a DashFleet backup")
        raise BackupError(f"{path} is incomplete (no end line): was the backup interrupted or the file cut?")

    return header, events


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a backup may hold")


# --------------------------------------------------------------------------------------------
# Restore


def restore(engine: Engine, path: Path) -> dict[str, Any]:
    """Replaces every table's rows with the backup's, in one transaction."""
    kind, header, events = _open(path)
    counts: dict[str, int] = {}
    try:
        with engine.begin() as conn:
            revision = schema_revision(conn)
            if header.get("schema_revision") != revision:
                raise BackupError(
                    f"{path} holds schema revision {header.get('schema_revision')!r} but this database is at "
                    f"{revision!r}: restore it with the DashFleet version that made it (see docs/deploy.md)"
                )
            tables = {t.name: t for t in _data_tables(_reflect(conn))}
            for table in reversed(list(tables.values())):
                conn.execute(table.delete())
            _load(conn, tables, events(list(tables)), counts, path)
            missing = sorted(set(tables) - set(counts))
            if missing:
                raise BackupError(f"{path} has no data for the tables {', '.join(missing)}")
            _reset_sequences(conn, tables.values())
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)  # a DBAPIError's driver error, when there is one
        detail = str(orig or exc).splitlines()[0]
        raise BackupError(f"the database refused the backup's rows, nothing was changed: {detail}") from None
    return {"file": str(path), "format": kind, "schema_revision": header.get("schema_revision"), "tables": counts}


def _load(
    conn: Connection, tables: dict[str, Table], events: Iterator[Event], counts: dict[str, int], path: Path
) -> None:
    table: Table | None = None
    columns: list[str] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            assert table is not None  # rows are only batched once their table was named
            conn.execute(table.insert(), batch)
            batch.clear()

    for kind, value in events:
        if kind == "table":
            flush()
            name, columns = value
            if name not in tables:
                raise BackupError(f"{path} has a table {name!r} this database does not have")
            unknown = sorted(set(columns) - set(tables[name].columns.keys()))
            if unknown:
                raise BackupError(f"{path}: table {name} has columns this database does not have: {unknown}")
            table, counts[name] = tables[name], 0
        elif kind == "row":
            if table is None or len(value) != len(columns):
                raise BackupError(f"{path} has a row that does not fit its table")
            batch.append(dict(zip(columns, value)))
            counts[table.name] += 1
            if len(batch) >= BATCH_ROWS:
                flush()
        elif kind == "end":
            flush()
            if value is not None and value != sum(counts.values()):
                raise BackupError(f"{path} announces {value} rows but holds {sum(counts.values())}")
            return


def _reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """PostgreSQL hands out ids from sequences the restored ids bypassed: move them past the max."""
    if conn.dialect.name != "postgresql":
        return  # SQLite's rowids follow the largest id by themselves
    for table in tables:
        if "id" not in table.columns:
            continue
        sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
        if sequence:
            highest = conn.execute(select(func.max(table.c.id))).scalar()
            conn.execute(
                text("SELECT setval(:s, :v, :called)"),
                {"s": sequence, "v": highest or 1, "called": highest is not None},
            )
