"""Read models: products, orders and an order's timeline, as plain Structs from the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from commerce.errors import UnknownOrder, UnknownProduct
from commerce.events import AnyCommerceEvent, OrderPlaced, PaymentIntentCreated, PaymentNotice
from commerce.handlers import order_stream
from commerce.money import Money, format_money
from commerce.pricing import Quote
from ledger import Ledger


class ProductRow(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog entry and its stock: available + reserved + sold = everything restocked."""

    sku: str
    name: str
    unit_price: int
    currency: str
    available: int
    reserved: int
    sold: int


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """One order's current state."""

    order_id: str
    status: str
    currency: str
    total: int
    paid: int
    refunded: int
    intent_id: str | None
    placed_at: datetime

    @property
    def total_text(self) -> str:
        """The total with its currency, for people."""
        return format_money(Money(self.total, self.currency))


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event in an order's history."""

    position: int
    at: str
    event: str
    detail: dict[str, Any]


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """An order with its quote and timeline, and what a storefront needs to let it be paid.

    `client_secret` (Stripe.js) or `checkout_url` (a hosted page) come from the order's
    intent as its provider created it (None when the provider gave none).
    """

    order: OrderRow
    quote: Quote
    timeline: list[TimelineEntry]
    client_secret: str | None = None
    checkout_url: str | None = None


class ParkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A payment event recorded but not yet applied to any order's flow."""

    event_id: str
    event_type: str
    intent_id: str
    order_id: str | None
    notice: PaymentNotice


ORDER_STATUSES: tuple[str, ...] = (
    "placed",
    "awaiting_payment",
    "needs_review",
    "fulfilled",
    "partially_refunded",
    "refunded",
    "expired",
    "cancelled",
    "failed",
    "moved",
)
"""Every status an order can have."""

_ORDER_COLUMNS = "order_id, status, currency, total, paid, refunded, intent_id, placed_at"
_PRODUCT_COLUMNS = "sku, name, unit_price, currency, available, reserved, sold"
_decode_event = msgspec.json.Decoder(AnyCommerceEvent).decode


def _product(row: tuple[Any, ...]) -> ProductRow:
    return ProductRow(**dict(zip(_PRODUCT_COLUMNS.split(", "), row, strict=True)))


def _order(row: tuple[Any, ...]) -> OrderRow:
    values = dict(zip(_ORDER_COLUMNS.split(", "), row, strict=True))
    values["placed_at"] = datetime.fromisoformat(values["placed_at"])
    return OrderRow(**values)


def product(ledger: Ledger, sku: str) -> ProductRow:
    """One product, or `UnknownProduct`."""
    row = ledger.db.execute(
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE sku = ?", (sku,)
    ).fetchone()
    if row is None:
        raise UnknownProduct(sku)
    return _product(row)


def products(ledger: Ledger) -> list[ProductRow]:
    """Every product, by SKU."""
    rows = ledger.db.execute(f"SELECT {_PRODUCT_COLUMNS} FROM products ORDER BY sku").fetchall()
    return [_product(r) for r in rows]


def order_row(ledger: Ledger, order_id: str) -> OrderRow:
    """One order's row, or `UnknownOrder`."""
    row = ledger.db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
    ).fetchone()
    if row is None:
        raise UnknownOrder(order_id)
    return _order(row)


def orders(
    ledger: Ledger,
    status: str | None = None,
    *,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[OrderRow]:
    """Orders (optionally with one status, placed at or after `since`), oldest first.

    `limit` keeps the newest that many (a listing of a large shop reads only those).
    """
    where, params = ["status = ?"] if status else [], [status] if status else []
    if since is not None:
        where.append("placed_at >= ?")
        params.append(since.astimezone(UTC).isoformat())
    order = "placed_at, order_id" if limit is None else "placed_at DESC, order_id DESC"
    sql = f"SELECT {_ORDER_COLUMNS} FROM orders"
    sql += (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = [_order(r) for r in ledger.db.execute(sql, params).fetchall()]
    return rows if limit is None else rows[::-1]


def order_view(ledger: Ledger, order_id: str) -> OrderView:
    """The order, its quote and its timeline (every event of its stream, oldest first)."""
    row = order_row(ledger, order_id)
    timeline, quote, intent = [], None, None
    for record in ledger.records(order_stream(order_id)):
        event = _decode_event(record.data)
        if isinstance(event, OrderPlaced):
            quote = event.quote
        elif isinstance(event, PaymentIntentCreated):
            intent = event
        detail = {
            k: v for k, v in msgspec.to_builtins(event).items() if k not in ("type", "order_id")
        }
        entry = TimelineEntry(
            position=record.position, at=record.recorded_at, event=record.type, detail=detail
        )
        timeline.append(entry)
    if quote is None:
        raise UnknownOrder(order_id)
    return OrderView(
        order=row,
        quote=quote,
        timeline=timeline,
        client_secret=intent.client_secret if intent else None,
        checkout_url=intent.checkout_url if intent else None,
    )


_decode_notice = msgspec.json.Decoder(PaymentNotice).decode


def parked(ledger: Ledger, order_id: str | None = None) -> list[ParkedEvent]:
    """Parked events (all, or the order's: named by it or on its intents), oldest first."""
    sql = (
        "SELECT p.event_id, coalesce(w.event_type, ''), p.intent_id,"
        " coalesce(p.order_id, i.order_id), p.notice FROM parked p"
        " LEFT JOIN webhooks w ON w.event_id = p.event_id"
        " LEFT JOIN payment_intents i ON i.intent_id = p.intent_id"
    )
    params: tuple[str, ...] = ()
    if order_id is not None:
        sql += " WHERE p.order_id = ? OR i.order_id = ?"
        params = (order_id, order_id)
    rows = ledger.db.execute(sql + " ORDER BY p.rowid", params).fetchall()
    return [
        ParkedEvent(
            event_id=r[0],
            event_type=r[1],
            intent_id=r[2],
            order_id=r[3],
            notice=_decode_notice(r[4]),
        )
        for r in rows
    ]
