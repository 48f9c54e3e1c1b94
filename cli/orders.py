"""`orderflow order`: start, settle, fail, cancel, show and list orders."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import listing, render
from cli.runtime import CHOOSE_PROVIDER, JsonOption, emit, session, wants_json
from commerce import ORDER_STATUSES, NoPaymentProvider, OrderView, parse_money

app = typer.Typer(help="Start, settle, review and inspect orders.", no_args_is_help=True)
OrderId = Annotated[
    str,
    typer.Argument(
        help="The order's id as `order start` printed it: ord_ and 16 hex digits when "
        "generated, else the text given to --order-id (any non-empty text)."
    ),
]


def check_status(value: str | None) -> str | None:
    """An order status, or a usage error naming the known ones."""
    if value is not None and value not in ORDER_STATUSES:
        known = ", ".join(ORDER_STATUSES)
        raise typer.BadParameter(f"unknown status {value!r} (known: {known})")
    return value


def parse_item(text: str) -> tuple[str, int]:
    """SKU=QTY as (sku, quantity); anything else is a usage error."""
    sku, sep, qty = text.rpartition("=")
    try:
        quantity = int(qty)
    except ValueError:
        quantity = None
    if not sep or not sku or quantity is None:
        shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
        raise typer.BadParameter(f"{shown} is not SKU=QTY (e.g. MUG=2)", param_hint="--item")
    return sku, quantity


@app.command("start")
def start(
    ctx: typer.Context,
    items: Annotated[
        list[str],
        typer.Option(
            "--item", metavar="SKU=QTY", help="SKU=QTY; repeat for more lines.", show_default=False
        ),
    ],
    coupon: Annotated[
        str | None, typer.Option("--coupon", metavar="CODE", help="A coupon code.")
    ] = None,
    order_id: Annotated[
        str | None,
        typer.Option(
            "--order-id",
            help="Choose the id: any non-empty text (default: ord_ and 16 hex digits); "
            "an existing one is shown, not started again.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Quote, reserve stock and create the payment intent; the order then awaits payment.

    Needs a payment provider (root --provider, $ORDERFLOW_PROVIDER, or `config set
    --provider`). Prints what the storefront needs to take the payment: the intent's client
    secret (Stripe.js) or the provider's checkout page, when it gave one.

    Example: orderflow order start --item MUG=2 --item TEE=1 --coupon WELCOME10
    """
    lines = [parse_item(item) for item in items]
    with session(ctx, pays=True) as shop:
        if shop.provider is None:
            raise NoPaymentProvider("no payment provider chosen", CHOOSE_PROVIDER)
        view = shop.start_order(lines, coupon=coupon, order_id=order_id)
    if wants_json(ctx, as_json):
        emit(view)
        return
    o = view.order
    typer.echo(f"order {o.order_id}")
    render.quote(view.quote)
    typer.echo(f"payment intent {o.intent_id or '-'}")
    render.pay_with(view)
    typer.echo(o.status.replace("_", " "))


@app.command("settle")
def settle(
    ctx: typer.Context,
    order_id: OrderId,
    amount: Annotated[
        str | None,
        typer.Option("--amount", help="Amount paid, in the order's currency (default: its total)."),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--event-id", help="The payment's id; repeats are idempotent.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record a payment for an order directly (trusted: no webhook signature).

    Example: orderflow order settle ord_3f2a9c01d4e5b6a7 --amount 25.00
    """
    with session(ctx, pays=True) as shop:
        minor = None
        if amount is not None:
            minor = parse_money(amount, shop.order(order_id).order.currency).amount
        result = shop.settle(order_id, amount=minor, event_id=event_id)
    if wants_json(ctx, as_json):
        emit(result)
        return
    render.settled(result)


@app.command("fail")
def fail(
    ctx: typer.Context,
    order_id: OrderId,
    reason: Annotated[str, typer.Option("--reason", help="Why the attempt failed.")] = "declined",
    event_id: Annotated[str | None, typer.Option("--event-id", help="The attempt's id.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Record a failed payment attempt; the order keeps waiting until it expires.

    Example: orderflow order fail ord_3f2a9c01d4e5b6a7 --reason card_declined
    """
    with session(ctx, pays=True) as shop:
        result = shop.fail_payment(order_id, reason=reason, event_id=event_id)
    if wants_json(ctx, as_json):
        emit(result)
        return
    render.settled(result)


@app.command("cancel")
def cancel(ctx: typer.Context, order_id: OrderId, as_json: JsonOption = False) -> None:
    """Cancel an order still awaiting payment; its stock is released.

    Cancelling a cancelled order again exits 0 and says so.

    Example: orderflow order cancel ord_3f2a9c01d4e5b6a7
    """
    with session(ctx, pays=True) as shop:
        already = shop.order(order_id).order.status == "cancelled"
        view = shop.cancel_order(order_id)
    if wants_json(ctx, as_json):
        emit(view)
        return
    if already:
        typer.echo(f"order {order_id} is already cancelled")
        return
    typer.echo(f"order {order_id} is {view.order.status}; its stock is released")


@app.command("review")
def review(
    ctx: typer.Context,
    order_id: OrderId,
    accept: Annotated[
        bool, typer.Option("--accept", help="Keep the payment and fulfil (stock still held).")
    ] = False,
    refund: Annotated[
        bool, typer.Option("--refund", help="Give the payment back and release the stock.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the timeline).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Decide an order held for review (needs_review): --accept or --refund.

    Example: orderflow order review ord_3f2a9c01d4e5b6a7 --refund --reason "wrong amount"
    """
    if accept == refund:
        raise typer.BadParameter("give exactly one of --accept and --refund")
    with session(ctx, pays=True) as shop:
        view = shop.review(order_id, "accept" if accept else "refund", reason=reason)
    if wants_json(ctx, as_json):
        emit(view)
        return
    o = view.order
    typer.echo(f"order {order_id} is {o.status.replace('_', ' ')}")
    paid, refunded = render.money(o.paid, o.currency), render.money(o.refunded, o.currency)
    typer.echo(f"  paid {paid}, refunded {refunded}")


@app.command("show")
def show(ctx: typer.Context, order_id: OrderId, as_json: JsonOption = False) -> None:
    """Show an order: status, quote and timeline.

    Example: orderflow order show ord_3f2a9c01d4e5b6a7 --json
    """
    with session(ctx, "read") as shop:
        view: OrderView = shop.order(order_id)
    if wants_json(ctx, as_json):
        emit(view)
        return
    render.order(view)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only this status, e.g. awaiting_payment, needs_review or fulfilled.",
            callback=check_status,
        ),
    ] = None,
    since: listing.Since = None,
    limit: listing.Limit = None,
    as_json: JsonOption = False,
) -> None:
    """List orders, oldest first (--since: placed from then on).

    Example: orderflow order list --status awaiting_payment --since 2025-01-31 --limit 20
    """
    start = listing.since(since)
    with session(ctx, "read") as shop:
        rows = shop.orders(status, since=start, limit=limit)
    if wants_json(ctx, as_json):
        emit(rows)
        return
    render.orders(rows)
