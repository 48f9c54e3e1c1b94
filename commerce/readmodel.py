"""The commerce read model: every SQL read of the commerce tables, in portable SQL.

Nothing else in commerce or cli queries `products`, `coupons`, `orders`,
`payment_intents`, `webhooks` or `parked` (a test holds them to it), and this goes through
`Ledger.query` only, so the same reads run on every backend. Inside a transaction they
see its writes. The one dialect difference, the column that keeps `parked` oldest first,
is `commerce.projections.PARKED_ORDER`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from commerce.errors import UnknownOrder, UnknownProduct
from commerce.events import PaymentNotice
from commerce.money import Money, format_money
from commerce.order import OrderState
from commerce.pricing import Coupon
from commerce.projections import PARKED_ORDER
from ledger import Ledger

# -- rows --------------------------------------------------------------------------------


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


class ParkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A payment event recorded but not yet applied to any order's flow."""

    event_id: str
    event_type: str
    intent_id: str
    order_id: str | None
    notice: PaymentNotice


class IntentRow(msgspec.Struct, frozen=True):
    """A payment intent: its order, what it asks for, and how far it got."""

    order_id: str
    amount: int
    currency: str
    status: str


class Standing(msgspec.Struct, frozen=True):
    """Where a payment stands: its intent's order and status, and that order's state.

    `order` is None when the intent's order is not stored here; `parked_ahead`: an
    earlier event for the order waits parked (a later one never overtakes it).
    """

    order_id: str
    intent_status: str
    order: OrderState | None
    parked_ahead: bool


class ParkedRow(msgspec.Struct, frozen=True):
    """One parked event as stored: `seq` orders it among the parked (oldest first)."""

    seq: int
    intent_id: str
    order_id: str | None
    notice: str  # the PaymentNotice's JSON
    event_type: str | None


