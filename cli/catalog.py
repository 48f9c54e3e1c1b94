"""`orderflow catalog`: products, prices, stock and coupons."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.clickcompat import UsageError
from cli.runtime import JsonOption, emit, fail, guarded, session, wants_json
from commerce import Coupon, CouponRejected, parse_money

app = typer.Typer(help="Products, prices and stock.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    sku: Annotated[str, typer.Argument(help="The product's SKU, e.g. MUG.")],
    name: Annotated[str, typer.Option("--name", help="What people see.")],
    price: Annotated[str, typer.Option("--price", help="Unit price as decimal text: 12.50.")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code.")] = "EUR",
    stock: Annotated[int, typer.Option("--stock", help="Units available now.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Add a product to the catalog, with its price and opening stock.

    Example: orderflow catalog add MUG --name "Enamel mug" --price 12.50 --stock 10
    """
    with session(ctx) as shop:
        row = shop.add_product(sku, name, parse_money(price, currency), stock=stock)
    if wants_json(ctx, as_json):
        emit(row)
        return
    typer.echo(
        f"added {row.sku} ({row.name}) at {render.money(row.unit_price, row.currency)}, "
        f"{row.available} available"
    )


@app.command("restock")
def restock(
    ctx: typer.Context,
    sku: Annotated[str, typer.Argument(help="The product's SKU.")],
    quantity: Annotated[int, typer.Argument(help="Units to add (>= 1).")],
    as_json: JsonOption = False,
) -> None:
    """Add units of a product to its available stock.

    Example: orderflow catalog restock MUG 5
    """
    with session(ctx) as shop:
        row = shop.restock(sku, quantity)
    if wants_json(ctx, as_json):
        emit(row)
        return
    typer.echo(f"restocked {row.sku}: {row.available} available, {row.reserved} reserved")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every product with its price and stock (available, reserved, sold).

    Example: orderflow catalog list --json
    """
    with session(ctx, "read") as shop:
        rows = shop.products()
    if wants_json(ctx, as_json):
        emit(rows)
        return
    render.products(rows)


@app.command("coupon")
def coupon(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The code customers type, e.g. WELCOME10.")],
    percent_off: Annotated[
        str | None,
        typer.Option(
            "--percent-off", metavar="PERCENT", help="Percent off the subtotal: 10 or 12.5."
        ),
    ] = None,
    amount_off: Annotated[
        str | None,
        typer.Option(
            "--amount-off", metavar="AMOUNT", help="A fixed amount off: 5.00 (needs --currency)."
        ),
    ] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="ISO 4217 code.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add (or replace) a coupon: a percentage or a fixed amount off.

    Example: orderflow catalog coupon WELCOME10 --percent-off 10
    """
    if (percent_off is None) == (amount_off is None):
        raise UsageError("give one of --percent-off and --amount-off")
    if amount_off is not None and currency is None:
        raise typer.BadParameter("a fixed amount needs --currency", param_hint="--amount-off")
    with guarded(ctx):
        made = _coupon(code, _basis_points(percent_off), amount_off, currency)
    with session(ctx) as shop:
        shop.add_coupon(made)
    if wants_json(ctx, as_json):
        emit(made)
        return
    off = f"{percent_off}%" if percent_off is not None else f"{amount_off} {currency}"
    typer.echo(f"coupon {code}: {off} off")


_OPTIONS = {"percent_off_bp": "--percent-off", "amount_off": "--amount-off"}


def _coupon(code: str, percent_bp: int | None, amount: str | None, currency: str | None) -> Coupon:
    """The coupon; a refusal names the options typed, not the library's fields."""
    minor = None if amount is None else parse_money(amount, currency or "EUR").amount
    try:
        return Coupon(code=code, percent_off_bp=percent_bp, amount_off=minor, currency=currency)
    except CouponRejected as exc:
        reason = exc.reason
        for field, option in _OPTIONS.items():
            reason = reason.replace(field, option)
        fail(f"coupon {code!r} rejected: {reason}", kind=type(exc).__name__)


def _basis_points(percent: str | None) -> int | None:
    if percent is None:
        return None
    # Percent has two decimals at most: read it as money-like exact text, never a float.
    whole, _, frac = percent.strip().partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise typer.BadParameter(
            f"{percent!r} is not a percentage like 10 or 12.5", param_hint="--percent-off"
        )
    try:
        points = int(whole) * 100 + int(frac.ljust(2, "0") or 0)
    except ValueError as exc:  # more digits than int() reads (4300): as click says for ints
        raise typer.BadParameter(
            f"{percent[:20]!r}... ({len(percent)} characters) is not a percentage",
            param_hint="--percent-off",
        ) from exc
    if not 0 < points <= 100 * 100:
        fail(
            f"--percent-off must be more than 0 and at most 100, not {percent}",
            kind="InvalidCoupon",
        )
    return points
