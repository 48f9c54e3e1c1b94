"""`orderflow reconcile`: ask the provider about orders awaiting payment; settle what it says."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

from cli import render
from cli.runtime import JsonOption, emit, fail, session, wants_json, working
from commerce import Reconciled

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `3d` or a combination (`1h30m`); a usage error otherwise."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 30m, 2h or 1d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


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
    as_json: JsonOption = False,
) -> None:
    """Ask the provider about every order still awaiting payment; settle what it reports.

    The safety net for lost webhooks: a payment the provider reports as succeeded is
    settled (and a cancelled intent closes its order) through the same idempotent path as
    a webhook, so a later webhook for it is "already settled". Exits 1 if the provider
    could not be asked about some order (its error is in the table). Each intent is asked
    of the provider that took it: the chosen one, or any whose keys are in the
    environment (e.g. $STRIPE_API_KEY).

    Example: orderflow --provider stripe reconcile --older-than 1h
    """
    age = parse_duration(older_than)
    with session(ctx, pays=True) as shop, working("reconciling"):
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
