"""The `orderflow` command: the root options and the command groups."""

from __future__ import annotations

from importlib.metadata import version
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
from cli.target import database, is_dsn
from cli.user_flows import FLOWS_ENV
from commerce import PROVIDER_NAMES

app = typer.Typer(
    name="orderflow",
    help=(
        "Run orders as durable, replayable flows over an append-only ledger "
        "(a SQLite file, or PostgreSQL).\n\n"
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
        str,
        typer.Option(
            "--db",
            envvar="ORDERFLOW_DB",
            metavar="PATH|DSN",
            show_default=False,
            help="The ledger: a file (created on first use), or a postgresql:// DSN. "
            "Else $ORDERFLOW_DB, else ./orderflow.db.",
        ),
    ] = DEFAULT_DB,
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
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|DSN",
            help="A new file for the demo shop (default: orderflow-demo-<timestamp>.db here; "
            "an existing file is refused), or a postgresql:// DSN: new schemas in its "
            "database. Else the root --db when it is a DSN.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The whole story in one run, on new ledgers (named in the output).

    Three orders; one paid by a signed webhook delivered twice; one with a declined
    attempt that expires on a simulated clock; the survivor exported, imported into a
    second ledger and paid there; timelines; `ledger verify` on both. On a PostgreSQL
    DSN (this --db, or the root --db / $ORDERFLOW_DB) the ledgers are two new schemas in
    its database; a root file path is not used, and it says so: the demo never touches
    an existing ledger.

    Example: orderflow demo --db /tmp/story.db
    """
    db = _root_dsn(ctx, db) or db
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


def _root_dsn(ctx: typer.Context, own: str | None) -> str | None:
    """The root --db (or $ORDERFLOW_DB) if it is a DSN and the demo has no --db of its own.

    The demo then makes new schemas there. A root --db it does not use (a file path, or
    one its own --db overrides) gets a note on stderr: the demo writes new ledgers only.
    """
    source = ctx.find_root().get_parameter_source("db")
    given = {"COMMANDLINE": "--db", "ENVIRONMENT": "$ORDERFLOW_DB"}.get(getattr(source, "name", ""))
    root = state(ctx).db
    if not given:
        return None
    if is_dsn(root) and own is None:
        return root
    shown, why = (database(root), f"its own --db {own} wins") if is_dsn(root) else (root, "")
    typer.echo(
        f"note: the demo ignores {given} {shown}: "
        + (why or "it writes new files only (choose them with `orderflow demo --db PATH`)"),
        err=True,
    )
    return None


def main() -> None:
    """Entry point of the `orderflow` console script."""
    app()
