"""The `orderflow` command: the root options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import catalog, config_cmd, demo, flows, ledger_cmd, orders, timers, webhook
from cli.runtime import DEFAULT_DB, DOMAIN_ERRORS, JsonOption, State, emit, fail, wants_json

app = typer.Typer(
    name="orderflow",
    help=(
        "Run orders as durable, replayable flows over an append-only SQLite ledger.\n\n"
        "Exit codes: 0 success (including idempotent repeats such as 'already settled'), "
        "1 the domain refused (unknown order, out of stock, bad signature...), 2 usage error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(catalog.app, name="catalog")
app.add_typer(orders.app, name="order")
app.add_typer(webhook.app, name="webhook")
app.add_typer(timers.app, name="timers")
app.add_typer(flows.app, name="flows")
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(config_cmd.app, name="config")


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        Path,
        typer.Option(
            "--db",
            envvar="ORDERFLOW_DB",
            help="The ledger file (created on first use). Else $ORDERFLOW_DB, else ./orderflow.db.",
        ),
    ] = Path(DEFAULT_DB),
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON output for every command (same as each --json).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a refused command.")
    ] = False,
) -> None:
    """Global options; the database is opened lazily by each command."""
    ctx.obj = State(db=db, debug=debug, json=as_json)


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="A new file for the demo shop (default: orderflow-demo-<timestamp>.db here). "
            "An existing file is refused.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The whole story in one run, on new database files (named in the output).

    Three orders; one paid by a signed webhook delivered twice; one with a declined
    attempt that expires on a simulated clock; the survivor exported, imported into a
    second file and paid there; timelines; `ledger verify` on both files. The root
    --db is not used: the demo never touches an existing database.
    """
    story = demo.Story(wants_json(ctx, as_json))
    try:
        ok = demo.run(db, story)
    except FileExistsError as exc:
        fail(f"{exc.args[0]} exists; the demo only writes new files (choose another --db)")
    except DOMAIN_ERRORS as exc:
        if ctx.find_root().obj and ctx.find_root().obj.debug:
            raise
        fail(str(exc))
    if story.as_json:
        emit(story.doc)
    if not ok:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the `orderflow` console script."""
    app()
