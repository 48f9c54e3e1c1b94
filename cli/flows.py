"""`orderflow flows`: list, show, explain, export, import and check flow instances."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from cli import inspect_flow, listing, render
from cli.runtime import (
    JsonOption,
    emit,
    fail,
    progress,
    read_input,
    session,
    wants_json,
    working,
)
from flowlib import FINISHED, Divergence

app = typer.Typer(
    help="Flow instances: list, show, explain, move between databases, check replay.",
    no_args_is_help=True,
)
FlowId = Annotated[str, typer.Argument(help="The flow's id (an order's flow has the order's id).")]
FLOW_STATUSES = ("running", "waiting", "completed", "failed", "cancelled", "stuck", "moved")


def _check_status(value: str | None) -> str | None:
    if value is not None and value not in FLOW_STATUSES:
        raise typer.BadParameter(f"unknown status {value!r} (known: {', '.join(FLOW_STATUSES)})")
    return value


Status = Annotated[
    str | None,
    typer.Option(
        "--status",
        help="Only this status: running, waiting, completed, failed, cancelled, stuck or moved.",
        callback=_check_status,
    ),
]


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Status = None,
    since: listing.Since = None,
    limit: listing.Limit = None,
    as_json: JsonOption = False,
) -> None:
    """List flow instances with what they wait for and their next timer, oldest first.

    --since keeps the flows started from then on.

    Example: orderflow flows list --status waiting --limit 20
    """
    start = listing.since(since)
    with session(ctx, "read") as shop:
        after = listing.position_before(shop.ledger, start) if start else None
        rows = shop.ledger.flows(
            status=status, started_after=after, limit=limit, newest=limit is not None
        )
    if wants_json(ctx, as_json):
        emit(rows)
        return
    render.table(
        ["FLOW", "NAME", "STATUS", "WAITS FOR", "DUE"],
        [
            (
                r.flow_id,
                f"{r.name} v{r.version}",
                r.status,
                " | ".join(r.awaits) or "-",
                render.when(r.due),
            )
            for r in rows
        ],
    )


class LoggedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a flow's log with when it was recorded."""

    version: int
    recorded_at: str
    event: Any


@app.command("show")
def show(ctx: typer.Context, flow_id: FlowId, as_json: JsonOption = False) -> None:
    """Show a flow's state and its replay log, step by step.

    Example: orderflow flows show ord_3f2a9c01d4e5b6a7
    """
    with session(ctx, "read") as shop:
        state = shop.engine.status(flow_id)
        log = shop.engine.log(flow_id)
        times = inspect_flow.recorded_times(shop, flow_id)
    entries = [
        LoggedEvent(version=i, recorded_at=at, event=event)
        for i, (event, at) in enumerate(zip(log, times, strict=False), start=1)
    ]
    if wants_json(ctx, as_json):
        emit({"state": state, "log": entries})
        return
    typer.echo(f"flow {state.flow_id} ({state.name} v{state.version}): {state.status}")
    if state.awaits:
        typer.echo(f"  waits for {' | '.join(state.awaits)}, next timer {render.when(state.due)}")
    for entry in entries:
        typer.echo(
            f"  {entry.version:>4}  {render.when(entry.recorded_at)}  {_describe(entry.event)}"
        )


def _describe(event: Any) -> str:
    kind = type(event).__name__
    seq = getattr(event, "seq", None)
    head = f"{kind:<13}" + (f" step {seq:<3}" if seq is not None else "")
    request = getattr(event, "request", None)
    text = f" {inspect_flow.request_tag(request)}" if request is not None else ""
    outcome = getattr(event, "outcome", None)
    if outcome is not None:
        text += f" -> {_outcome(outcome)}"
    if kind == "StepPending":
        text += f" ({event.mode}" + (f", due {render.when(event.due)})" if event.due else ")")
    if kind == "FlowStarted":
        text += f" {event.name} v{event.version}"
    if kind in ("FlowEnded", "FlowStuck"):
        text += f" {event.status}"
        if kind == "FlowEnded":
            text += f" result {bytes(event.result).decode()[:60]}"
    return (head + text).rstrip()


