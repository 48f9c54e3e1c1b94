"""Opening a ledger file: what may be opened, and setting up its schema and projections.

Everything here decides by `stat` and through SQLite, never by opening the file itself
(closing any descriptor of it would drop this process's locks on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ledger import flows as flow_index
from ledger import schema
from ledger.errors import MissingLedger, NotALedger, OpenError, ReadOnlyLedger
from ledger.projection import Projection, replay
from ledger.sqlite import LedgerDatabase, sqlite3, writable
from ledger.tx import SqliteTx


def check_path(path: Path, readonly: bool) -> None:
    """Refuse what SQLite should never be pointed at, by `stat` alone (never `open`)."""
    if path.is_dir():
        raise NotALedger(str(path), "it is a directory")
    if readonly:
        if not path.parent.is_dir():
            raise MissingLedger(str(path), f"directory {path.parent} does not exist")
        if not path.exists():
            raise MissingLedger(str(path), "there is no such file (reading never creates one)")
        return
    if not path.parent.is_dir():
        raise OpenError(str(path), f"directory {path.parent} does not exist")
    for target in (path, path.parent) if path.exists() else (path.parent,):
        if not writable(target):
            raise ReadOnlyLedger(str(path), f"{target} is not writable")


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def needs_setup(conn: sqlite3.Connection, version: int, projections: Sequence[Projection]) -> bool:
    """True unless the schema is current, the file in WAL mode, and every projection there."""
    if version < schema.SCHEMA_VERSION:
        return True
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return True
    wanted = {t for p in (flow_index.FlowsProjection(), *projections) for t in p.tables}
    return not wanted <= _tables(conn)


def check_readable(
    conn: sqlite3.Connection, path: str, version: int, projections: Sequence[Projection]
) -> None:
    """A read-only open needs a ledger whose tables exist (it cannot create them)."""
    wanted = {t for p in (flow_index.FlowsProjection(), *projections) for t in p.tables}
    missing = sorted(wanted - _tables(conn))
    if version == 0 or missing:
        what = "it is empty" if version == 0 else f"tables {', '.join(missing)} are missing"
        raise OpenError(path, f"{what}: open it for writing once to set it up")


def setup(conn: sqlite3.Connection, path: str, projections: Sequence[Projection]) -> None:
    """Under the write lock: WAL mode, the migrations, and any new projection's tables.

    A projection whose tables are all new is filled from the events already there.
    """
    schema.identify(conn, path)  # again: another process may have set it up meanwhile
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
    db = LedgerDatabase(conn)
    db.ledger_path = path
    schema.migrate(db)
    tx = SqliteTx(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_events = conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
        for projection in (flow_index.FlowsProjection(), *projections):
            fresh = not any(db[table].exists() for table in projection.tables)
            projection.create(tx)
            if fresh and has_events:
                replay(conn, tx, [projection])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
