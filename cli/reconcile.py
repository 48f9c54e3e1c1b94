"""`orderflow reconcile`: ask the provider about orders awaiting payment; settle what it says."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Literal

import typer

from cli import render
from cli.runtime import JsonOption, emit, fail, session, wants_json, working
from commerce import FakeProvider, PaymentProvider, Reconciled, StripeProvider

ProviderName = Literal["fake", "stripe"]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `3d` or a combination (`1h30m`); a usage error otherwise."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 30m, 2h or 1d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def chosen_provider(name: ProviderName) -> PaymentProvider:
    """The provider named on the command line; Stripe's key from `STRIPE_API_KEY`.

    `STRIPE_API_BASE` points the client at another address (a test stand-in).
    """
    if name == "fake":
        return FakeProvider()
    key = os.environ.get("STRIPE_API_KEY", "")
    if not key:
        fail("--provider stripe needs STRIPE_API_KEY in the environment", kind="MissingKey")
    return StripeProvider(key, base_url=os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"))


def reconcile_command(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only orders placed at least this long ago (90s, 30m, 2h, 1d).",
        ),
    ] = "0s",
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            envvar="ORDERFLOW_PROVIDER",
            help="The payment provider to ask: fake or stripe (key from $STRIPE_API_KEY).",
        ),
    ] = "fake",
    as_json: JsonOption = False,
) -> None:
    """Ask the provider about every order still awaiting payment; settle what it reports.

    The safety net for lost webhooks: a payment the provider reports as succeeded is
    settled (and a cancelled intent closes its order) through the same idempotent path as
    a webhook, so a later webhook for it is "already settled". Exits 1 if the provider
    could not be asked about some order (its error is in the table). With --provider
    stripe, the key comes from $STRIPE_API_KEY.

    Example: orderflow reconcile --provider stripe --older-than 1h
    """
    if provider not in ("fake", "stripe"):
        raise typer.BadParameter("must be fake or stripe", param_hint="--provider")
    age = parse_duration(older_than)
    chosen = chosen_provider("stripe" if provider == "stripe" else "fake")
    with session(ctx) as shop, working("reconciling"):
        shop.use_provider(chosen)
        done = shop.reconcile(older_than=age)
    if wants_json(ctx, as_json):
        emit({"older_than_seconds": int(age.total_seconds()), "orders": done})
    else:
        _print(done)
    errors = [r.order_id for r in done if r.outcome == "error"]
    if errors:
        fail(
            f"{len(errors)} order(s) could not be reconciled: {', '.join(errors)}",
            kind="NotReconciled",
        )


def _print(done: list[Reconciled]) -> None:
    typer.echo(f"reconciled {len(done)} order(s) awaiting payment")
    if done:
        render.table(
            ["ORDER", "INTENT", "PROVIDER SAYS", "OUTCOME", "REASON"],
            [
                (r.order_id, r.intent_id, r.provider_status or "-", r.outcome, r.reason)
                for r in done
            ],
        )
