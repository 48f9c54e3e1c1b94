"""`orderflow timers`: fire due payment timeouts, retries and expired call leases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli import render
from cli.runtime import JsonOption, emit, fail, parse_instant, session, wants_json, working
from flowlib import Fired

app = typer.Typer(help="Durable timers: payment timeouts and retries.", no_args_is_help=True)


@app.command("run")
def run(
    ctx: typer.Context,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="INSTANT",
            help="Fire as if it were this ISO-8601 instant (default: now).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fire every timer due now (or at --now): expire unpaid orders, retry provider calls.

    Exits 1 if any due flow could not be advanced (its error is in the table), so cron
    and a supervisor notice; the others were advanced all the same.

    Example: orderflow timers run --now 2030-01-31T12:00:00Z
    """
    instant = parse_instant(now) or datetime.now(UTC)
    with session(ctx, pays=True) as shop, working("firing due timers"):
        fired = shop.fire_timers(instant)
    if wants_json(ctx, as_json):
        emit({"now": instant, "fired": fired})
    else:
        _print(fired, instant)
    stuck = [f.flow_id for f in fired if f.error]
    if stuck:
        fail(f"{len(stuck)} flow(s) could not be advanced: {', '.join(stuck)}", kind="NotAdvanced")


def _print(fired: list[Fired], instant: datetime) -> None:
    typer.echo(f"fired {len(fired)} timer(s) due at {render.when(instant)}")
    if fired:
        render.table(
            ["FLOW", "MODE", "STATUS", "ERROR"],
            [(f.flow_id, f.mode, f.status, f.error or "-") for f in fired],
        )
