"""Read models kept in step with the commerce events (a ledger `Projection`).

```
products(sku, name, unit_price, currency, available, reserved, sold)
coupons(code, percent_off_bp, amount_off, currency, min_subtotal, expires_at)
orders(order_id, status, currency, subtotal, discount, tax, total, intent_id, paid, refunded,
       placed_at)
payment_intents(intent_id, order_id, amount, currency, status)
webhooks(event_id, event_type, digest, outcome, order_id, intent_id)
parked(event_id, intent_id, order_id, notice)        events waiting for their order's flow
```
Each row follows from the events alone, so `Ledger.rebuild()` reproduces it exactly. An
order's status and money (and its intents' status) are what `commerce.order.evolve` folds
its events to; the projection reads them once per append and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from commerce.events import (
    AnyCommerceEvent,
    CouponAdded,
    OrderMovedOut,
    OrderPlaced,
    PaymentIntentAdopted,
    PaymentIntentCreated,
    PaymentReceived,
    ProductAdded,
    RefundIssued,
    RefundRecorded,
    Restocked,
    StockCommitted,
    StockReleased,
    StockRemoved,
    StockReserved,
    WebhookParked,
    WebhookReceived,
    WebhookUnparked,
)
from commerce.order import ORDER_EVENTS, IntentState, OrderEvent, OrderState, fold
from ledger import Dialect, Record, Tx

STREAM_PREFIXES = ("sku:", "order:", "coupon:", "webhook:")
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode
_encode = msgspec.json.encode

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
"""
# The same tables on PostgreSQL. `parked` has no hidden rowid there: its `position` (the
# WebhookParked record's) keeps the oldest-first order that SQLite keeps in the rowid.
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
"""
_SCHEMAS: dict[Dialect, str] = {"sqlite": _SCHEMA, "postgresql": _POSTGRESQL_SCHEMA}

PARKED_ORDER: dict[Dialect, str] = {"sqlite": "rowid", "postgresql": "position"}
"""The one dialect difference in commerce's SQL: the `parked` column that orders it oldest
first. It holds the WebhookParked record's position on both (SQLite files made before kept
their tables, whose rowid is the only place for it; older rowids are smaller, so the order
of their rows still holds)."""

Apply = Callable[[Tx, Any, int], None]  # (tx, event, the record's position)


def _stock(column_from: str | None, column_to: str | None) -> Apply:
    """Move each line's quantity between stock columns (None: in from or out to nowhere)."""
    sets = []
    if column_from:
        sets.append(f"{column_from} = {column_from} - :q")
    if column_to:
        sets.append(f"{column_to} = {column_to} + :q")
    sql = f"UPDATE products SET {', '.join(sets)} WHERE sku = :sku"

    def apply(tx: Tx, event: Any, position: int) -> None:
        for line in event.lines:
            tx.execute(sql, {"q": line.quantity, "sku": line.sku})

    return apply


def _product_added(tx: Tx, e: ProductAdded, position: int) -> None:
    tx.execute(
        "INSERT INTO products (sku, name, unit_price, currency) VALUES (?, ?, ?, ?)",
        (e.sku, e.name, e.unit_price, e.currency),
    )


def _restocked(tx: Tx, e: Restocked, position: int) -> None:
    tx.execute("UPDATE products SET available = available + ? WHERE sku = ?", (e.quantity, e.sku))


def _removed(tx: Tx, e: StockRemoved, position: int) -> None:
    tx.execute("UPDATE products SET available = available - ? WHERE sku = ?", (e.quantity, e.sku))


_COUPON_COLUMNS = ("code", "percent_off_bp", "amount_off", "currency", "min_subtotal", "expires_at")
_COUPON_UPSERT = (  # a coupon added again replaces the one before
    f"INSERT INTO coupons ({', '.join(_COUPON_COLUMNS)}) VALUES ({', '.join('?' * 6)})"
    " ON CONFLICT (code) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COUPON_COLUMNS[1:])
)


def _coupon_added(tx: Tx, e: CouponAdded, position: int) -> None:
    c = e.coupon
    expires = c.expires_at.isoformat() if c.expires_at else None
    tx.execute(
        _COUPON_UPSERT,
        (c.code, c.percent_off_bp, c.amount_off, c.currency, c.min_subtotal, expires),
    )


def _webhook(tx: Tx, e: WebhookReceived, position: int) -> None:
    tx.execute(
        "INSERT INTO webhooks (event_id, event_type, digest, outcome, order_id, intent_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (e.event_id, e.event_type, e.digest, e.outcome, e.order_id, e.intent_id),
    )


def _parked(tx: Tx, e: WebhookParked, position: int) -> None:
    tx.execute(
        f"INSERT INTO parked ({PARKED_ORDER[tx.dialect]}, event_id, intent_id, order_id, notice)"
        " VALUES (?, ?, ?, ?, ?)",
        (position, e.event_id, e.intent_id, e.order_id, _encode(e.payment).decode()),
    )


def _unparked(tx: Tx, e: WebhookUnparked, position: int) -> None:
    tx.execute("DELETE FROM parked WHERE event_id = ?", (e.event_id,))


