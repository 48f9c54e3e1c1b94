"""Moving waiting orders to a fresh shop with `export_flows` / `import_flows` (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from backends import Targets
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    snapshot,
    stock,
    stocked_shop,
    tables,
)

from commerce import FakeProvider, Money, Shop
from flowlib import ImportRejected, RetireRefused

pytestmark = pytest.mark.both_backends


@pytest.fixture
def source(targets: Targets, shop_clock: ShopClock) -> Iterator[Shop]:
    with Shop.open(targets.new("source"), provider=FakeProvider(), clock=shop_clock) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")  # waiting
        shop.start_order([("MUG", 1)], order_id="o2")
        shop.settle("o2")  # completed
        yield shop


@pytest.fixture
def target(targets: Targets, shop_clock: ShopClock) -> Iterator[Shop]:
    with Shop.open(targets.new("target"), provider=FakeProvider(), clock=shop_clock) as shop:
        yield shop


def test_a_waiting_order_moves_and_settles_there(source: Shop, target: Shop) -> None:
    doc = source.export_flows(status="waiting")
    report = target.import_flows(doc)
    assert (report.imported, report.unchanged) == (["o1"], [])
    assert [r.order_id for r in target.orders()] == ["o1"]
    moved = target.order("o1")
    assert moved.order == source.order("o1").order
    assert moved.quote == source.order("o1").quote
    assert [e.event for e in moved.timeline] == [e.event for e in source.order("o1").timeline]
    # the stock the order holds came with it, and nothing else
    assert stock(target, "MUG") == (0, 2, 0)
    assert stock(target, "TEE") == (0, 1, 0)
    check_all(target)
    result = deliver(target, body_for(target, "o1", "payment_intent.succeeded", event_id="evt_1"))
    assert (result.outcome, result.order_status) == ("settled", "fulfilled")
    assert stock(target, "MUG") == (0, 0, 2)
    assert stock(target, "TEE") == (0, 0, 1)
    check_all(target)


def test_a_moved_order_expires_there_and_returns_its_stock(
    source: Shop, target: Shop, shop_clock: ShopClock
) -> None:
    target.import_flows(source.export_flows(status="waiting"))
    shop_clock.advance(1800)
    target.fire_timers()
    assert target.order("o1").order.status == "expired"
    assert stock(target, "MUG") == (2, 0, 0)
    check_all(target)


def test_a_moved_order_into_a_stocked_shop_keeps_its_stock_separate(
    source: Shop, target: Shop
) -> None:
    stocked_shop(target)
    target.import_flows(source.export_flows(status="waiting"))
    assert stock(target, "MUG") == (10, 2, 0)
    target.cancel_order("o1")
    assert stock(target, "MUG") == (12, 0, 0)
    check_all(target)


def test_export_everything_moves_finished_orders_too(source: Shop, target: Shop) -> None:
    report = target.import_flows(source.export_flows())
    assert sorted(report.imported) == ["o1", "o2"]
    assert target.order("o2").order.status == "fulfilled"
    assert stock(target, "MUG") == (0, 2, 1)
    check_all(target)


def test_reimport_of_an_unchanged_document_is_a_no_op(source: Shop, target: Shop) -> None:
    doc = source.export_flows(status="waiting")
    target.import_flows(doc)
    before = (snapshot(target), tables(target))
    report = target.import_flows(doc)
    assert (report.imported, report.unchanged) == ([], ["o1"])
    assert (snapshot(target), tables(target)) == before


def test_export_import_export_is_stable(source: Shop, target: Shop) -> None:
    doc = source.export_flows(status="waiting")
    target.import_flows(doc)
    assert target.export_flows(status="waiting") == doc


def _flip(doc: bytes, anchor: bytes, old: bytes, new: bytes) -> bytes:
    at = doc.index(old, doc.index(anchor))
    return doc[:at] + new + doc[at + len(old) :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: _flip(d, b'"StockReserved"', b'"quantity":2', b'"quantity":3'),
        lambda d: _flip(d, b'"PaymentIntentCreated"', b'"amount":4500', b'"amount":4501'),
        lambda d: _flip(d, b'"ProductAdded"', b'"unit_price":1250', b'"unit_price":1251'),
        lambda d: _flip(d, b'"flows"', b'"StepDone"', b'"StepDonf"'),
        lambda d: d[: len(d) // 2],
        lambda d: b"not json",
    ],
    ids=["stock-quantity", "intent-amount", "product-price", "flow-log", "truncated", "garbage"],
)
def test_a_damaged_document_is_rejected_and_the_target_unchanged(
    source: Shop, target: Shop, damage: object
) -> None:
    doc = source.export_flows(status="waiting")
    damaged = damage(doc)  # type: ignore[operator]
    assert damaged != doc
    before = (snapshot(target), tables(target))
    with pytest.raises(ImportRejected):
        target.import_flows(damaged)
    assert (snapshot(target), tables(target)) == before


def test_a_flipped_byte_inside_the_flow_fingerprinted_log_is_rejected(
    source: Shop, target: Shop
) -> None:
    doc = source.export_flows(status="waiting")
    parsed = json.loads(doc)
    flows = parsed["flows"] if isinstance(parsed["flows"], dict) else json.loads(parsed["flows"])
    flows["flows"][0]["events"][0]["started_at"] = "2030-01-01T00:00:00Z"
    parsed["flows"] = flows
    before = snapshot(target)
    with pytest.raises(ImportRejected):
        target.import_flows(json.dumps(parsed).encode())
    assert snapshot(target) == before


@pytest.mark.parametrize(
    "header",
    [{"format_version": 2}, {"format_version": 0}, {"format": "orderflow.flows"}],
)
def test_another_format_or_version_is_rejected(
    source: Shop, target: Shop, header: dict[str, object]
) -> None:
    parsed = json.loads(source.export_flows(status="waiting"))
    parsed.update(header)
    before = snapshot(target)
    with pytest.raises(ImportRejected):
        target.import_flows(json.dumps(parsed).encode())
    assert snapshot(target) == before


def test_a_product_that_differs_in_the_target_is_rejected(source: Shop, target: Shop) -> None:
    target.add_product("MUG", "Mug", Money(999, "EUR"), stock=1)
    before = (snapshot(target), tables(target))
    with pytest.raises(ImportRejected):
        target.import_flows(source.export_flows(status="waiting"))
    assert (snapshot(target), tables(target)) == before


def test_an_order_already_there_with_other_events_is_rejected(
    source: Shop, target: Shop, targets: Targets, shop_clock: ShopClock
) -> None:
    doc = source.export_flows(status="waiting")
    target.import_flows(doc)
    target.settle("o1")
    before = snapshot(target)
    with pytest.raises(ImportRejected):
        target.import_flows(doc)
    assert snapshot(target) == before
    assert count_events(target, "OrderFulfilled") == 1


# -- finishing a move: retire in the source ------------------------------------------------


def test_retiring_a_moved_order_ends_it_here_and_its_stock_leaves(
    source: Shop, target: Shop
) -> None:
    doc = source.export_flows(status="waiting")
    receipt = target.import_flows(doc).receipt
    assert source.retire_moved(doc, receipt=receipt) == ["o1"]
    assert source.order("o1").order.status == "moved"
    assert source.engine.status("o1").status == "moved"
    assert stock(source, "MUG") == (7, 0, 1) and stock(source, "TEE") == (4, 0, 0)
    check_all(source)
    # Its webhooks are ignored here (they belong to the target now), and it never expires.
    late = deliver(source, body_for(source, "o1", "payment_intent.succeeded", event_id="evt_x"))
    assert (late.outcome, late.order_status) == ("ignored", "moved")
    assert count_events(source, "OrderFulfilled", "o1") == 0
    assert source.fire_timers(source.clock() + timedelta(days=1)) == []
    # The target carries on.
    paid = deliver(target, body_for(target, "o1", "payment_intent.succeeded", event_id="evt_1"))
    assert paid.order_status == "fulfilled"
    check_all(target)


def test_retiring_again_changes_nothing(source: Shop, target: Shop) -> None:
    doc = source.export_flows(status="waiting")
    receipt = target.import_flows(doc).receipt
    source.retire_moved(doc, receipt=receipt)
    before = snapshot(source)
    assert source.retire_moved(doc, receipt=receipt) == []
    assert snapshot(source) == before


def test_an_order_that_changed_since_the_export_is_not_retired(source: Shop) -> None:
    doc = source.export_flows(status="waiting")
    source.fail_payment("o1", reason="declined")  # something happened here after the export
    before = snapshot(source)
    with pytest.raises(RetireRefused, match="o1"):
        source.retire_moved(doc, force=True)
    assert snapshot(source) == before
    assert source.order("o1").order.status == "awaiting_payment"


def test_a_finished_order_in_the_document_is_left_as_it_is(source: Shop, target: Shop) -> None:
    doc = source.export_flows()  # o2 is fulfilled already
    receipt = target.import_flows(doc).receipt
    assert source.retire_moved(doc, receipt=receipt) == ["o1"]
    assert source.order("o2").order.status == "fulfilled"
    check_all(source)


def test_a_waiting_order_moves_from_sqlite_to_postgresql(
    tmp_path: Path, pg_dsn: str, shop_clock: ShopClock
) -> None:
    """Between backends, a move is the same export and import: the document reads back
    byte for byte from the new home, and the order settles there."""
    with (
        Shop.open(tmp_path / "file.db", provider=FakeProvider(), clock=shop_clock) as on_file,
        Shop.open(pg_dsn, provider=FakeProvider(), clock=shop_clock) as on_pg,
    ):
        stocked_shop(on_file)
        on_file.start_order([("MUG", 2)], order_id="o1")
        doc = on_file.export_flows(status="waiting")
        receipt = on_pg.import_flows(doc).receipt
        assert on_pg.export_flows(status="waiting") == doc
        assert on_file.retire_moved(doc, receipt=receipt) == ["o1"]
        assert on_pg.settle("o1").order_status == "fulfilled"
        assert stock(on_pg, "MUG") == (0, 0, 2)
        check_all(on_file)
        check_all(on_pg)