def _one(ledger: Ledger, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    rows = ledger.query(sql, params)
    return rows[0] if rows else None


def _seq(ledger: Ledger) -> str:
    return PARKED_ORDER[ledger.dialect]


# -- products and coupons ----------------------------------------------------------------

_PRODUCT_COLUMNS = "sku, name, unit_price, currency, available, reserved, sold"


def _product(row: tuple[Any, ...]) -> ProductRow:
    return ProductRow(**dict(zip(_PRODUCT_COLUMNS.split(", "), row, strict=True)))


def product(ledger: Ledger, sku: str) -> ProductRow:
    """One product, or `UnknownProduct`."""
    row = _one(ledger, f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE sku = ?", (sku,))
    if row is None:
        raise UnknownProduct(sku)
    return _product(row)


def products(ledger: Ledger) -> list[ProductRow]:
    """Every product, by SKU."""
    rows = ledger.query(f"SELECT {_PRODUCT_COLUMNS} FROM products ORDER BY sku")
    return [_product(r) for r in rows]


def price(ledger: Ledger, sku: str) -> tuple[int, str] | None:
    """The product's unit price and currency; None if there is no such product."""
    row = _one(ledger, "SELECT unit_price, currency FROM products WHERE sku = ?", (sku,))
    return None if row is None else (int(row[0]), str(row[1]))


def available(ledger: Ledger, sku: str) -> int:
    """The units of `sku` free to reserve (0 for an unknown product)."""
    row = _one(ledger, "SELECT available FROM products WHERE sku = ?", (sku,))
    return 0 if row is None else int(row[0])


def held(ledger: Ledger, sku: str) -> int | None:
    """The units of `sku` the shop holds (available and reserved); None: no such product."""
    row = _one(ledger, "SELECT available + reserved FROM products WHERE sku = ?", (sku,))
    return None if row is None else int(row[0])


def coupon(ledger: Ledger, code: str) -> Coupon | None:
    """The coupon with this code, or None."""
    row = _one(
        ledger,
        "SELECT percent_off_bp, amount_off, currency, min_subtotal, expires_at FROM coupons"
        " WHERE code = ?",
        (code,),
    )
    if row is None:
        return None
    percent_off_bp, amount_off, currency, min_subtotal, expires_at = row
    return Coupon(
        code=code,
        percent_off_bp=percent_off_bp,
        amount_off=amount_off,
        currency=currency,
        min_subtotal=min_subtotal,
        expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
    )


# -- orders and intents ------------------------------------------------------------------

_ORDER_COLUMNS = "order_id, status, currency, total, paid, refunded, intent_id, placed_at"


def _order(row: tuple[Any, ...]) -> OrderRow:
    values = dict(zip(_ORDER_COLUMNS.split(", "), row, strict=True))
    values["placed_at"] = datetime.fromisoformat(values["placed_at"])
    return OrderRow(**values)


def order_row(ledger: Ledger, order_id: str) -> OrderRow:
    """One order's row, or `UnknownOrder`."""
    row = _one(ledger, f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,))
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
    rows = [_order(r) for r in ledger.query(sql, params)]
    return rows if limit is None else rows[::-1]


def order_state(ledger: Ledger, order_id: str) -> OrderState | None:
    """The order's stored status, money and intent (no intents' states); None: unknown."""
    row = _one(
        ledger,
        "SELECT status, paid, refunded, intent_id FROM orders WHERE order_id = ?",
        (order_id,),
    )
    if row is None:
        return None
    status, paid, refunded, intent_id = row
    return OrderState(status=status, paid=paid, refunded=refunded, intent_id=intent_id)


def intent(ledger: Ledger, intent_id: str | None) -> IntentRow | None:
    """The payment intent with this id, or None."""
    row = _one(
        ledger,
        "SELECT order_id, amount, currency, status FROM payment_intents WHERE intent_id = ?",
        (intent_id,),
    )
    return None if row is None else IntentRow(*row)


def standing(ledger: Ledger, notice: PaymentNotice, before: int | None = None) -> Standing | None:
    """Where the notice's payment stands, in one read; None: its intent is not known here.

    `before`: only events parked ahead of that `ParkedRow.seq` count as ahead of it.
    """
    seq = _seq(ledger)
    sql = (
        "SELECT i.order_id, i.status, o.status, o.paid, o.refunded, o.intent_id, EXISTS ("
        " SELECT 1 FROM parked p WHERE (p.intent_id = i.intent_id OR p.order_id = i.order_id)"
        " AND p.event_id != ?" + ("" if before is None else f" AND p.{seq} < ?") + ")"
        " FROM payment_intents i LEFT JOIN orders o ON o.order_id = i.order_id"
        " WHERE i.intent_id = ?"
    )
    params = (notice.event_id, *(() if before is None else (before,)), notice.intent_id)
    row = _one(ledger, sql, params)
    if row is None:
        return None
    order_id, intent_status, status, paid, refunded, own, ahead = row
    order = None
    if status is not None:
        order = OrderState(status=status, paid=paid, refunded=refunded, intent_id=own)
    return Standing(str(order_id), str(intent_status), order, bool(ahead))


def orders_holding_review(ledger: Ledger) -> list[str]:
    """The ids of the orders held for review."""
    rows = ledger.query("SELECT order_id FROM orders WHERE status = 'needs_review'")
    return [str(r[0]) for r in rows]


# -- webhooks and parked events ----------------------------------------------------------


def webhook_seen(ledger: Ledger, event_id: str) -> tuple[str, str, str | None] | None:
    """A settled event's digest, outcome and order; None if it was never settled."""
    row = _one(
        ledger, "SELECT digest, outcome, order_id FROM webhooks WHERE event_id = ?", (event_id,)
    )
    return None if row is None else (row[0], row[1], row[2])


_decode_notice = msgspec.json.Decoder(PaymentNotice).decode


_PARKED = (
    "SELECT p.event_id, coalesce(w.event_type, ''), p.intent_id,"
    " coalesce(p.order_id, i.order_id), p.notice FROM parked p"
    " LEFT JOIN webhooks w ON w.event_id = p.event_id"
    " LEFT JOIN payment_intents i ON i.intent_id = p.intent_id"
)


def _parked_events(
    ledger: Ledger, where: str, params: tuple[str, ...], by: str
) -> list[ParkedEvent]:
    rows = ledger.query(f"{_PARKED}{where} ORDER BY {by}", params)
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


def parked(ledger: Ledger, order_id: str | None = None) -> list[ParkedEvent]:
    """Parked events (all, or the order's: named by it or on its intents), oldest first."""
    by = f"p.{_seq(ledger)}"
    if order_id is None:
        return _parked_events(ledger, "", (), by)
    return _parked_events(ledger, " WHERE p.order_id = ? OR i.order_id = ?", (order_id,) * 2, by)


def inbox(ledger: Ledger, order_id: str) -> list[ParkedEvent]:
    """The events parked for the order's flow (named by it or on its intent), by event id."""
    where = (
        " WHERE p.order_id = ? OR p.intent_id = (SELECT intent_id FROM orders WHERE order_id = ?)"
    )
    return _parked_events(ledger, where, (order_id,) * 2, "p.event_id")


def parked_on_intent(ledger: Ledger, intent_id: str) -> list[tuple[str, str]]:
    """The events parked on the intent, oldest first: (event id, notice JSON)."""
    rows = ledger.query(
        f"SELECT event_id, notice FROM parked WHERE intent_id = ? ORDER BY {_seq(ledger)}",
        (intent_id,),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def parked_row(ledger: Ledger, event_id: str) -> ParkedRow | None:
    """The parked event with this id (and its delivery's type), or None."""
    row = _one(
        ledger,
        f"SELECT p.{_seq(ledger)}, p.intent_id, p.order_id, p.notice, w.event_type FROM parked p"
        " LEFT JOIN webhooks w ON w.event_id = p.event_id WHERE p.event_id = ?",
        (event_id,),
    )
    return None if row is None else ParkedRow(*row)


def parked_behind(ledger: Ledger, seq: int, intent_id: str) -> list[tuple[str, str, str]]:
    """The events parked after `seq` on the same intent: (event id, notice JSON, type)."""
    column = _seq(ledger)
    rows = ledger.query(
        "SELECT p.event_id, p.notice, coalesce(w.event_type, 'parked') FROM parked p"
        " LEFT JOIN webhooks w ON w.event_id = p.event_id"
        f" WHERE p.intent_id = ? AND p.{column} > ? ORDER BY p.{column}",
        (intent_id, seq),
    )
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def is_parked(ledger: Ledger, event_id: str) -> bool:
    """Whether the event waits parked."""
    return _one(ledger, "SELECT 1 FROM parked WHERE event_id = ?", (event_id,)) is not None


def parked_on_orders_intents(ledger: Ledger, order_id: str) -> list[str]:
    """The ids of the events parked on any of the order's intents, oldest first."""
    rows = ledger.query(
        "SELECT p.event_id FROM parked p JOIN payment_intents i ON p.intent_id = i.intent_id"
        f" WHERE i.order_id = ? ORDER BY p.{_seq(ledger)}",
        (order_id,),
    )
    return [str(r[0]) for r in rows]