_APPLY: dict[type, Apply] = {  # the rows other than an order's own (see `_store`)
    ProductAdded: _product_added,
    Restocked: _restocked,
    StockRemoved: _removed,
    CouponAdded: _coupon_added,
    StockReserved: _stock("available", "reserved"),
    StockReleased: _stock("reserved", "available"),
    StockCommitted: _stock("reserved", "sold"),
    OrderMovedOut: _stock("reserved", None),
    WebhookReceived: _webhook,
    WebhookParked: _parked,
    WebhookUnparked: _unparked,
}
_TYPES = frozenset(cls.__name__ for cls in (*_APPLY, *ORDER_EVENTS))
_NAMES_INTENT = (PaymentReceived, RefundIssued, RefundRecorded)  # change an intent's status
_OPENS_INTENT = (PaymentIntentCreated, PaymentIntentAdopted)  # insert an intent's row


def _stored(tx: Tx, order_id: str | None, intent_ids: Sequence[str]) -> tuple[OrderState, bool]:
    """The order's stored state with the named intents' (one query), and whether it is stored.

    `order_id` None reads the intents only (the batch places the order).
    """
    parts: list[str] = []
    params: list[str] = []
    if order_id is not None:
        parts.append(
            "SELECT 0, NULL, status, paid, refunded, intent_id FROM orders WHERE order_id = ?"
        )
        params.append(order_id)
    if intent_ids:
        marks = ", ".join("?" * len(intent_ids))
        parts.append(
            "SELECT 1, intent_id, status, amount, 0, NULL FROM payment_intents"
            f" WHERE intent_id IN ({marks})"
        )
        params.extend(intent_ids)
    rows = tx.query(" UNION ALL ".join(parts), params) if parts else []
    order, intents = OrderState(), {}
    for kind, intent_id, status, amount, refunded, own in rows:
        if kind == 0:
            order = OrderState(status=status, paid=amount, refunded=refunded, intent_id=own)
        else:
            intents[intent_id] = IntentState(amount, status)
    found = any(row[0] == 0 for row in rows)
    return msgspec.structs.replace(order, intents=intents), found


def _row(state: OrderState) -> tuple[str, int, int, str | None]:
    """What `orders` keeps of the state, in `_UPDATE_ORDER`'s order."""
    return state.status, state.paid, state.refunded, state.intent_id


_UPDATE_ORDER = (
    "UPDATE orders SET status = ?, paid = ?, refunded = ?, intent_id = ? WHERE order_id = ?"
)
_INSERT_ORDER = (
    "INSERT INTO orders (order_id, currency, subtotal, discount, tax, total, placed_at,"
    " status, paid, refunded, intent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_INTENT = (
    "INSERT INTO payment_intents (intent_id, order_id, amount, currency, status)"
    " VALUES (?, ?, ?, ?, ?)"
)


def _store(tx: Tx, order_id: str, events: list[OrderEvent]) -> None:
    """Fold one append's events of an order into its stored state, and write what changed.

    A batch that places the order inserts its row (and a second placing fails, as the
    primary key wants); intents opened in the batch are inserted with their folded status.
    """
    placed = next((e for e in events if isinstance(e, OrderPlaced)), None)
    opened = [e for e in events if isinstance(e, _OPENS_INTENT)]
    named = {e.intent_id for e in events if isinstance(e, _NAMES_INTENT)}
    named -= {e.intent_id for e in opened}
    before, found = _stored(tx, None if placed is events[0] else order_id, sorted(named))
    after = fold(events, before)
    if placed is not None:
        q = placed.quote
        order = (order_id, q.currency, q.subtotal, q.discount, q.tax, q.total)
        tx.execute(_INSERT_ORDER, (*order, placed.placed_at.isoformat(), *_row(after)))
    elif found and _row(after) != _row(before):
        tx.execute(_UPDATE_ORDER, (*_row(after), order_id))
    for e in opened:
        status = after.intents[e.intent_id].status
        tx.execute(_INSERT_INTENT, (e.intent_id, e.order_id, e.amount, e.currency, status))
    for intent_id in named:
        intent = after.intents.get(intent_id)
        if intent is not None and intent != before.intents[intent_id]:
            tx.execute(
                "UPDATE payment_intents SET status = ? WHERE intent_id = ?",
                (intent.status, intent_id),
            )


class CommerceProjection:
    """The commerce read models, as a ledger projection."""

    name = "commerce"
    tables = ("products", "coupons", "orders", "payment_intents", "webhooks", "parked")

    def create(self, tx: Tx) -> None:
        """Create the tables and indexes if missing, in the DDL of the ledger's database."""
        for statement in _SCHEMAS[tx.dialect].split(";"):
            if statement.strip():
                tx.execute(statement)

    def apply(self, tx: Tx, record: Record) -> None:
        """Fold one ledger record into the tables (rebuilds: an append of one record)."""
        self.apply_batch(tx, [record])

    def apply_batch(self, tx: Tx, records: Sequence[Record]) -> None:
        """Fold one append's records (others' records are skipped cheaply).

        Each order's row is read and written once, whatever the number of its events
        (see `_store`); the rows end as `apply` of each record in turn leaves them.
        """
        orders: dict[str, list[OrderEvent]] = {}
        for record in records:
            if record.type not in _TYPES or not record.stream.startswith(STREAM_PREFIXES):
                continue
            event = _decode(record.data)
            apply = _APPLY.get(type(event))
            if apply is not None:
                apply(tx, event, record.position)
            if isinstance(event, ORDER_EVENTS):
                orders.setdefault(event.order_id, []).append(event)
        for order_id, events in orders.items():
            _store(tx, order_id, events)
