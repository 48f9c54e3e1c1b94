"""Text for people: aligned tables, money with its currency, short timelines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from commerce import (
    Money,
    OrderRow,
    OrderView,
    ProductRow,
    Quote,
    SettleResult,
    format_money,
)

_SKIP = {
    "currency",
    "body",
    "placed_at",
    "digest",
    "tax_rate_bp",
    "coupon_code",
    "intent_id",
    "client_secret",  # shown once, above the timeline, while the order can be paid
    "checkout_url",
}
_MONEY_KEYS = ("amount", "amount_refunded", "amount_received", "unit_price", "total", "paid")


def money(amount: int, currency: str) -> str:
    """ "25.00 EUR"."""
    return format_money(Money(amount, currency))


def when(value: datetime | str | None) -> str:
    """An instant to the second, or "-"."""
    if value is None:
        return "-"
    text = value.isoformat() if isinstance(value, datetime) else value
    return text[:19].replace("T", " ") + ("Z" if text.endswith(("Z", "+00:00")) else "")


def age(at: str, now: datetime | None = None) -> str:
    """How long ago the ISO instant `at` was, in its largest whole unit ("3 days")."""
    then = datetime.fromisoformat(at)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print an aligned table (numbers right-aligned), or "(none)" when empty."""
    cells = [[str(c) for c in row] for row in rows]
    if not cells:
        typer.echo("(none)")
        return
    widths = [max(len(r[i]) for r in [list(headers), *cells]) for i in range(len(headers))]
    numeric = [all(_numeric(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    typer.echo(line(list(headers)))
    for row in cells:
        typer.echo(line(row))


def _numeric(text: str) -> bool:
    head = text.split(" ")[0].lstrip("-")
    return head.replace(".", "", 1).isdigit()


def products(rows: list[ProductRow]) -> None:
    """The catalog with its stock."""
    table(
        ["SKU", "NAME", "PRICE", "AVAILABLE", "RESERVED", "SOLD"],
        [
            (p.sku, p.name, money(p.unit_price, p.currency), p.available, p.reserved, p.sold)
            for p in rows
        ],
    )


def orders(rows: list[OrderRow]) -> None:
    """Orders, one a line."""
    table(
        ["ORDER", "STATUS", "TOTAL", "PAID", "REFUNDED", "PLACED"],
        [
            (
                o.order_id,
                o.status,
                o.total_text,
                money(o.paid, o.currency),
                money(o.refunded, o.currency),
                when(o.placed_at),
            )
            for o in rows
        ],
    )


def quote(q: Quote, indent: str = "  ") -> None:
    """The quote's lines and totals."""
    for line in q.lines:
        typer.echo(
            f"{indent}{line.sku:<12} {line.quantity:>3} x {money(line.unit_price, q.currency):>12}"
            f"  {money(line.line_total, q.currency):>12}"
        )
    rows = [("subtotal", q.subtotal)]
    if q.discount:
        rows.append((f"discount ({q.coupon_code})", -q.discount))
    if q.tax:
        rows.append((f"tax ({q.tax_rate_bp / 100:g}%)", q.tax))
    rows.append(("total", q.total))
    for label, amount in rows:
        typer.echo(f"{indent}{label:<33}{money(amount, q.currency):>12}")


def order(view: OrderView) -> None:
    """Status, quote and timeline of one order."""
    o = view.order
    typer.echo(f"order {o.order_id}: {o.status.replace('_', ' ')}")
    typer.echo(f"  placed {when(o.placed_at)}, payment intent {o.intent_id or '-'}")
    typer.echo(f"  paid {money(o.paid, o.currency)}, refunded {money(o.refunded, o.currency)}")
    if o.status == "awaiting_payment":
        pay_with(view, indent="  ")
    quote(view.quote)
    timeline(view)


def pay_with(view: OrderView, indent: str = "") -> None:
    """What the storefront needs to take the payment, when the provider gave it."""
    if view.client_secret:
        typer.echo(f"{indent}client secret {view.client_secret}")
    if view.checkout_url:
        typer.echo(f"{indent}checkout {view.checkout_url}")


def timeline(view: OrderView, indent: str = "  ") -> None:
    """One line per event of the order."""
    typer.echo(f"{indent}timeline:")
    for entry in view.timeline:
        detail = summary(entry.detail, view.order.currency)
        line = f"{indent}  {entry.position:>5}  {when(entry.at)}  {entry.event:<22} {detail}"
        typer.echo(line.rstrip())


def summary(detail: dict[str, Any], currency: str) -> str:
    """A short `key=value` rendering of an event's fields, money shown with its currency."""
    currency = str(detail.get("currency") or currency)
    parts: list[str] = []
    for key, value in detail.items():
        if key in _SKIP or value in (None, "", [], {}):
            continue
        parts.append(_field(key, value, currency))
    text = " ".join(parts)
    return text if len(text) <= 100 else text[:97] + "..."


def _field(key: str, value: Any, currency: str) -> str:
    if key == "quote" and isinstance(value, dict):
        return f"total={money(value['total'], value['currency'])}"
    if key == "lines" and isinstance(value, list | tuple):
        return "lines=" + ",".join(f"{x['sku']}x{x['quantity']}" for x in value)
    if isinstance(value, dict):
        inner = summary(value, currency)
        return f"{key}=({inner})"
    if key in _MONEY_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return f"{key}={money(value, currency)}"
    return f"{key}={value}"


def settled(result: SettleResult) -> None:
    """What a delivery or direct settle did, in one or two lines."""
    outcome = result.outcome.replace("_", " ")
    typer.echo(f"{outcome}: {result.reason}")
    if result.order_id:
        status = (result.order_status or "unknown").replace("_", " ")
        typer.echo(f"order {result.order_id} is {status} (event {result.event_id})")
    else:
        typer.echo(f"event {result.event_id}")
