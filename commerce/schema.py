"""The commerce read models' tables (`commerce.projections` writes them), in each dialect.

The SQLite DDL of the first six tables is what ledger files were made with: it stays word
for word. `stock_unapplied` and `parked_surplus` came later and are empty in every ledger
written in commit order (so existing files need no migration: `create` adds them empty).
"""

from __future__ import annotations

from ledger import Dialect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, unit_price INTEGER NOT NULL, currency TEXT NOT NULL,
    available INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coupons (
    code TEXT PRIMARY KEY, percent_off_bp INTEGER, amount_off INTEGER, currency TEXT,
    min_subtotal INTEGER NOT NULL, expires_at TEXT
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, status TEXT NOT NULL, currency TEXT NOT NULL,
    subtotal INTEGER NOT NULL, discount INTEGER NOT NULL, tax INTEGER NOT NULL,
    total INTEGER NOT NULL, intent_id TEXT, paid INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0, placed_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS payment_intents (
    intent_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, status TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, digest TEXT NOT NULL,
    outcome TEXT NOT NULL, order_id TEXT, intent_id TEXT
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parked (
    event_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, order_id TEXT, notice TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS parked_intent ON parked (intent_id);
CREATE TABLE IF NOT EXISTS stock_unapplied (
    sku TEXT PRIMARY KEY, available INTEGER NOT NULL, reserved INTEGER NOT NULL,
    sold INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parked_surplus (
    event_id TEXT PRIMARY KEY, surplus INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"""
# The same tables on PostgreSQL. `parked` has no hidden row id there: its `position` (the
# WebhookParked record's) keeps the oldest-first order that SQLite keeps in the row id
# (see `projections.PARKED_ORDER`).
_POSTGRESQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, unit_price BIGINT NOT NULL, currency TEXT NOT NULL,
    available BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0)
);
CREATE TABLE IF NOT EXISTS coupons (
    code TEXT PRIMARY KEY, percent_off_bp BIGINT, amount_off BIGINT, currency TEXT,
    min_subtotal BIGINT NOT NULL, expires_at TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, status TEXT NOT NULL, currency TEXT NOT NULL,
    subtotal BIGINT NOT NULL, discount BIGINT NOT NULL, tax BIGINT NOT NULL,
    total BIGINT NOT NULL, intent_id TEXT, paid BIGINT NOT NULL DEFAULT 0,
    refunded BIGINT NOT NULL DEFAULT 0, placed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payment_intents (
    intent_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount BIGINT NOT NULL,
    currency TEXT NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, digest TEXT NOT NULL,
    outcome TEXT NOT NULL, order_id TEXT, intent_id TEXT
);
CREATE TABLE IF NOT EXISTS parked (
    event_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, order_id TEXT, notice TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_intent ON parked (intent_id);
CREATE TABLE IF NOT EXISTS stock_unapplied (
    sku TEXT PRIMARY KEY, available BIGINT NOT NULL, reserved BIGINT NOT NULL,
    sold BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS parked_surplus (event_id TEXT PRIMARY KEY, surplus BIGINT NOT NULL);
"""
SCHEMAS: dict[Dialect, str] = {"sqlite": _SCHEMA, "postgresql": _POSTGRESQL_SCHEMA}
"""Each dialect's DDL: statements separated by `;`, each idempotent (`IF NOT EXISTS`)."""
