"""`orderflow demo`: the whole story on fresh ledgers, in well under a second.

A simulated clock drives expiry (no waiting) and the fake provider takes the payments
(chosen explicitly; no money moves): three orders; one paid by a signed webhook
delivered twice; one with a failed attempt that then expires; the survivor exported,
imported into a second ledger and paid there; timelines; `ledger verify` on both.
The ledgers are new files, or on a PostgreSQL DSN new schemas in its database.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import typer

from cli import render
from cli.runtime import open_shop
from cli.target import create_schemas, database, in_schema, is_dsn
from commerce import (
    Coupon,
    FakeProvider,
    OrderRow,
    PaymentIntent,
    SettleResult,
    Shop,
    parse_money,
    sign,
)

SECRET = "whsec_orderflow_demo"
PAID, DECLINED = "payment_intent.succeeded", "payment_intent.payment_failed"


class SimulatedClock:
    """A clock that moves only when told: expiry without waiting."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int) -> datetime:
        """Move the clock on by `minutes`."""
        self.now += timedelta(minutes=minutes)
        return self.now


class Story:
    """Narrates for people, or collects one JSON document for scripts."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.doc: dict[str, Any] = {}

    def say(self, text: str = "") -> None:
        """A line of narrative (text mode only)."""
        if not self.as_json:
            typer.echo(text)

    def step(self, title: str) -> None:
        """A numbered heading."""
        self.say()
        self.say(f"== {title}")


class Places(NamedTuple):
    """Where the demo writes: the shop's ledger, the one the survivor moves to, the export.

    On SQLite the ledgers are new files; on PostgreSQL, new schemas (`schemas`) in the
    DSN's database, with the export document in the current directory.
    """

    shop: str
    moved: str
    export: Path
    schemas: tuple[str, ...] = ()


def places(db: str | None) -> Places:
    """New places for the demo: never an existing file or schema (`FileExistsError`)."""
    if db is not None and is_dsn(db):
        return _schemas(db)
    if db is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base, n = Path(f"orderflow-demo-{stamp}"), 1
        while any(p.exists() for p in _derived(base)):
            n += 1
            base = Path(f"orderflow-demo-{stamp}-{n}")
        first, second, export = _derived(base)
        return Places(str(first), str(second), export)
    path = Path(db)
    base = path.with_suffix("") if path.suffix == ".db" else path
    first, second, export = _derived(base)
    first = path
    for taken in (first, second, export):
        if taken.exists():
            raise FileExistsError(taken)
    return Places(str(first), str(second), export)


def _schemas(dsn: str) -> Places:
    """Two new schemas in the DSN's database (a random tail: two demos never share one)."""
    base = f"orderflow_demo_{datetime.now():%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"
    export = Path(f"{base}-flows.json")
    if export.exists():
        raise FileExistsError(export)
    names = (base, f"{base}_moved")
    create_schemas(dsn, names)
    return Places(in_schema(dsn, names[0]), in_schema(dsn, names[1]), export, names)


def _derived(base: Path) -> tuple[Path, Path, Path]:
    return (
        base.with_name(base.name + ".db"),
        base.with_name(base.name + "-moved.db"),
        base.with_name(base.name + "-flows.json"),
    )


def left_behind(where: Places) -> list[str]:
    """What the demo leaves: its files (with lock and WAL files) or schemas, and the export."""
    found = [f"schema {name}" for name in where.schemas]
    ledgers = () if where.schemas else (Path(where.shop), Path(where.moved))
    for path in (*ledgers, where.export):
        for suffix in ("", "-wal", "-shm", ".lock"):
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                found.append(str(candidate))
    return found


def signed(row: OrderRow, kind: str, event_id: str, now: datetime) -> tuple[bytes, str]:
    """A Stripe-shaped event about the order, and its signature header."""
    intent = PaymentIntent(
        intent_id=row.intent_id or "",
        order_id=row.order_id,
        amount=row.total,
        currency=row.currency,
    )
    stamp = int(now.timestamp())
    body = FakeProvider.event_for(intent, kind, event_id=event_id, created=stamp)
    return body, sign(body, SECRET, stamp)


def seed(shop: Shop, story: Story) -> None:
    """A small catalog and a coupon."""
    story.step("1. a small catalog")
    for sku, name, price, stock in (
        ("MUG", "Enamel mug", "12.50", 10),
        ("TEE", "Logo tee", "20.00", 5),
        ("CAP", "Cap", "15.00", 3),
    ):
        shop.add_product(sku, name, parse_money(price, "EUR"), stock=stock)
    shop.add_coupon(Coupon(code="WELCOME10", percent_off_bp=1000))
    if not story.as_json:
        render.products(shop.products())
    story.say("coupon WELCOME10: 10% off")


def deliver(shop: Shop, story: Story, body: bytes, header: str, label: str) -> SettleResult:
    """Deliver one signed webhook and narrate the answer."""
    result = shop.settle_webhook(body, header, secret=SECRET)
    status = (result.order_status or "?").replace("_", " ")
    story.say(f"{label}: {result.outcome.replace('_', ' ')} ({result.reason}); order {status}")
    story.doc.setdefault("deliveries", []).append(result)
    return result


