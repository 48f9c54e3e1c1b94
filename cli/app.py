"""The `orderflow` command: the root options and the command groups."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from cli import catalog, config_cmd, demo, flows, ledger_cmd, orders, reconcile, timers, webhook
from cli.command import RootGroup
from cli.runtime import (
    DEFAULT_DB,
    DOMAIN_ERRORS,
    JsonOption,
    State,
    emit,
    fail,
    state,
    wants_json,
)
from cli.serve import serve_command, worker_command
from cli.user_flows import FLOWS_ENV
from commerce import PROVIDER_NAMES

app = typer.Typer(
    name="orderflow",
    help=(
        "Run orders as durable, replayable flows over an append-only SQLite ledger.\n\n"
        "Exit codes: 0 success (including idempotent repeats such as 'already settled'), "
        "1 the domain refused (unknown order, out of stock, bad signature...), 2 usage error."
    ),
    no_args_is_help=True,
    cls=RootGroup,
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
app.command("reconcile")(reconcile.reconcile_command)
app.command("serve")(serve_command)
app.command("worker")(worker_command)


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"orderflow {version('orderflow')}")
        raise typer.Exit()


def _check_provider(value: str | None) -> str | None:
    if value is not None and value not in PROVIDER_NAMES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(PROVIDER_NAMES)}")
    return value


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        Path,
        typer.Option(
            "--db",
            envvar="ORDERFLOW_DB",
            metavar="PATH",
            show_default=False,
            help="The ledger file (created on first use). Else $ORDERFLOW_DB, else ./orderflow.db.",
        ),
    ] = Path(DEFAULT_DB),
    flow_modules: Annotated[
        list[str] | None,
        typer.Option(
            "--flows",
            envvar=FLOWS_ENV,
            metavar="MODULE",
            show_default=False,
            help="Import your flows from MODULE (dotted name, or a .py file); repeatable. "
            f"Else ${FLOWS_ENV} (space-separated). Installed `orderflow.flows` entry points "
            "are always imported.",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            envvar="ORDERFLOW_PROVIDER",
            metavar="NAME",
            show_default=False,
            callback=_check_provider,
            help="The payment provider new orders go through: fake, stripe or sumup (keys from "
            "the environment). Else $ORDERFLOW_PROVIDER, else the one `config set --provider` "
            "recorded.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON output for every command (same as each --json).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a refused command.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options; the database is opened lazily by each command."""
    ctx.obj = State(
        db=db, debug=debug, json=as_json, flows=tuple(flow_modules or ()), provider=provider
    )


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            metavar="PATH",
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
    --db (or $ORDERFLOW_DB) is not used, and says so: the demo never touches an existing
    database.

    Example: orderflow demo --db /tmp/story.db
    """
    _ignored_db(ctx)
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


def _ignored_db(ctx: typer.Context) -> None:
    """A note on stderr when the root --db (or $ORDERFLOW_DB) was given: the demo ignores it."""
    source = ctx.find_root().get_parameter_source("db")
    given = {"COMMANDLINE": "--db", "ENVIRONMENT": "$ORDERFLOW_DB"}.get(getattr(source, "name", ""))
    if given:
        typer.echo(
            f"note: the demo ignores {given} {state(ctx).db}: it writes new files only "
            "(choose them with `orderflow demo --db PATH`)",
            err=True,
        )


def main() -> None:
    """Entry point of the `orderflow` console script."""
    app()
