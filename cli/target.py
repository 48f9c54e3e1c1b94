"""Where a command's ledger is: a file path (SQLite) or a `postgresql://` DSN (PostgreSQL).

`--db` and `$ORDERFLOW_DB` take either, as `Ledger.open` does; the CLI keeps the text as
given (a `Path` would fold the DSN's `//`). A DSN's ledger lives in the first schema of its
connections' search_path (`?options=-csearch_path%3Dshop`), else in `public`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ledger import OpenError, is_dsn

__all__ = ["create_schemas", "database", "in_schema", "is_dsn"]


def database(dsn: str) -> str:
    """The DSN's server and database, for messages: no user, password or options."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host, query="", fragment=""))


def in_schema(dsn: str, schema: str) -> str:
    """`dsn` with its connections' search_path set to `schema` (other options kept)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(value for key, value in query if key == "options")
    rest = [(key, value) for key, value in query if key != "options"]
    search_path = f"-csearch_path={schema}"  # a later -c wins over one the DSN had
    rest.append(("options", f"{options} {search_path}".strip()))
    # quote, not quote_plus: libpq decodes %20 in a URI, but leaves a "+" as it is
    return urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))


def create_schemas(dsn: str, names: tuple[str, ...]) -> None:
    """Create new, empty schemas in the DSN's database; `OpenError` if one exists or fails.

    The demo's way to get fresh ledgers on PostgreSQL without touching an existing one.
    """
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        reason = "PostgreSQL needs psycopg: pip install 'orderflow[postgres]'"
        raise OpenError(database(dsn), reason) from exc
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            for name in names:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        message = " ".join(str(exc).split())  # libpq's messages span lines
        reason = f"cannot create schemas {', '.join(names)} ({message})"
        raise OpenError(database(dsn), reason) from exc
