"""Reliability scenarios the state machine does not reach: moving orders and going on in the
new file, moving closed orders too, and a payment that arrives before its intent is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from broken_deploy import deployed_broken_code
from reliability_helpers import SECRET, Clock, check_invariants, event_body, intent_of

from commerce import FakeProvider, Money, PaymentIntent, SettleResult, Shop, ShopConfig, sign
from commerce.providers.base import derive_id

CONFIG = ShopConfig(payment_timeout_seconds=600)
SUCCEEDED = "payment_intent.succeeded"


def _open(path: Path, clock: Clock, provider: FakeProvider | None = None) -> Shop:
    return Shop.open(path, clock=clock, provider=provider or FakeProvider(), config=CONFIG)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(tmp_path: Path, clock: Clock) -> Iterator[Shop]:
    with _open(tmp_path / "source.db", clock) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=10)
        shop.add_product("BRD", "Bread", Money(399, "EUR"), stock=10)
        yield shop


def _pay(shop: Shop, clock: Clock, order_id: str, event_id: str) -> str:
    body = event_body(intent_of(shop, order_id), SUCCEEDED, event_id, clock.unix)
    return shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET).outcome


def test_moved_orders_continue_in_the_new_file(source: Shop, clock: Clock, tmp_path: Path) -> None:
    source.start_order([("APL", 2), ("BRD", 1)], order_id="paid-there")
    source.start_order([("APL", 3)], order_id="expires-there")
    document = source.export_flows(status="waiting")
    with _open(tmp_path / "target.db", clock) as target:
        target.import_flows(document)
        target.import_flows(document)  # a second import of the same document changes nothing
        check_invariants(target)
        assert _pay(target, clock, "paid-there", "evt_1") == "settled"
        assert _pay(target, clock, "paid-there", "evt_1") == "already_settled"
        clock.advance(601)
        target.fire_timers()
        facts = check_invariants(target)
        assert facts.fulfilled == {"paid-there": 1}
        assert target.order("expires-there").order.status == "expired"
        stock = {p.sku: (p.available, p.reserved, p.sold) for p in target.products()}
        assert stock == {"APL": (3, 0, 2), "BRD": (0, 0, 1)}


def test_moving_every_flow_including_closed_orders(
    source: Shop, clock: Clock, tmp_path: Path
) -> None:
    source.start_order([("APL", 2)], order_id="fulfilled")
    source.start_order([("APL", 1)], order_id="cancelled")
    source.start_order([("BRD", 1)], order_id="waiting")
    _pay(source, clock, "fulfilled", "evt_1")
    source.cancel_order("cancelled")
    document = source.export_flows()
    with _open(tmp_path / "target.db", clock) as target:
        target.import_flows(document)
        check_invariants(target)
        for order_id in ("fulfilled", "cancelled", "waiting"):
            assert target.order(order_id).order == source.order(order_id).order


def test_a_payment_before_its_intent_is_recorded_is_parked_then_fulfils(
    tmp_path: Path, clock: Clock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with _open(tmp_path / "shop.db", clock, provider) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        assert shop.start_order([("APL", 1)], order_id="o1").order.status == "placed"
        # the intent id derives from the step's idempotency key: the provider knows it already
        early = PaymentIntent(
            intent_id=derive_id("pi_", "o1:2"), order_id="o1", amount=250, currency="EUR"
        )
        body = event_body(early, SUCCEEDED, "evt_early", clock.unix)
        result = shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
        assert result.outcome == "recorded" and result.reason.startswith("parked")
        clock.advance(120)
        shop.fire_timers()  # the retry creates the intent; the flow takes the parked payment
        assert shop.order("o1").order.status == "fulfilled"
        assert check_invariants(shop).fulfilled == {"o1": 1}


def test_a_refund_notice_answers_refunded(source: Shop, clock: Clock) -> None:
    source.start_order([("APL", 1)], order_id="o1")
    assert _pay(source, clock, "o1", "evt_paid") == "settled"
    body = event_body(intent_of(source, "o1"), "charge.refunded", "evt_refund", clock.unix)
    result = source.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
    assert (result.outcome, result.reason) == ("refunded", "refunded in full")
    assert result.order_status == "refunded"
    check_invariants(source)


# -- the state machine's failures for issue 11 (shrunk sequences, as plain tests) ---------

FAILED = "payment_intent.payment_failed"


def _body(
    shop: Shop, clock: Clock, order_id: str, kind: str, event_id: str, amount: int = 0
) -> bytes:
    intent = intent_of(shop, order_id)
    if amount:
        intent = PaymentIntent(
            intent_id=intent.intent_id, order_id=order_id, amount=amount, currency=intent.currency
        )
    return event_body(intent, kind, event_id, clock.unix)


def _deliver(shop: Shop, clock: Clock, body: bytes) -> SettleResult:
    return shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)


def _pay_during_a_bad_deploy(
    shop: Shop, clock: Clock, order_id: str, kind: str, event_id: str
) -> None:
    with deployed_broken_code():
        result = _deliver(shop, clock, _body(shop, clock, order_id, kind, event_id))
    assert result.outcome == "recorded" and "parked" in result.reason, result
    assert shop.engine.status(order_id).status == "stuck"


def _outcomes(results: list[SettleResult]) -> list[tuple[str, str, str | None]]:
    return [(r.event_id, r.outcome, r.order_status) for r in results]


def test_resuming_reports_every_parked_payment_the_flow_took(source: Shop, clock: Clock) -> None:
    """Model failure 1: a parked failed attempt, then a parked payment, then the resume.

    The flow takes the failure, waits again and takes the payment behind it at once; the
    resume reports both, each with the status it left the order in.
    """
    source.start_order([("APL", 1)], order_id="o1")
    _pay_during_a_bad_deploy(source, clock, "o1", FAILED, "evt_fail")
    _pay_during_a_bad_deploy(source, clock, "o1", SUCCEEDED, "evt_paid")
    state, applied = source.resume_flow("o1")
    assert _outcomes(applied) == [
        ("evt_fail", "recorded", "awaiting_payment"),
        ("evt_paid", "settled", "fulfilled"),
    ]
    assert (state.status, source.order("o1").order.status) == ("completed", "fulfilled")
    assert source.parked() == []
    check_invariants(source)


def test_a_payment_taken_after_the_flow_ended_is_decided_not_dropped(
    source: Shop, clock: Clock
) -> None:
    """A failed attempt, a payment and its Charge twin parked: the twin is superseded."""
    source.start_order([("APL", 1)], order_id="o1")
    _pay_during_a_bad_deploy(source, clock, "o1", FAILED, "evt_fail")
    _pay_during_a_bad_deploy(source, clock, "o1", SUCCEEDED, "evt_paid")
    _pay_during_a_bad_deploy(source, clock, "o1", SUCCEEDED, "evt_again")
    _, applied = source.resume_flow("o1")
    assert _outcomes(applied) == [
        ("evt_fail", "recorded", "awaiting_payment"),
        ("evt_paid", "settled", "fulfilled"),
        ("evt_again", "already_settled", "fulfilled"),
    ]
    assert source.parked() == []
    timeline = [e.event for e in source.order("o1").timeline]
    assert "PaymentSuperseded" in timeline, timeline
    check_invariants(source)


def test_a_payment_never_overtakes_one_parked_before_it(source: Shop, clock: Clock) -> None:
    """Model failure 3: after the fix, a failed attempt arrives for a flow with a parked
    payment. It is parked behind it (not applied first, and not reported as "still
    awaiting payment" while the flow fulfilled the order with the parked one)."""
    source.start_order([("APL", 1)], order_id="o1")
    _pay_during_a_bad_deploy(source, clock, "o1", SUCCEEDED, "evt_paid")
    result = _deliver(source, clock, _body(source, clock, "o1", FAILED, "evt_fail"))
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment")
    assert "parked" in result.reason, result
    assert [p.event_id for p in source.parked()] == ["evt_paid", "evt_fail"]
    _, applied = source.resume_flow("o1")
    assert _outcomes(applied) == [
        ("evt_paid", "settled", "fulfilled"),
        ("evt_fail", "ignored", "fulfilled"),
    ]
    check_invariants(source)


def test_an_underpayment_never_overtakes_a_parked_full_payment(source: Shop, clock: Clock) -> None:
    """Model failure 2's sequence: a full payment parked by a bad deploy, then a short one.

    The short one waits behind the full one, so the order is fulfilled by the full amount
    and the short one is superseded; nothing is held, nothing underpaid is fulfilled.
    """
    source.start_order([("APL", 1)], order_id="o1")
    _pay_during_a_bad_deploy(source, clock, "o1", SUCCEEDED, "evt_paid")
    short = _body(source, clock, "o1", SUCCEEDED, "evt_short", amount=249)
    result = _deliver(source, clock, short)
    assert result.outcome == "recorded" and "parked" in result.reason, result
    _, applied = source.resume_flow("o1")
    assert _outcomes(applied) == [
        ("evt_paid", "settled", "fulfilled"),
        ("evt_short", "already_settled", "fulfilled"),
    ]
    assert source.order("o1").order.paid == 250
    check_invariants(source)


def test_only_a_person_fulfils_a_held_underpayment(source: Shop, clock: Clock) -> None:
    """Model failure 2, shrunk: an underpayment is held; a review that accepts it fulfils it.

    The invariant allows a fulfilled order paid other than its total only when a person
    accepted that payment in review; the library itself holds it.
    """
    source.start_order([("APL", 1)], order_id="o1")
    short = _body(source, clock, "o1", SUCCEEDED, "evt_short", amount=249)
    result = _deliver(source, clock, short)
    assert (result.outcome, result.order_status) == ("recorded", "needs_review")
    check_invariants(source)
    assert source.review("o1", "accept").order.status == "fulfilled"
    facts = check_invariants(source)
    assert facts.accepted == {"o1"}
