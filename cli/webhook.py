"""`orderflow webhook`: deliver a signed provider event, sign one, or build one for an order."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.runtime import JsonOption, emit, fail, guarded, read_input, session, wants_json
from commerce import MAX_BODY, BodyTooLarge, FakeProvider, PaymentIntent, sign

SECRET_ENV = "ORDERFLOW_WEBHOOK_SECRET"
app = typer.Typer(
    help=(
        "Provider webhooks (Stripe-shaped): deliver a signed event, sign a body, or build "
        f"an event for an order. The secret comes from --secret or ${SECRET_ENV}."
    ),
    no_args_is_help=True,
)
Source = Annotated[
    str, typer.Argument(metavar="FILE", help="The raw event body: a file, or - for stdin.")
]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret", envvar=SECRET_ENV, help="The webhook signing secret.", show_default=False
    ),
]
KINDS = {
    "succeeded": "payment_intent.succeeded",
    "failed": "payment_intent.payment_failed",
    "refunded": "charge.refunded",
}


class Kind(StrEnum):
    """The event kinds `webhook event` builds."""

    succeeded = "succeeded"
    failed = "failed"
    refunded = "refunded"


def _secret(secret: str | None) -> str:
    if not secret:
        raise typer.BadParameter(f"give --secret or set ${SECRET_ENV}", param_hint="--secret")
    return secret


def read_delivery(source: str) -> bytes:
    """FILE's bytes, or stdin's for "-", never reading past `MAX_BODY` + 1 (`BodyTooLarge`)."""
    if source == "-":
        body = sys.stdin.buffer.read(MAX_BODY + 1)
    else:
        try:
            with Path(source).open("rb") as file:
                body = file.read(MAX_BODY + 1)
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {source}: {exc.strerror}", param_hint="FILE"
            ) from exc
    if len(body) > MAX_BODY:
        raise BodyTooLarge(len(body), MAX_BODY, at_least=True)
    return body


@app.command("deliver")
def deliver(
    ctx: typer.Context,
    source: Source,
    signature: Annotated[
        str,
        typer.Option(
            "--signature", metavar="HEADER", help="The Stripe-Signature header, verbatim."
        ),
    ],
    secret: Secret = None,
    tolerance: Annotated[
        int,
        typer.Option(
            "--tolerance", min=0, metavar="SECONDS", help="Seconds a signature stays valid."
        ),
    ] = 300,
    as_json: JsonOption = False,
) -> None:
    """Verify and settle one webhook delivery, exactly as a web handler would.

    Every answer exits 0, including "already settled" and "ignored"; a bad signature or
    a malformed event exits 1. At most the body cap plus one byte is read.

    Example: orderflow webhook deliver evt.json --signature "$(orderflow webhook sign evt.json)"
    """
    key = _secret(secret)
    with guarded(ctx):
        body = read_delivery(source)
    with session(ctx, pays=True) as shop:
        result = shop.settle_webhook(body, signature, secret=key, tolerance=tolerance)
    if wants_json(ctx, as_json):
        emit(result)
        return
    render.settled(result)


@app.command("sign")
def sign_(
    ctx: typer.Context,
    source: Source,
    secret: Secret = None,
    timestamp: Annotated[
        int | None,
        typer.Option(
            "--timestamp", min=0, metavar="SECONDS", help="Unix seconds to sign at (default: now)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a valid Stripe-Signature header for a body (for testing handlers).

    Example: orderflow webhook sign evt.json --secret whsec_test
    """
    key = _secret(secret)
    body = read_input(source)
    stamp = int(time.time()) if timestamp is None else timestamp
    header = sign(body, key, stamp)
    if wants_json(ctx, as_json):
        emit({"header": header, "timestamp": stamp})
        return
    typer.echo(header)


@app.command("event")
def event(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="The order the event is about.")],
    kind: Annotated[
        Kind, typer.Option("--kind", metavar="[succeeded|failed|refunded]", help="Which event.")
    ] = Kind.succeeded,
    event_id: Annotated[
        str | None, typer.Option("--event-id", help="The event id (default: derived).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a Stripe-shaped event body for an order (the fake provider's), to sign and deliver.

    Example: orderflow webhook event ord_3f2a9c01d4e5b6a7 --kind failed > evt.json
    """
    with session(ctx, "read") as shop:
        row = shop.order(order_id).order
        livemode = shop.config.livemode
    if row.intent_id is None:
        fail(f"order {order_id!r} has no payment intent")
    intent = PaymentIntent(
        intent_id=row.intent_id,
        order_id=row.order_id,
        amount=row.total,
        currency=row.currency,
        livemode=livemode,
    )
    created = int(time.time())
    body = FakeProvider.event_for(
        intent,
        KINDS[kind.value],
        event_id=event_id or f"evt_{kind.value}_{row.intent_id}",
        created=created,
    )
    del as_json  # the body is JSON either way
    typer.echo(body.decode())
