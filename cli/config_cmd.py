"""`orderflow config`: the shop's settings, recorded in the ledger for every process."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from cli.clickcompat import UsageError
from cli.runtime import JsonOption, emit, session, state, wants_json
from commerce import (
    MAX_PAYMENT_TIMEOUT,
    MAX_REVIEW_TIMEOUT,
    MAX_TAX_RATE_BP,
    MIN_PAYMENT_TIMEOUT,
    PROVIDER_NAMES,
    ShopConfig,
)

NO_PROVIDER = "none"


def _provider_setting(value: str | None) -> str | None:
    if value is not None and value not in (*PROVIDER_NAMES, NO_PROVIDER):
        known = ", ".join((*PROVIDER_NAMES, NO_PROVIDER))
        raise typer.BadParameter(f"{value!r} is not one of {known}")
    return value


app = typer.Typer(
    help="The shop's settings (test or live mode, tax, payment and review timeouts, payment "
    "provider), kept in the ledger.",
    no_args_is_help=True,
)


def _show(ctx: typer.Context, config: ShopConfig, as_json: bool, changed: bool | None) -> None:
    if wants_json(ctx, as_json):
        emit({"config": config} if changed is None else {"config": config, "changed": changed})
        return
    if changed is not None:
        typer.echo("settings recorded" if changed else "settings unchanged (already in force)")
    typer.echo(f"mode             {'live' if config.livemode else 'test'}")
    typer.echo(
        f"tax rate         {config.tax_rate_bp / 100:g}% ({config.tax_rate_bp} bp, exclusive)"
    )
    typer.echo(f"payment timeout  {config.payment_timeout_seconds} s")
    typer.echo(f"review timeout   {config.review_timeout_seconds} s (then held payments refund)")
    typer.echo(f"provider         {config.provider or 'none (orders need --provider)'}")
    given = state(ctx).provider
    if given and given != config.provider:
        typer.echo(f"                 (--provider or $ORDERFLOW_PROVIDER chooses {given} here)")


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the settings in force (the defaults until `config set` records some).

    Example: orderflow config show --json
    """
    with session(ctx, "read") as shop:
        _show(ctx, shop.config, as_json, None)


@app.command("set")
def set_(
    ctx: typer.Context,
    tax_rate_bp: Annotated[
        int | None,
        typer.Option(
            "--tax-rate-bp",
            metavar="BP",
            help=f"Exclusive tax in basis points, 0..{MAX_TAX_RATE_BP} (2000 = 20%).",
        ),
    ] = None,
    payment_timeout: Annotated[
        int | None,
        typer.Option(
            "--payment-timeout",
            metavar="SECONDS",
            help="Seconds an order may wait for payment, "
            f"{MIN_PAYMENT_TIMEOUT}..{MAX_PAYMENT_TIMEOUT} (30 days).",
        ),
    ] = None,
    review_timeout: Annotated[
        int | None,
        typer.Option(
            "--review-timeout",
            help="Seconds a payment may stay held for review before it is refunded, "
            f"{MIN_PAYMENT_TIMEOUT}..{MAX_REVIEW_TIMEOUT} (180 days).",
        ),
    ] = None,
    live: Annotated[
        bool | None,
        typer.Option("--live/--test", help="Accept live-mode or test-mode provider events."),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="NAME",
            callback=_provider_setting,
            help="The payment provider new orders go through when the command line names "
            f"none: {', '.join(PROVIDER_NAMES)}, or {NO_PROVIDER} to clear it. Its keys stay "
            "in the environment (never recorded).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record new settings; options left out keep their current value.

    They apply to orders started from now on (a quote is recorded with its order) and to
    every process that opens the database afterwards.

    Example: orderflow config set --tax-rate-bp 2000 --payment-timeout 900 --provider stripe
    """
    given = (tax_rate_bp, payment_timeout, review_timeout, live, provider)
    if all(value is None for value in given):
        raise UsageError(
            "give at least one of --tax-rate-bp, --payment-timeout, --review-timeout, "
            "--live/--test, --provider"
        )
    with session(ctx) as shop:
        changes: dict[str, object] = {}
        if tax_rate_bp is not None:
            changes["tax_rate_bp"] = tax_rate_bp
        if payment_timeout is not None:
            changes["payment_timeout_seconds"] = payment_timeout
        if review_timeout is not None:
            changes["review_timeout_seconds"] = review_timeout
        if live is not None:
            changes["livemode"] = live
        if provider is not None:
            changes["provider"] = None if provider == NO_PROVIDER else provider
        config = msgspec.structs.replace(shop.config, **changes)
        changed = shop.configure(config)
        _show(ctx, config, as_json, changed)