def first_shop(shop: Shop, clock: SimulatedClock, story: Story) -> tuple[list[str], bytes]:
    """Orders A, B and C in the first ledger; returns the order ids and the export document."""
    story.step("2. three orders (C is placed 20 simulated minutes after A and B)")
    a = shop.start_order([("MUG", 2)]).order
    b = shop.start_order([("TEE", 1)]).order
    clock.advance(20)
    c = shop.start_order([("MUG", 1), ("CAP", 1)], coupon="WELCOME10").order
    for label, row in (("A", a), ("B", b), ("C", c)):
        story.say(
            f"order {label} {row.order_id}: {row.total_text}, intent {row.intent_id}, "
            f"{row.status.replace('_', ' ')}"
        )
    story.step("3. A is paid: a signed webhook, delivered twice")
    body, header = signed(a, PAID, f"evt_demo_{a.order_id}_paid", clock())
    story.say(f"Stripe-Signature: {header[:40]}...")
    deliver(shop, story, body, header, "first delivery")
    deliver(shop, story, body, header, "second delivery")
    story.step("4. B: a declined attempt, then B expires (the clock moves 11 minutes)")
    body, header = signed(b, DECLINED, f"evt_demo_{b.order_id}_declined", clock())
    deliver(shop, story, body, header, "declined attempt")
    fired = shop.fire_timers(clock.advance(11))
    story.doc["fired"] = fired
    for f in fired:
        story.say(f"timer fired for {f.flow_id}: flow {f.status}")
    statuses = {row.order_id: row.status for row in shop.orders()}
    story.say("orders now: " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    story.step("5. export the suspended flows")
    document = shop.export_flows(status="waiting")
    waiting = [f.flow_id for f in shop.engine.flows("waiting")]
    story.say(f"{len(waiting)} waiting flow(s): {', '.join(waiting)} ({len(document)} bytes)")
    return [a.order_id, b.order_id, c.order_id], document


def second_shop(
    shop: Shop, clock: SimulatedClock, story: Story, document: bytes, survivor: str
) -> str:
    """Import the export into the fresh ledger and pay the survivor there; the import's receipt."""
    story.step("6. a fresh database: import, then pay the survivor there")
    report = shop.import_flows(document)
    story.doc["imported"] = report
    story.say(f"imported {', '.join(report.imported) or 'nothing'} (receipt {report.receipt})")
    row = shop.order(survivor).order
    body, header = signed(row, PAID, f"evt_demo_{survivor}_paid", clock())
    deliver(shop, story, body, header, "C's payment in the new ledger")
    return report.receipt


def finish_move(shop: Shop, story: Story, document: bytes, survivor: str, receipt: str) -> None:
    """Retire the moved flow in the first ledger (with the import's receipt as proof)."""
    story.step("7. finish the move: retire the survivor in the first ledger")
    retired = shop.retire_moved(document, receipt=receipt)
    story.doc["retired"] = retired
    status = shop.order(survivor).order.status
    story.say(f"retired {', '.join(retired) or 'nothing'}: in the first ledger it is now {status}")


def timelines(story: Story, views: list[tuple[str, Any]]) -> None:
    """Each order's timeline."""
    story.step("8. timelines")
    story.say("(event times are when the ledger recorded them; the demo's clock is simulated)")
    for where, view in views:
        story.say(f"-- in {where}")
        if not story.as_json:
            render.order(view)
    story.doc["orders"] = [view for _, view in views]


EXPECTED = ("fulfilled", "expired", "fulfilled")


def run(db: str | None, story: Story) -> bool:
    """Tell the story; True if every order ended as expected and both ledgers verify."""
    where = places(db)
    first, second, export = where.shop, where.moved, where.export
    shown = (where.schemas[0], where.schemas[1]) if where.schemas else (first, second)
    story.doc["files"] = {"shop": shown[0], "moved_to": shown[1], "export": str(export)}
    if where.schemas:
        story.doc["database"] = database(first)
        story.say(f"demo ledgers: schemas in {database(first)}")
    story.say(f"demo files: {shown[0]} (the shop), {shown[1]} (where the survivor moves), {export}")
    clock = SimulatedClock(datetime.now(UTC).replace(microsecond=0))
    fake = FakeProvider()  # chosen explicitly: the demo's payments are pretend ones
    with open_shop(first, clock=clock, provider=fake) as shop:
        seed(shop, story)
        ids, document = first_shop(shop, clock, story)
        export.write_bytes(document)
    with open_shop(second, clock=clock, provider=fake) as shop:
        receipt = second_shop(shop, clock, story, document, ids[2])
        moved = (shown[1], shop.order(ids[2]))
        report_second = shop.ledger.verify()
    with open_shop(first, clock=clock, provider=fake) as shop:
        finish_move(shop, story, document, ids[2], receipt)
        views = [(shown[0], shop.order(order_id)) for order_id in ids[:2]] + [moved]
        report_first = shop.ledger.verify()
    timelines(story, views)
    story.step("9. ledger verify")
    story.doc["verify"] = {"shop": report_first, "moved_to": report_second}
    engine = "PostgreSQL" if where.schemas else f"SQLite {report_first.sqlite_version}"
    for name, report in zip(shown, (report_first, report_second), strict=True):
        story.say(
            f"{name}: {'ok' if report.ok else 'NOT OK'}, {report.events} events, "
            f"hash chain intact, {engine}"
        )
    final = tuple(view.order.status for _, view in views)
    ok = report_first.ok and report_second.ok and final == EXPECTED
    story.doc["ok"] = ok
    story.doc["left"] = left_behind(where)
    story.say()
    story.say(
        "demo complete: A fulfilled, B expired, C moved and fulfilled"
        if ok
        else f"demo FAILED: statuses {final}, expected {EXPECTED}"
    )
    what = "schemas and files" if where.schemas else "files"
    story.say(f"{what} left (delete them when done): {', '.join(story.doc['left'])}")
    if where.schemas:
        dsn = f"'<your DSN>?options=-csearch_path%3D{shown[0]}'"
        story.say(f"  look with: orderflow --db {dsn} order list")
        drop = "; ".join(f"DROP SCHEMA {name} CASCADE" for name in where.schemas)
        story.say(f"  drop with: {drop}")
    return ok
