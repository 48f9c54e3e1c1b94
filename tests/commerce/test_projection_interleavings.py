"""Property: every projection gives the same tables for ANY order of the events that keeps
each stream's own order (the only order a global sequencer promises a rebuild).

A real shop history is played through the public API, then its events are merged again at
random, stream by stream, and replayed into a fresh ledger's empty tables: one event at a
time (as `rebuild`) and in runs of one stream (as appends and copies). A deliberately
order-dependent toy projection shows that the property can fail.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from backends import Targets
from hypothesis import given, settings
from hypothesis import strategies as st
from interleavings import by_stream, replayed, tables
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    deliver,
    intent_id_for,
    stocked_shop,
)
from strategies import interleavings, shop_histories

from commerce import CommerceError, FakeProvider, Money, PaymentIntent, Shop
from commerce.pricing import Coupon
from ledger import Ledger, Record, Tx

SUCCEEDED = "payment_intent.succeeded"


def examples(targets: Targets, **options: Any) -> settings:
    """The profile's example count (`HYPOTHESIS_PROFILE`, see conftest) for the backend."""
    count = targets.examples(settings.default.max_examples)
    return settings(max_examples=count, deadline=None, **options)


def _webhook(shop: Shop, order_id: str, kind: str, event_id: str, **overrides: Any) -> None:
    if shop.order(order_id).order.intent_id is None:
        return  # nothing a provider could report yet
    deliver(shop, body_for(shop, order_id, kind, event_id=f"{event_id}_{order_id}", **overrides))


def _early(shop: Shop, order_id: str, basket: Sequence[tuple[str, int]]) -> None:
    """An order whose intent waits for a retry, paid before its flow waits (parked)."""
    shop.provider.fail_next("create_intent", "rate_limited")  # type: ignore[union-attr]
    row = shop.start_order(basket, order_id=order_id).order
    if row.intent_id is not None:
        return  # the order was there already
    intent = PaymentIntent(
        intent_id=intent_id_for(order_id),
        order_id=order_id,
        amount=row.total,
        currency=row.currency,
    )
    deliver(
        shop, FakeProvider.event_for(intent, SUCCEEDED, event_id=f"early_{order_id}", created=0)
    )


def _ghost(shop: Shop) -> None:
    """A payment for an intent and order this shop never saw: parked for good."""
    count = len(shop.parked())
    intent = PaymentIntent(
        intent_id=f"pi_ghost{count}", order_id=f"ghost{count}", amount=100, currency="EUR"
    )
    deliver(shop, FakeProvider.event_for(intent, SUCCEEDED, event_id=f"ghost{count}", created=0))


def _step(shop: Shop, clock: ShopClock, action: tuple[Any, ...]) -> None:
    match action:
        case ("start", order_id, basket):
            shop.start_order(basket, order_id=order_id)
        case ("early", order_id, basket):
            _early(shop, order_id, basket)
        case ("webhook", order_id, kind, event_id):
            _webhook(shop, order_id, kind, event_id)
        case ("partial_refund", order_id, event_id):
            _webhook(shop, order_id, "charge.refunded", event_id, amount_refunded=100)
        case ("foreign", order_id):  # paid on an intent orderflow did not create: review
            _webhook(shop, order_id, SUCCEEDED, "foreign", intent_id=f"pi_dash_{order_id}")
        case ("settle", order_id):
            shop.settle(order_id)
        case ("cancel", order_id):
            shop.cancel_order(order_id)
        case ("accept" | "refund" as decision, order_id):
            shop.review(order_id, decision)
        case ("restock", sku, quantity):
            shop.restock(sku, quantity)
        case ("product",):
            shop.add_product("CUP", "Cup", Money(800, "EUR"), stock=2)
        case ("coupon",):
            shop.add_coupon(Coupon(code="TEN", percent_off_bp=1000))
        case ("ghost",):
            _ghost(shop)
        case ("tick" | "retry" as wait,):
            clock.advance(1800 if wait == "tick" else 2)
            shop.fire_timers()
        case _:
            raise ValueError(f"unknown action {action!r}")


def play(shop: Shop, clock: ShopClock, actions: Sequence[tuple[Any, ...]]) -> None:
    """Play a history (`strategies.shop_histories`) on the stocked shop; refusals are fine."""
    for action in actions:
        with contextlib.suppress(CommerceError):
            _step(shop, clock, action)
    clock.advance(2)  # let deferred provider calls and parked events run
    shop.fire_timers()


@contextlib.contextmanager
def empty_like(targets: Targets, ledger: Ledger) -> Iterator[Ledger]:
    """A new, empty ledger on the same backend with the same projections."""
    own = ledger.projections[1:]  # the first is the built-in flows index, which every ledger has
    with targets.fresh("replay") as target, Ledger.open(target, projections=own) as empty:
        yield empty


def check_orders(targets: Targets, ledger: Ledger, data: st.DataObject, tries: int = 3) -> None:
    """Replays of random stream-consistent orders give the ledger's own tables, exactly."""
    records = list(ledger.read_all())
    named = {(r.stream, r.version): r for r in records}  # drawn by name: short examples
    streams = {
        stream: [(stream, r.version) for r in rs] for stream, rs in by_stream(records).items()
    }
    expected = tables(ledger)
    with empty_like(targets, ledger) as empty:
        assert replayed(empty, records, runs=False) == expected  # the stored order itself
        for _ in range(tries):
            order = [named[key] for key in data.draw(interleavings(streams), label="order")]
            runs = data.draw(st.booleans(), label="runs")
            assert replayed(empty, order, runs=runs) == expected


