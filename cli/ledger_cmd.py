"""`orderflow ledger`: tail the event log, verify it, rebuild its projections, copy it."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer

from cli import listing, render
from cli.runtime import JsonOption, emit, guarded, session, wants_json, working
from commerce import Shop
from ledger import Anchor, CopyProgress, Record, VerifyReport

app = typer.Typer(
    help="The append-only event ledger: tail, verify, rebuild, copy.", no_args_is_help=True
)


def _entry(record: Record) -> dict[str, Any]:
    """The event for `--json`; its body on one line whatever its stored layout (JSON Lines)."""
    return {
        "position": record.position,
        "recorded_at": record.recorded_at,
        "stream": record.stream,
        "version": record.version,
        "type": record.type,
        "data": msgspec.Raw(msgspec.json.format(record.data, indent=0)),
        "hash": record.hash,
    }


def _line(record: Record) -> str:
    return (
        f"{record.position:>7}  {render.when(record.recorded_at)}  "
        f"{record.stream:<36} v{record.version:<4} {record.type}"
    )


@app.command("tail")
def tail(
    ctx: typer.Context,
    lines: Annotated[
        int,
        typer.Option("-n", "--lines", "--limit", min=0, metavar="N", help="How many events."),
    ] = 10,
    since: listing.Since = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C stops).")
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.05,
            metavar="SECONDS",
            help="Longest wait between looks for new events with --follow (PostgreSQL is"
            " woken by each commit sooner).",
        ),
    ] = 0.5,
    as_json: JsonOption = False,
) -> None:
    """Print the last N events (of those since --since); with --follow, keep polling.

    With --json: one JSON array, or with --follow one JSON object per line (JSON Lines).

    Example: orderflow ledger tail --since 2025-01-31 -n 50
    """
    as_json = wants_json(ctx, as_json)
    start = listing.since(since)
    with session(ctx, "read") as shop:
        head = shop.ledger.head()[0]
        first = listing.position_before(shop.ledger, start) if start else 0
        records = list(shop.ledger.read_all(after=max(first, head - lines)))
        if as_json and not follow:
            emit([_entry(r) for r in records])
            return
        last = _show(records, as_json, head)
        if follow:
            try:
                while True:
                    if shop.ledger.wait_for_events(last, interval):
                        last = _show(list(shop.ledger.read_all(after=last)), as_json, last)
            except KeyboardInterrupt:
                return


def _show(records: list[Record], as_json: bool, last: int) -> int:
    for record in records:
        if as_json:
            typer.echo(msgspec.json.encode(_entry(record)).decode())
        else:
            typer.echo(_line(record))
    return records[-1].cursor if records else last


@app.command("verify")
def verify(
    ctx: typer.Context,
    since_last: Annotated[
        bool,
        typer.Option(
            "--since-last",
            help="Only the chain after the last verified position (a scrub): fast on any size.",
        ),
    ] = False,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="POSITION:HASH",
            help="A head noted earlier outside this file (as printed here): it must still be "
            "in the chain. Catches lost trailing events, e.g. a deleted -wal.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Walk the hash chain and compare every projection with a rebuild; exit 1 if not ok.

    Example: orderflow ledger verify --expect-head 1200:3f2a...e9
    """
    try:
        anchor = Anchor.parse(expect_head) if expect_head is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expect-head") from exc
    with session(ctx, "check") as shop, working("verifying the ledger"):
        ledger = shop.ledger
        report = (
            ledger.scrub(expect_head=anchor) if since_last else ledger.verify(expect_head=anchor)
        )
    if wants_json(ctx, as_json):
        emit(report)
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: VerifyReport) -> None:
    scope = f"events after {report.since}" if not report.full else "events"
    # Only SQLite's library version is in the report (PostgreSQL's is the server's own).
    engine = f"SQLite {report.sqlite_version}" if report.sqlite_version else "PostgreSQL"
    typer.echo(
        f"ledger {'ok' if report.ok else 'NOT OK'}: {report.events} {scope}, "
        f"head {report.head[0]}:{report.head[1]}, {engine}"
    )
    last = report.last_full
    typer.echo(
        f"  last full verification: {render.age(last.at)} ago, up to position {last.position}"
        if last
        else "  last full verification: never"
    )
    if report.pending:
        typer.echo(
            f"  {report.pending} events not in the global chain yet (their stream links"
            " were checked): the sequencer chains them once older open transactions end"
        )
    if report.broken:
        typer.echo(f"  broken hash chain at position {report.broken.position}")
    for gap in report.gaps:
        where = f"stream {gap.stream}" if gap.stream else "positions"
        typer.echo(f"  gap in {where}: expected {gap.expected}, found {gap.found}")
    for diff in report.projections:
        typer.echo(
            f"  projection {diff.projection} table {diff.table}: "
            f"{diff.missing} missing, {diff.unexpected} unexpected rows"
        )
    for guard in report.missing_guards:
        typer.echo(f"  missing append-only guard {guard}")
    if report.anchor and report.anchor_found != report.anchor.hash:
        found = "no event there" if report.anchor_found is None else "a different hash"
        typer.echo(
            f"  expected head {report.anchor.position} not in the chain ({found}): "
            "events were lost or rewritten"
        )


@app.command("rebuild")
def rebuild(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Regenerate every projection table (orders, stock, flows...) from the events alone.

    Example: orderflow ledger rebuild
    """
    with session(ctx) as shop, working("rebuilding projections"):
        applied = shop.ledger.rebuild()
    if wants_json(ctx, as_json):
        emit({"events": applied})
        return
    typer.echo(f"rebuilt the projections from {applied} events")


@app.command("copy")
def copy(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="The ledger: a file, or a postgresql:// DSN.")
    ],
    destination: Annotated[
        str,
        typer.Argument(metavar="DST", help="Where to: a new or empty file, or a DSN's schema."),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, metavar="N", help="Events per batch written.")
    ] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Copy the whole ledger from SRC into the empty DST, verified on both ends.

    SRC's chain is checked first, and it is read from one snapshot (it may keep taking
    orders; the copy ends at the head seen at the start). Every event keeps its position,
    time and hash, so a head noted on SRC (`ledger verify`) is found on DST. DST is written
    in one transaction that rebuilds its projections (orders, stock, flows) and verifies
    them before it commits: an interrupted copy leaves DST without events; run it again.

    Example: orderflow ledger copy shop.db postgresql://shop@db.example.com/shop
    """
    as_json = wants_json(ctx, as_json)
    with guarded(ctx), Shop.open(source, readonly=True) as shop:
        tell = None if as_json else _Milestones(shop.ledger.path)
        report = shop.ledger.copy_to(destination, batch_size=batch_size, progress=tell)
    if as_json:
        emit(report)
        return
    position, hash_ = report.destination_head
    typer.echo(
        f"copied {report.events} events from {report.source} to {report.destination} "
        f"in {report.seconds:.1f} s: head {position}:{hash_} on both ends, both verified"
    )


class _Milestones:
    """Prints one line per milestone of a copy (batches: at each tenth of the events)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tenths = 0

    def __call__(self, step: CopyProgress) -> None:
        if step.stage == "checked":
            typer.echo(f"source {self.source}: chain verified, {step.total} events")
        elif step.stage == "copied":
            tenths = step.events * 10 // step.total
            if tenths > self.tenths:
                self.tenths = tenths
                typer.echo(f"  copied {step.events} of {step.total} events")
        elif step.stage == "verified":
            typer.echo("destination: chain and projections verified against a rebuild")
        else:
            typer.echo("destination: committed")
