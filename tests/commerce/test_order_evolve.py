"""`evolve` is the order's status rules: the projection's rows are what it folds to.

For any sequence of an order's events (payments on known and unknown intents, refunds
recorded before or after the payment, partial and full, fulfilment, disputes, closes,
moves), appended in any batches: the rows `apply_batch` leaves equal the rows `apply`
leaves one record at a time (a rebuild), and both equal `fold` of the events.
"""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.events import (
    CommerceEvent,
    OrderClosed,
    OrderFulfilled,
    OrderMovedOut,
    OrderPlaced,
    PaymentDisputed,
    PaymentIntentAdopted,
    PaymentIntentCreated,
    PaymentReceived,
    RefundIssued,
    RefundRecorded,
)
from commerce.order import OrderState, evolve, fold
from commerce.pricing import Quote
from commerce.projections import CommerceProjection
from ledger import Record, SqliteTx

ORDER = "o-1"
TOTAL = 1000
PLACED = OrderPlaced(
    order_id=ORDER,
    quote=Quote(lines=(), currency="EUR", subtotal=TOTAL, discount=0, tax=0, total=TOTAL),
    placed_at=datetime(2026, 1, 1, tzinfo=UTC),
)
_INTENTS = ("pi_1", "pi_2", "pi_3")
_amounts = st.sampled_from([0, 1, 400, 600, TOTAL - 1, TOTAL, TOTAL + 1, 2 * TOTAL])
_intents = st.sampled_from(_INTENTS)


def _of(kind: type[CommerceEvent], **fields: Any) -> st.SearchStrategy[CommerceEvent]:
    """Events of `kind` about the order, paid in EUR where they carry money."""
    has_money = "currency" in kind.__struct_fields__
    money = {"currency": st.just("EUR")} if has_money else {}
    return st.builds(kind, order_id=st.just(ORDER), **money, **fields)


def _later_events() -> st.SearchStrategy[CommerceEvent]:
    """Any event of the order after it was placed (intents may be unknown when named)."""
    evt, why = st.sampled_from(["evt_a", "evt_b"]), st.just("r")
    paid = {"intent_id": _intents, "event_id": evt, "amount": _amounts}
    closes = st.sampled_from(["expired", "cancelled", "failed", "refunded"])
    refunded = {"intent_id": _intents, "event_id": evt, "amount_refunded": _amounts}
    return st.one_of(
        _of(PaymentReceived, **paid),
        _of(OrderFulfilled),
        _of(PaymentDisputed, **paid, reason=why),
        _of(OrderClosed, status=closes, reason=why),
        _of(OrderMovedOut, lines=st.just([]), reason=why),
        _of(RefundIssued, intent_id=_intents, refund_id=st.just("re"), amount=_amounts, reason=why),
        _of(RefundRecorded, **refunded, full=st.booleans()),
    )


@st.composite
def order_histories(draw: st.DrawFn) -> list[list[CommerceEvent]]:
    """An order's events, cut into append batches; each intent is created at most once."""
    events: list[CommerceEvent] = [PLACED]
    created = draw(st.lists(_intents, unique=True, max_size=3))
    later = draw(st.lists(_later_events(), max_size=12))
    for intent_id in created:  # created or adopted somewhere among the later events
        at = draw(st.integers(0, len(later)))
        kind = draw(st.sampled_from([PaymentIntentCreated, PaymentIntentAdopted]))
        amount = draw(_amounts)
        later.insert(at, kind(order_id=ORDER, intent_id=intent_id, amount=amount, currency="EUR"))
    events += later
    cuts = sorted(draw(st.sets(st.integers(1, len(events) - 1))) if len(events) > 1 else set())
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


def _records(batch: list[CommerceEvent], first: int) -> list[Record]:
    return [
        Record(
            position=first + n,
            stream=f"order:{ORDER}",
            version=first + n,
            type=type(event).__name__,
            data=msgspec.json.encode(event),
            recorded_at="2026-01-01T00:00:00+00:00",
            idempotency_key=None,
            hash="",
        )
        for n, event in enumerate(batch)
    ]


def _rows(batches: list[list[CommerceEvent]], *, batched: bool) -> dict[str, list[Any]]:
    conn = sqlite3.connect(":memory:")
    tx, projection, position = SqliteTx(conn), CommerceProjection(), 1
    projection.create(tx)
    for batch in batches:
        records = _records(batch, position)
        position += len(records)
        if batched:
            projection.apply_batch(tx, records)
        else:
            for record in records:
                projection.apply(tx, record)
    tables = ("orders", "payment_intents")
    rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    conn.close()
    return rows


def _folded(events: list[CommerceEvent]) -> tuple[Any, ...]:
    state = fold(events)  # type: ignore[arg-type]
    created = {
        e.intent_id: e for e in events if isinstance(e, PaymentIntentCreated | PaymentIntentAdopted)
    }
    order = (state.status, state.paid, state.refunded, state.intent_id)
    intents = [
        (i, ORDER, created[i].amount, "EUR", state.intents[i].status) for i in sorted(created)
    ]
    return order, intents


@settings(max_examples=400, deadline=None)
@given(order_histories())
def test_batches_one_by_one_and_the_fold_leave_the_same_rows(
    batches: list[list[CommerceEvent]],
) -> None:
    events = [e for batch in batches for e in batch]
    one_by_one = _rows(batches, batched=False)
    assert _rows(batches, batched=True) == one_by_one
    (order,) = one_by_one["orders"]
    _, status, _, _, _, _, _, intent_id, paid, refunded, _ = order
    assert ((status, paid, refunded, intent_id), one_by_one["payment_intents"]) == _folded(events)


def _status_after(*events: CommerceEvent) -> tuple[str, str]:
    state = fold([PLACED, *events])  # type: ignore[list-item]
    return state.status, state.intents["pi_1"].status


def _created() -> PaymentIntentCreated:
    return PaymentIntentCreated(order_id=ORDER, intent_id="pi_1", amount=TOTAL, currency="EUR")


def _paid(amount: int = TOTAL) -> PaymentReceived:
    return PaymentReceived(
        order_id=ORDER, intent_id="pi_1", event_id="evt_p", amount=amount, currency="EUR"
    )


def _refund(amount: int, *, full: bool) -> RefundRecorded:
    return RefundRecorded(
        order_id=ORDER,
        intent_id="pi_1",
        event_id="evt_r",
        amount_refunded=amount,
        currency="EUR",
        full=full,
    )


def test_a_refund_before_the_payment_leaves_the_intent_open_then_counts() -> None:
    fulfilled = OrderFulfilled(order_id=ORDER)
    assert _status_after(_created(), _refund(100, full=False)) == ("awaiting_payment", "open")
    after = _status_after(_created(), _refund(100, full=False), _paid(), fulfilled)
    assert after == ("partially_refunded", "partially_refunded")
    closed = OrderClosed(order_id=ORDER, status="expired", reason="late")
    after = _status_after(_created(), _refund(TOTAL, full=True), closed, _paid())
    assert after == ("refunded", "refunded")


def test_a_part_refund_of_a_held_payment_keeps_it_held() -> None:
    held = PaymentDisputed(
        order_id=ORDER, intent_id="pi_1", event_id="evt_p", amount=1, currency="EUR", reason="r"
    )
    start = [_created(), _paid(1), held]
    assert _status_after(*start, _refund(1, full=False)) == ("needs_review", "partially_refunded")
    assert _status_after(*start, _refund(1, full=True)) == ("refunded", "refunded")


def test_evolve_starts_over_at_placing() -> None:
    assert evolve(OrderState(status="moved", paid=5), PLACED) == OrderState()
