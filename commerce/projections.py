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
Each row follows from the events alone, so `Ledger.rebuild()` reproduces it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from commerce.events import (
    AnyCommerceEvent,
    CouponAdded,
    OrderClosed,
    OrderFulfilled,
    OrderMovedOut,
    OrderPlaced,
    PaymentDisputed,
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
from ledger import Tx

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

Apply = Callable[[Tx, object], None]


def _stock(column_from: str | None, column_to: str | None) -> Apply:
    """Move each line's quantity between stock columns (None: in from or out to nowhere)."""
    sets = []
    if column_from:
        sets.append(f"{column_from} = {column_from} - :q")
    if column_to:
        sets.append(f"{column_to} = {column_to} + :q")
    sql = f"UPDATE products SET {', '.join(sets)} WHERE sku = :sku"

    def apply(conn: Tx, event: object) -> None:
        for line in event.lines:  # type: ignore[attr-defined]
            conn.execute(sql, {"q": line.quantity, "sku": line.sku})

    return apply


def _status(status: str) -> Apply:
    def apply(conn: Tx, event: object) -> None:
        conn.execute(
            "UPDATE orders SET status = ? WHERE order_id = ?",
            (status, event.order_id),  # type: ignore[attr-defined]
        )

    return apply


def _product_added(conn: Tx, e: ProductAdded) -> None:
    conn.execute(
        "INSERT INTO products (sku, name, unit_price, currency) VALUES (?, ?, ?, ?)",
        (e.sku, e.name, e.unit_price, e.currency),
    )


def _restocked(conn: Tx, e: Restocked) -> None:
    conn.execute("UPDATE products SET available = available + ? WHERE sku = ?", (e.quantity, e.sku))


def _removed(conn: Tx, e: StockRemoved) -> None:
    conn.execute("UPDATE products SET available = available - ? WHERE sku = ?", (e.quantity, e.sku))


def _coupon_added(conn: Tx, e: CouponAdded) -> None:
    c = e.coupon
    expires = c.expires_at.isoformat() if c.expires_at else None
    conn.execute(
        "INSERT OR REPLACE INTO coupons VALUES (?, ?, ?, ?, ?, ?)",
        (c.code, c.percent_off_bp, c.amount_off, c.currency, c.min_subtotal, expires),
    )


def _order_placed(conn: Tx, e: OrderPlaced) -> None:
    q = e.quote
    conn.execute(
        "INSERT INTO orders (order_id, status, currency, subtotal, discount, tax, total, placed_at)"
        " VALUES (?, 'placed', ?, ?, ?, ?, ?, ?)",
        (e.order_id, q.currency, q.subtotal, q.discount, q.tax, q.total, e.placed_at.isoformat()),
    )


def _intent_created(conn: Tx, e: PaymentIntentCreated) -> None:
    conn.execute(
        "UPDATE orders SET status = 'awaiting_payment', intent_id = ? WHERE order_id = ?",
        (e.intent_id, e.order_id),
    )
    conn.execute(
        "INSERT INTO payment_intents VALUES (?, ?, ?, ?, 'open')",
        (e.intent_id, e.order_id, e.amount, e.currency),
    )


def _payment_received(conn: Tx, e: PaymentReceived) -> None:
    # A refund may have come first (events out of order): the statuses take it into account.
    conn.execute(
        "UPDATE orders SET paid = paid + :amount, status = CASE"
        " WHEN status IN ('expired', 'cancelled', 'failed') AND refunded >= paid + :amount"
        " THEN 'refunded' ELSE status END WHERE order_id = :order",
        {"amount": e.amount, "order": e.order_id},
    )
    _payment_received_intent(conn, e)


def _payment_received_intent(conn: Tx, e: PaymentReceived) -> None:
    conn.execute(
        "UPDATE payment_intents SET status = CASE"
        " WHEN (SELECT refunded FROM orders WHERE order_id = :order) >= amount THEN 'refunded'"
        " WHEN (SELECT refunded FROM orders WHERE order_id = :order) > 0"
        " THEN 'partially_refunded' ELSE 'succeeded' END WHERE intent_id = :intent",
        {"order": e.order_id, "intent": e.intent_id},
    )


def _fulfilled(conn: Tx, e: OrderFulfilled) -> None:
    conn.execute(
        "UPDATE orders SET status = CASE WHEN refunded > 0 THEN 'partially_refunded'"
        " ELSE 'fulfilled' END WHERE order_id = ?",
        (e.order_id,),
    )


def _disputed(conn: Tx, e: PaymentDisputed) -> None:
    _status("needs_review")(conn, e)


def _closed(conn: Tx, e: OrderClosed) -> None:
    _status(e.status)(conn, e)


def _moved_out(conn: Tx, e: OrderMovedOut) -> None:
    _stock("reserved", None)(conn, e)
    _status("moved")(conn, e)


def _refund_issued(conn: Tx, e: RefundIssued) -> None:
    conn.execute(
        "UPDATE orders SET status = 'refunded', refunded = refunded + ? WHERE order_id = ?",
        (e.amount, e.order_id),
    )
    conn.execute(
        "UPDATE payment_intents SET status = 'refunded' WHERE intent_id = ?", (e.intent_id,)
    )


def _refund_recorded(conn: Tx, e: RefundRecorded) -> None:
    # A refund reported before the payment itself leaves the intent open: the payment, when
    # it comes, is then settled knowing what was already given back.
    # A part refunded of a payment held for review leaves it held: a person still decides.
    status = "refunded" if e.full else "partially_refunded"
    conn.execute(
        "UPDATE orders SET refunded = :refunded, status = CASE"
        " WHEN status = 'needs_review' AND NOT :full THEN status WHEN status IN"
        " ('fulfilled', 'needs_review', 'refunded', 'partially_refunded') THEN :status"
        " ELSE status END WHERE order_id = :order",
        {"refunded": e.amount_refunded, "full": e.full, "status": status, "order": e.order_id},
    )
    conn.execute(
        "UPDATE payment_intents SET status = ? WHERE intent_id = ? AND status != 'open'",
        (status, e.intent_id),
    )


def _intent_adopted(conn: Tx, e: PaymentIntentAdopted) -> None:
    conn.execute(
        "INSERT INTO payment_intents VALUES (?, ?, ?, ?, 'open')",
        (e.intent_id, e.order_id, e.amount, e.currency),
    )


def _webhook(conn: Tx, e: WebhookReceived) -> None:
    conn.execute(
        "INSERT INTO webhooks VALUES (?, ?, ?, ?, ?, ?)",
        (e.event_id, e.event_type, e.digest, e.outcome, e.order_id, e.intent_id),
    )


def _parked(conn: Tx, e: WebhookParked) -> None:
    conn.execute(
        "INSERT INTO parked VALUES (?, ?, ?, ?)",
        (e.event_id, e.intent_id, e.order_id, _encode(e.payment).decode()),
    )


def _unparked(conn: Tx, e: WebhookUnparked) -> None:
    conn.execute("DELETE FROM parked WHERE event_id = ?", (e.event_id,))


_APPLY: dict[type, Apply] = {
    ProductAdded: _product_added,  # type: ignore[dict-item]
    Restocked: _restocked,  # type: ignore[dict-item]
    StockRemoved: _removed,  # type: ignore[dict-item]
    CouponAdded: _coupon_added,  # type: ignore[dict-item]
    OrderPlaced: _order_placed,  # type: ignore[dict-item]
    StockReserved: _stock("available", "reserved"),
    StockReleased: _stock("reserved", "available"),
    StockCommitted: _stock("reserved", "sold"),
    PaymentIntentCreated: _intent_created,  # type: ignore[dict-item]
    PaymentIntentAdopted: _intent_adopted,  # type: ignore[dict-item]
    PaymentReceived: _payment_received,  # type: ignore[dict-item]
    OrderFulfilled: _fulfilled,  # type: ignore[dict-item]
    PaymentDisputed: _disputed,  # type: ignore[dict-item]
    OrderClosed: _closed,  # type: ignore[dict-item]
    OrderMovedOut: _moved_out,  # type: ignore[dict-item]
    RefundIssued: _refund_issued,  # type: ignore[dict-item]
    RefundRecorded: _refund_recorded,  # type: ignore[dict-item]
    WebhookReceived: _webhook,  # type: ignore[dict-item]
    WebhookParked: _parked,  # type: ignore[dict-item]
    WebhookUnparked: _unparked,  # type: ignore[dict-item]
}
_TYPES = frozenset(cls.__name__ for cls in _APPLY)
_ORDER_ROW = (  # the events whose rows read or write `orders`: the order of these matters
    OrderPlaced,
    PaymentIntentCreated,
    PaymentReceived,
    OrderFulfilled,
    PaymentDisputed,
    OrderClosed,
    OrderMovedOut,
    RefundIssued,
    RefundRecorded,
)


def _paid_and_fulfilled(conn: Tx, e: PaymentReceived) -> None:
    """`PaymentReceived` then `OrderFulfilled` of the same order, with one `orders` update.

    The fulfilment sets the status whatever it was (from `refunded`, which the payment
    does not change), so the payment's own status rule is overwritten anyway.
    """
    conn.execute(
        "UPDATE orders SET paid = paid + ?, status = CASE WHEN refunded > 0"
        " THEN 'partially_refunded' ELSE 'fulfilled' END WHERE order_id = ?",
        (e.amount, e.order_id),
    )
    _payment_received_intent(conn, e)


def _fulfilled_next(events: list[object], index: int) -> int | None:
    """The index of the `OrderFulfilled` that is the next `orders` event after `index`."""
    paid = events[index]
    for later in range(index + 1, len(events)):
        event = events[later]
        if isinstance(event, _ORDER_ROW):
            same = getattr(event, "order_id", None) == getattr(paid, "order_id", "")
            return later if isinstance(event, OrderFulfilled) and same else None
    return None


class CommerceProjection:
    """The commerce read models, as a ledger projection."""

    name = "commerce"
    tables = ("products", "coupons", "orders", "payment_intents", "webhooks", "parked")

    def create(self, tx: Tx) -> None:
        """Create the tables and indexes if missing."""
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                tx.execute(statement)

    def apply(self, conn: Tx, record: object) -> None:
        """Fold one ledger record into the tables (others' records are skipped cheaply)."""
        if record.type not in _TYPES or not record.stream.startswith(STREAM_PREFIXES):  # type: ignore[attr-defined]
            return
        event = _decode(record.data)  # type: ignore[attr-defined]
        _APPLY[type(event)](conn, event)

    def apply_batch(self, conn: Tx, records: Sequence[object]) -> None:
        """Fold one append's records, a payment and the fulfilment after it as one update.

        The rows end as `apply` of each record in turn leaves them (rebuilds use `apply`).
        """
        events: list[object] = [
            _decode(r.data)  # type: ignore[attr-defined]
            for r in records
            if r.type in _TYPES and r.stream.startswith(STREAM_PREFIXES)  # type: ignore[attr-defined]
        ]
        done: int | None = None
        for index, event in enumerate(events):
            if index == done:
                continue
            if isinstance(event, PaymentReceived):
                done = _fulfilled_next(events, index)
                if done is not None:
                    _paid_and_fulfilled(conn, event)
                    continue
            _APPLY[type(event)](conn, event)