@pytest.mark.both_backends
def test_any_stream_consistent_order_rebuilds_the_same_tables(targets: Targets) -> None:
    @examples(targets)
    @given(actions=shop_histories(), data=st.data())
    def check(actions: list[tuple[Any, ...]], data: st.DataObject) -> None:
        clock = ShopClock()
        with (
            targets.fresh("history") as target,
            Shop.open(target, provider=FakeProvider(), clock=clock, synchronous="NORMAL") as shop,
        ):
            stocked_shop(shop)
            play(shop, clock, actions)
            check_orders(targets, shop.ledger, data)

    check()


@pytest.mark.both_backends
def test_orders_moved_between_ledgers_rebuild_the_same_tables(targets: Targets) -> None:
    """Export, import (stock comes and goes on the SKUs' streams) and retire, both sides."""
    clock = ShopClock()
    with (
        Shop.open(targets.new("source"), provider=FakeProvider(), clock=clock) as source,
        Shop.open(targets.new("target"), provider=FakeProvider(), clock=clock) as target,
    ):
        stocked_shop(source)
        play(
            source,
            clock,
            [("start", "o1", [("MUG", 2), ("TEE", 1)]), ("early", "o2", [("MUG", 1)])],
        )
        source.start_order([("TEE", 2)], order_id="o3")
        source.cancel_order("o3")  # released: its stock leaves the target again
        document = source.export_flows()
        receipt = target.import_flows(document).receipt
        source.retire_moved(document, receipt=receipt)
        _webhook(target, "o1", SUCCEEDED, "evt_moved")
        moved = {r.type for r in target.ledger.read_all() if r.stream.startswith("sku:")}
        assert {"Restocked", "StockRemoved"} <= moved

        @examples(targets)
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            check_orders(targets, source.ledger, data, tries=1)
            check_orders(targets, target.ledger, data, tries=1)

        check()


# -- the orders that failed before the fix, pinned -----------------------------------------


def _orders_first(ledger: Ledger) -> list[Record]:
    """Every order's stream before anything else (each stream kept in its own order)."""
    records = list(ledger.read_all())
    return sorted(records, key=lambda r: not r.stream.startswith("order:"))


@pytest.mark.both_backends
@pytest.mark.parametrize("runs", [False, True], ids=["each", "runs"])
def test_a_reservation_replayed_before_its_products_events(
    targets: Targets, stocked: Shop, runs: bool
) -> None:
    """Was: the UPDATE found no MUG row (the reservation lost), or CHECK available >= 0."""
    stocked.start_order([("MUG", 1), ("TEE", 2)], order_id="o1")
    stocked.start_order([("MUG", 3)], order_id="o2")
    stocked.settle("o2")
    stocked.cancel_order("o1")
    with empty_like(targets, stocked.ledger) as empty:
        assert replayed(empty, _orders_first(stocked.ledger), runs=runs) == tables(stocked.ledger)


@pytest.mark.both_backends
@pytest.mark.parametrize("runs", [False, True], ids=["each", "runs"])
def test_an_unparking_replayed_before_its_parking(
    targets: Targets, stocked: Shop, shop_clock: ShopClock, runs: bool
) -> None:
    """Was: the DELETE found nothing, then the parking's INSERT left the event parked."""
    _early(stocked, "o1", [("MUG", 2)])
    assert len(stocked.parked()) == 1
    shop_clock.advance(2)
    stocked.fire_timers()  # the flow waits, takes the parked payment: WebhookUnparked
    assert stocked.parked() == [] and stocked.order("o1").order.status == "fulfilled"
    with empty_like(targets, stocked.ledger) as empty:
        assert replayed(empty, _orders_first(stocked.ledger), runs=runs) == tables(stocked.ledger)


def test_a_ledger_file_from_before_the_waiting_tables_opens_and_verifies(
    tmp_path: Path, shop_clock: ShopClock
) -> None:
    """A file without `stock_unapplied` and `parked_surplus` gets them, empty, and verifies."""
    path = tmp_path / "old.db"
    with Shop.open(path, provider=FakeProvider(), clock=shop_clock) as shop:
        stocked_shop(shop)
        _early(shop, "o1", [("MUG", 2)])
        shop.start_order([("TEE", 1)], order_id="o2")
        before = tables(shop.ledger)
    with sqlite3.connect(path) as conn:  # as the projection made it before these tables
        conn.execute("DROP TABLE stock_unapplied")
        conn.execute("DROP TABLE parked_surplus")
    conn.close()
    with Shop.open(path, provider=FakeProvider(), clock=shop_clock) as shop:
        assert tables(shop.ledger) == before
        report = shop.ledger.verify()
        assert report.ok, report
        shop_clock.advance(2)
        shop.fire_timers()  # the parked payment is taken, the order fulfilled
        assert shop.order("o1").order.status == "fulfilled"
        check_all(shop)


# -- the property can fail ---------------------------------------------------------------


class LastEvent:
    """Order-dependent on purpose: one row naming the latest event of ANY stream."""

    name = "last_event"
    tables = ("last_event",)

    def create(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS last_event (one INTEGER PRIMARY KEY, stream TEXT NOT NULL)"
        )

    def apply(self, tx: Tx, record: Record) -> None:
        tx.execute(
            "INSERT INTO last_event (one, stream) VALUES (1, ?)"
            " ON CONFLICT (one) DO UPDATE SET stream = excluded.stream",
            (record.stream,),
        )


@pytest.mark.both_backends
def test_an_order_dependent_projection_is_caught(targets: Targets) -> None:
    with Ledger.open(targets.new("toy"), projections=[LastEvent()]) as ledger:
        ledger.append("a", [Coupon(code="A", percent_off_bp=1)])
        ledger.append("b", [Coupon(code="B", percent_off_bp=1)])

        @examples(targets, database=None)
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            check_orders(targets, ledger, data)

        with pytest.raises(AssertionError):
            check()
