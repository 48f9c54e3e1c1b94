"""Read models kept in step with the commerce events (a ledger `Projection`).

```
products(sku, name, unit_price, currency, available, reserved, sold)
coupons(code, percent_off_bp, amount_off, currency, min_subtotal, expires_at)
orders(order_id, status, currency, subtotal, discount, tax, total, intent_id, paid, refunded,
       placed_at)
payment_intents(intent_id, order_id, amount, currency, status)
webhooks(event_id, event_type, digest, outcome, order_id, intent_id)
parked(event_id, intent_id, order_id, notice)        events waiting for their order's flow
stock_unapplied(sku, available, reserved, sold)     moves that came first (see stock_counts)
parked_surplus(event_id, surplus)                   parkings less unparkings beyond `parked`
```
Each row follows from the events alone, in any order that keeps each stream's own (the
order a rebuild may replay them in), so `Ledger.rebuild()` reproduces it exactly. An
order's status and money (and its intents' status) are what `commerce.order.evolve` folds
its events to; the projection reads them once per append and writes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from commerce import stock_counts
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
from commerce.schema import SCHEMAS
from ledger import Dialect, Record, Tx

STREAM_PREFIXES = ("sku:", "order:", "coupon:", "webhook:")
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode
_encode = msgspec.json.encode

PARKED_ORDER: dict[Dialect, str] = {"sqlite": "rowid", "postgresql": "position"}
"""The one dialect difference in commerce's SQL: the `parked` column that orders it oldest
first. It holds the WebhookParked record's position on both (SQLite files made before kept
their tables, whose rowid is the only place for it; older rowids are smaller, so the order
of their rows still holds)."""

Apply = Callable[[Tx, Any, int], None]  # (tx, event, the record's position)


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
    present, surplus = _park_balance(tx, e.event_id)
    balance = present + surplus + 1
    if balance >= 1:  # the latest parking's row: a rebuild meets them in their stream's order
        if present:
            tx.execute("DELETE FROM parked WHERE event_id = ?", (e.event_id,))
        tx.execute(
            f"INSERT INTO parked ({PARKED_ORDER[tx.dialect]}, event_id, intent_id, order_id,"
            " notice) VALUES (?, ?, ?, ?, ?)",
            (position, e.event_id, e.intent_id, e.order_id, _encode(e.payment).decode()),
        )
    _set_surplus(tx, e.event_id, surplus, balance - 1 if balance >= 1 else balance)


def _unparked(tx: Tx, e: WebhookUnparked, position: int) -> None:
    present, surplus = _park_balance(tx, e.event_id)
    balance = present + surplus - 1
    if present and balance < 1:
        tx.execute("DELETE FROM parked WHERE event_id = ?", (e.event_id,))
    _set_surplus(tx, e.event_id, surplus, balance - 1 if balance >= 1 else balance)


def _park_balance(tx: Tx, event_id: str) -> tuple[int, int]:
    """Whether the event has a `parked` row, and its parkings less unparkings beyond that.

    Parked on its webhook's stream, unparked on its order's: a rebuild may meet an
    unparking first, or two parkings in a row. Written in commit order, the surplus is 0.
    """
    ((present, surplus),) = tx.query(
        "SELECT (SELECT count(*) FROM parked WHERE event_id = ?),"
        " (SELECT coalesce(sum(surplus), 0) FROM parked_surplus WHERE event_id = ?)",
        (event_id, event_id),
    )
    return int(present), int(surplus)


def _set_surplus(tx: Tx, event_id: str, before: int, after: int) -> None:
    if after == before:
        return
    if after == 0:
        tx.execute("DELETE FROM parked_surplus WHERE event_id = ?", (event_id,))
        return
    tx.execute(
        "INSERT INTO parked_surplus (event_id, surplus) VALUES (?, ?)"
        " ON CONFLICT (event_id) DO UPDATE SET surplus = excluded.surplus",
        (event_id, after),
    )


_APPLY: dict[type, Apply] = {  # the rows other than an order's own (see `_store`)
    ProductAdded: stock_counts.product_added,
    Restocked: stock_counts.restocked,
    StockRemoved: stock_counts.removed,
    CouponAdded: _coupon_added,
    StockReserved: stock_counts.mover("available", "reserved"),
    StockReleased: stock_counts.mover("reserved", "available"),
    StockCommitted: stock_counts.mover("reserved", "sold"),
    OrderMovedOut: stock_counts.mover("reserved", None),
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
    tables = (
        "products",
        "coupons",
        "orders",
        "payment_intents",
        "webhooks",
        "parked",
        "stock_unapplied",
        "parked_surplus",
    )

    def create(self, tx: Tx) -> None:
        """Create the tables and indexes if missing, in the DDL of the ledger's database."""
        for statement in SCHEMAS[tx.dialect].split(";"):
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
