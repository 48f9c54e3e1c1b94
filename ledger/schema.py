"""The ledger's schema: identifying a ledger file, and the ordered migrations that build it.

A ledger carries `PRAGMA application_id = APPLICATION_ID` and its schema version in
`PRAGMA user_version`; both are set inside the migration that introduces them, so a file
is either a complete ledger of some version or untouched.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from ledger.errors import NotALedger, SchemaTooNew
from ledger.flows import DUE_INDEX
from ledger.sqlite import GUARD_MESSAGE, sqlite3

APPLICATION_ID = 0x4F464C47  # "OFLG"
SCHEMA_VERSION = 3
GUARDS = ("events_refuse_update", "events_refuse_delete")
_OWN_TABLES = {Migrations.migrations_table}

migrations = Migrations("ledger")


def _stamp(db: Database, version: int) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {version}")


@migrations(name="0001_events")
def _events(db: Database) -> None:
    """The events table, its unique keys and the append-only guards."""
    db["events"].create(  # type: ignore[union-attr]
        {
            "position": int,
            "stream": str,
            "version": int,
            "type": str,
            "data": str,
            "recorded_at": str,
            "idempotency_key": str,
            "hash": str,
        },
        pk="position",
        not_null={"stream", "version", "type", "data", "recorded_at", "hash"},
        strict=True,
    )
    db["events"].create_index(["stream", "version"], unique=True)  # type: ignore[union-attr]
    # Partial, so the (usual) unkeyed append touches one index page less per commit.
    db.execute(
        "CREATE UNIQUE INDEX idx_events_idempotency_key ON events (idempotency_key) "
        "WHERE idempotency_key IS NOT NULL"
    )
    for guard, verb in zip(GUARDS, ("UPDATE", "DELETE"), strict=True):
        db.execute(
            f"CREATE TRIGGER {guard} BEFORE {verb} ON events "
            f"BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}: {verb} refused'); END"
        )
    _stamp(db, 1)


@migrations(name="0002_verified")
def _verified(db: Database) -> None:
    """Where scrubs resume: the chain verified up to a position, and the last full check.

    Not a projection: it records checks of the events, not facts derived from them.
    """
    db.execute(
        "CREATE TABLE verified (scope TEXT PRIMARY KEY, position INTEGER NOT NULL, "
        "hash TEXT NOT NULL, verified_at TEXT NOT NULL) STRICT, WITHOUT ROWID"
    )
    _stamp(db, 2)


@migrations(name="0003_partial_due_index")
def _partial_due_index(db: Database) -> None:
    """The flows index on `due` leaves out the rows without one (see `flows.DUE_INDEX`).

    On a new file the flows table does not exist yet: its projection creates it, with
    the partial index, right after the migrations.
    """
    if db["flows"].exists():
        db.execute("DROP INDEX IF EXISTS idx_flows_due")
        db.execute(DUE_INDEX)
    _stamp(db, 3)


def identify(conn: sqlite3.Connection, path: str) -> int:
    """The file's ledger schema version (0 for an empty database); reads only."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    except sqlite3.DatabaseError as exc:  # SQLite itself tells a foreign file: no open() of ours
        if "not a database" in str(exc):
            raise NotALedger(path, "it is not a SQLite database") from exc
        raise NotALedger(path, f"SQLite cannot read it ({exc})") from exc
    if app_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(path, version, SCHEMA_VERSION)
        return int(version)
    if app_id or version or tables - _OWN_TABLES:
        found = ", ".join(sorted(tables)) or "no tables"
        raise NotALedger(
            path,
            f"it is another SQLite database (application_id {app_id}, "
            f"user_version {version}, {found})",
        )
    return 0


def migrate(db: Database) -> None:
    """Apply the pending migrations (the caller holds the write lock)."""
    migrations.apply(db)
