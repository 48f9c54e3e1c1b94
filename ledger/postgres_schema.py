"""The ledger's schema on PostgreSQL: its migrations, tracked in `ledger_migrations`.

A ledger lives in one schema (the connection's `current_schema()`, e.g. chosen with
`?options=-csearch_path%3Dshop` in the DSN). The migrations run in one transaction under
the ledger's advisory lock, DDL included (PostgreSQL's DDL is transactional), so a schema
is either a complete ledger of some version or untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import flows as flow_index
from ledger.errors import MissingLedger, NotALedger, OpenError, SchemaTooNew
from ledger.postgres import PgConn, PgTx
from ledger.projection import Projection, replay
from ledger.sqlite import GUARD_MESSAGE

GUARDED = ("events", "chain")  # both append-only: the events, and the global chain over them
_VERBS = (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT"))
GUARDS = tuple(f"{table}_refuse_{verb.lower()}" for table in GUARDED for verb, _ in _VERBS)
_TRACKING = "ledger_migrations"
_GUARD_FUNCTION = f"""
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{GUARD_MESSAGE}: % refused', TG_OP;
END $$"""


def _guards(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_refuse_{verb.lower()} BEFORE {verb} ON {table} FOR EACH {each}"
        " EXECUTE FUNCTION ledger_refuse_change()"
        for verb, each in _VERBS
    )


# events: `position` is the event's id, from a sequence (unique and increasing along each
# stream, not gapless and not commit order: writers on different keys commit concurrently);
# `hash` links each event to the one before it *in its stream*; `xid` is the writing
# transaction's, by which the sequencer finds what has committed. chain: the global order,
# gapless, built after commit by the sequencer (`ledger.sequencer`), each row linked to the
# one before it. Nothing has shipped on the single-lock layout, so 0001 describes this one.
# Text that the ledger compares or range-scans (streams, idempotency keys) sorts bytewise
# ("C"), as on SQLite: a key's continuation rows (key + "\x1f" + n) must sort right after it.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "0001_events",
        (
            "CREATE SEQUENCE events_position_seq",
            "CREATE TABLE events (position BIGINT PRIMARY KEY"
            " DEFAULT nextval('events_position_seq'), stream TEXT COLLATE \"C\" NOT NULL,"
            " version BIGINT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,"
            ' recorded_at TEXT NOT NULL, idempotency_key TEXT COLLATE "C", hash TEXT NOT NULL,'
            " xid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
            " CONSTRAINT events_stream_version_key UNIQUE (stream, version))",
            "ALTER SEQUENCE events_position_seq OWNED BY events.position",
            "CREATE UNIQUE INDEX idx_events_idempotency_key ON events (idempotency_key)"
            " WHERE idempotency_key IS NOT NULL",
            "CREATE INDEX idx_events_xid ON events (xid, position)",
            "CREATE TABLE chain (seq BIGINT PRIMARY KEY, position BIGINT NOT NULL UNIQUE,"
            " xid xid8 NOT NULL, hash TEXT NOT NULL)",
            _GUARD_FUNCTION,
            *(statement for table in GUARDED for statement in _guards(table)),
        ),
    ),
    (
        "0002_verified",
        (
            "CREATE TABLE verified (scope TEXT PRIMARY KEY, position BIGINT NOT NULL,"
            " hash TEXT NOT NULL, verified_at TEXT NOT NULL)",
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_TABLES = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"


def tables(conn: PgConn) -> set[str]:
    """The tables of the ledger's schema."""
    return {row[0] for row in conn.execute(_TABLES)}


def identify(conn: PgConn, path: str) -> int:
    """The schema's ledger version (0 for a schema without tables); reads only."""
    if conn.execute("SELECT current_schema()").fetchone()[0] is None:
        raise OpenError(path, "no schema of its search_path exists (create it first)")
    found = tables(conn)
    if not found:
        return 0
    if _TRACKING not in found:
        names = ", ".join(sorted(found)[:8])
        raise NotALedger(path, f"its schema holds other tables ({names}) and no ledger")
    applied = {row[0] for row in conn.execute(f"SELECT name FROM {_TRACKING}")}
    known = {name for name, _ in MIGRATIONS}
    if applied - known:
        raise SchemaTooNew(path, len(applied), SCHEMA_VERSION)
    return len(applied)


def needs_setup(conn: PgConn, version: int, projections: Sequence[Projection]) -> bool:
    """True unless the schema is current and every projection's tables are there."""
    wanted = {t for p in (flow_index.FlowsProjection(), *projections) for t in p.tables}
    return version < SCHEMA_VERSION or not wanted <= tables(conn)


def check_readable(
    conn: PgConn, path: str, version: int, projections: Sequence[Projection]
) -> None:
    """A read-only open needs a ledger whose tables exist (it cannot create them)."""
    if version == 0:
        raise MissingLedger(path, "its schema holds no ledger (reading never creates one)")
    wanted = {t for p in (flow_index.FlowsProjection(), *projections) for t in p.tables}
    missing = sorted(wanted - tables(conn))
    if missing:
        raise OpenError(path, f"tables {', '.join(missing)} are missing: open it for writing once")


def setup(conn: PgConn, path: str, lock: str, projections: Sequence[Projection]) -> None:
    """In one transaction under the ledger's lock (`lock`: its SELECT): migrations, projections.

    A projection whose tables are all new is filled from the events already there.
    """
    conn.execute(f"BEGIN; {lock}")
    try:
        identify(conn, path)  # again, under the lock: another process may have set it up
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TRACKING} (name TEXT PRIMARY KEY, applied_at TEXT"
            " NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'))"
        )
        applied = {row[0] for row in conn.execute(f"SELECT name FROM {_TRACKING}")}
        for name, statements in MIGRATIONS:
            if name in applied:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {_TRACKING} (name) VALUES (?)", (name,))
        present, tx = tables(conn), PgTx(conn)
        has_events = conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
        for projection in (flow_index.FlowsProjection(), *projections):
            fresh = not any(table in present for table in projection.tables)
            projection.create(tx)
            if fresh and has_events:
                replay(conn, tx, [projection])
    except BaseException:
        if conn.open:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