def _outcome(outcome: Any) -> str:
    kind = type(outcome).__name__
    if kind == "Ok":
        value = bytes(outcome.value).decode()
        return "ok " + (value if len(value) <= 50 else value[:47] + "...")
    if kind == "Failed":
        return f"failed {outcome.kind}: {outcome.message}"
    return f"cancelled: {getattr(outcome, 'reason', '')}"


@app.command("why")
def why(ctx: typer.Context, flow_id: FlowId, as_json: JsonOption = False) -> None:
    """One screen on a flow: what it waits for and since when, its next timer, inbox
    events not yet applied, its last error, and whether its log replays against the
    current code.

    Example: orderflow --flows myapp.flows flows why exp-1
    """
    with session(ctx, "read") as shop:
        report = inspect_flow.why(shop, flow_id)
    if wants_json(ctx, as_json):
        emit(report)
        return
    _print_why(report)


def _print_why(w: inspect_flow.Why) -> None:
    typer.echo(f"flow {w.flow_id} ({w.name} v{w.version}): {w.status}")
    if w.waiting_step is not None:
        what = " or ".join(w.waiting_for) or "?"
        verb = {"await": "waiting for", "call": "calling", "retry": "retrying"}.get(
            w.waiting_mode or "", "waiting for"
        )
        typer.echo(
            f"  {verb:<13}{what} (step {w.waiting_step}), since {render.when(w.waiting_since)}"
        )
    else:
        typer.echo(f"  {'waiting for':<13}nothing ({w.status})")
    if w.next_timer is not None:
        rel = inspect_flow.relative(w.next_timer)
        hint = "; run `orderflow timers run`" if rel.startswith("overdue") else ""
        typer.echo(f"  {'next timer':<13}{render.when(w.next_timer)} ({rel}{hint})")
    else:
        typer.echo(f"  {'next timer':<13}none")
    typer.echo(f"  {'inbox':<13}" + (f"{len(w.parked)} parked event(s)" if w.parked else "empty"))
    for parked in w.parked:
        typer.echo(f"  {'':<15}{parked.event_id}: {render.summary(parked.notice, '')}")
    error = f"{w.last_error} (at {render.when(w.last_error_at)})" if w.last_error else "none"
    typer.echo(f"  {'last error':<13}{error}")
    if w.last_payment_failure:
        typer.echo(f"  {'last payment':<13}failed: {w.last_payment_failure}")
    replay = (
        "ok: the log replays against the current code" if w.replays else f"DIVERGES: {w.divergence}"
    )
    typer.echo(f"  {'replay':<13}{replay}")
    if w.order_status is not None:
        typer.echo(f"  {'order':<13}{w.order_status.replace('_', ' ')}")


@app.command("export")
def export(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(metavar="FILE", help="Write the document here; - (default) for stdout."),
    ] = "-",
    status: Status = None,
    as_json: JsonOption = False,
) -> None:
    """Export flows (all, or one status) with their orders' events as one JSON document.

    Example: orderflow flows export waiting.json --status waiting
    """
    with session(ctx, "read") as shop:
        count = len(shop.engine.flows(status))
        with working(f"exporting {count} flows"):
            document = shop.export_flows(status=status)
    if target == "-":
        sys.stdout.flush()
        typer.echo(document.decode())
        return
    try:
        Path(target).write_bytes(document)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}")
    if wants_json(ctx, as_json):
        emit({"file": target, "flows": count, "bytes": len(document)})
        return
    typer.echo(f"exported {count} flow(s) to {target} ({len(document)} bytes)")


