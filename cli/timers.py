"""`orderflow timers`: fire due payment timeouts, retries and expired call leases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli import render
from cli.runtime import JsonOption, emit, parse_instant, session, wants_json, working

app = typer.Typer(help="Durable timers: payment timeouts and retries.", no_args_is_help=True)


@app.command("run")
def run(
    ctx: typer.Context,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Fire as if it were this ISO-8601 instant (default: now)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fire every timer due now (or at --now): expire unpaid orders, retry provider calls."""
    instant = parse_instant(now) or datetime.now(UTC)
    with session(ctx) as shop, working("firing due timers"):
        fired = shop.fire_timers(instant)
    if wants_json(ctx, as_json):
        emit({"now": instant, "fired": fired})
        return
    typer.echo(f"fired {len(fired)} timer(s) due at {render.when(instant)}")
    if fired:
        render.table(
            ["FLOW", "MODE", "STATUS", "ERROR"],
            [(f.flow_id, f.mode, f.status, f.error or "-") for f in fired],
        )