@app.command("import")
def import_(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(metavar="FILE", help="An export document: a file, or - for stdin.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Import an export document (checked and dry-run first; all or nothing).

    Example: orderflow --db other.db flows import waiting.json
    """
    document = read_input(source)
    with session(ctx) as shop, working("importing flows"):
        report = shop.import_flows(document)
    if wants_json(ctx, as_json):
        emit(report)
        return
    typer.echo(f"imported {len(report.imported)} flow(s), {len(report.unchanged)} already there")
    for flow_id in report.imported:
        typer.echo(f"  + {flow_id}")
    typer.echo(f"receipt {report.receipt}  (give it to `flows retire --receipt` in the source)")


@app.command("retire")
def retire(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(metavar="FILE", help="The document the flows were exported in, or -."),
    ],
    receipt: Annotated[
        str | None,
        typer.Option("--receipt", help="The receipt `flows import` printed on the other side."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Retire without a receipt (you checked the import).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and list what would be retired; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Finish a move: end here the flows a document moved, once they were imported elsewhere.

    A move is `flows export FILE` here, `flows import FILE` on the other database (it
    prints a receipt), then `flows retire FILE --receipt R` here: the moved orders become
    `moved`, the stock they held leaves this database with them, and their webhooks are
    ignored here. Without --receipt it is refused unless --force. Refused, with nothing
    written, if any of them changed here since the export. Repeating it changes nothing.

    Example: orderflow flows retire waiting.json
    """
    document = read_input(source)
    with session(ctx) as shop, working("retiring moved flows"):
        retired = shop.retire_moved(document, receipt=receipt, force=force, dry_run=dry_run)
    if wants_json(ctx, as_json):
        emit({"retired": retired, "dry_run": dry_run} if dry_run else {"retired": retired})
        return
    verb = "would retire" if dry_run else "retired"
    typer.echo(f"{verb} {len(retired)} moved flow(s)")
    for flow_id in retired:
        typer.echo(f"  - {flow_id}")


@app.command("resume")
def resume(
    ctx: typer.Context,
    flow_id: Annotated[str | None, typer.Argument(help="The stuck flow's id.")] = None,
    all_stuck: Annotated[bool, typer.Option("--all-stuck", help="Every stuck flow.")] = False,
    as_json: JsonOption = False,
) -> None:
    """After a code fix: replay stuck flows against the installed code and continue them.

    Each one's parked payments are applied (or refunded, or held for review). Exits 1 if
    any still diverges (it stays stuck, nothing written for it).

    Example: orderflow flows resume --all-stuck
    """
    if (flow_id is None) == (not all_stuck):
        raise typer.BadParameter("give a flow id or --all-stuck (not both)")
    with session(ctx, pays=True) as shop:
        ids = [flow_id] if flow_id else [r.flow_id for r in shop.engine.flows("stuck")]
        outcomes = [inspect_flow.resume(shop, i) for i in ids]
    if wants_json(ctx, as_json):
        emit({"resumed": outcomes})
    else:
        _print_resumed(outcomes)
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


def _print_resumed(outcomes: list[inspect_flow.Resumed]) -> None:
    if not outcomes:
        typer.echo("no stuck flows")
    for o in outcomes:
        if o.error:
            typer.echo(f"STILL STUCK {o.flow_id}: {o.error}")
            continue
        typer.echo(f"resumed {o.flow_id}: {o.status}")
        for r in o.applied:
            typer.echo(f"  parked {r.event_id}: {r.outcome.replace('_', ' ')}: {r.reason}")


@app.command("parked")
def parked(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List payment events recorded but not yet applied to any order's flow.

    Example: orderflow flows parked --json
    """
    with session(ctx) as shop:
        rows = shop.parked()
    if wants_json(ctx, as_json):
        emit(rows)
        return
    render.table(
        ["EVENT", "TYPE", "ORDER", "INTENT", "PAYMENT"],
        [
            (
                r.event_id,
                r.event_type or "-",
                r.order_id or "-",
                r.intent_id,
                render.summary(msgspec.to_builtins(r.notice), r.notice.currency),
            )
            for r in rows
        ],
    )


@app.command("check")
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The upgrade gate: replay every unfinished flow against the current code.

    Exits 1 if any log diverges, listing each divergence.

    Example: orderflow --flows myapp.flows flows check
    """
    found: list[Divergence] = []
    with session(ctx, "read") as shop:
        ids = [r.flow_id for r in shop.engine.flows() if r.status not in FINISHED]
        for flow_id in progress(ids, "replaying"):
            found.extend(shop.engine.check_replay([flow_id]))
    if wants_json(ctx, as_json):
        emit({"ok": not found, "checked": len(ids), "divergences": found})
    else:
        for d in found:
            step = "" if d.step is None else f" at step {d.step}"
            typer.echo(f"DIVERGES {d.flow_id}{step}: {d.error}")
        verdict = "ok" if not found else f"{len(found)} diverge"
        typer.echo(f"checked {len(ids)} unfinished flow(s): {verdict}")
    if found:
        raise typer.Exit(1)
