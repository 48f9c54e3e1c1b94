"""Parked payments are never stranded (issue 11, case 2): a stuck flow is resumed after the
fix and takes what it missed; a payment on an intent orderflow did not create goes to review."""

from __future__ import annotations

import json

import pytest
from broken_deploy import deployed_broken_code
from shop_helpers import (
    ShopClock,
    after_deferred_calls,
    body_for,
    check_all,
    deliver,
    snapshot,
    stock,
    unchanged,
)

from commerce import Shop
from flowlib import NondeterminismError

pytestmark = pytest.mark.both_backends


def _paid_while_broken(shop: Shop) -> bytes:
    body = body_for(shop, "o1", "payment_intent.succeeded", event_id="evt_paid")
    with deployed_broken_code():
        result = deliver(shop, body)
        assert result.outcome == "recorded" and "parked" in result.reason
        assert shop.engine.status("o1").status == "stuck"
        assert deliver(shop, body).outcome == "already_settled"  # Stripe's redelivery
    return body


def test_resume_after_the_fix_applies_the_parked_payment(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    body = _paid_while_broken(stocked)
    (parked,) = stocked.parked()
    assert (parked.event_id, parked.order_id, parked.notice.amount) == ("evt_paid", "o1", 2500)
    state, applied = stocked.resume_flow("o1")
    assert [(r.event_id, r.outcome) for r in applied] == [("evt_paid", "settled")]
    assert (state.status, stocked.order("o1").order.status) == ("completed", "fulfilled")
    assert stock(stocked, "MUG") == (8, 0, 2)
    assert stocked.parked() == []
    assert deliver(stocked, body).outcome == "already_settled"
    check_all(stocked)


def test_a_timeout_never_overtakes_a_parked_payment(stocked: Shop, shop_clock: ShopClock) -> None:
    """Without an explicit resume, the next timers run applies it before the expiry fires."""
    stocked.start_order([("MUG", 2)], order_id="o1")
    _paid_while_broken(stocked)
    shop_clock.advance(3600)
    stocked.fire_timers()
    assert stocked.order("o1").order.status == "fulfilled"
    assert stocked.parked() == []
    check_all(stocked)


def test_resume_while_still_broken_writes_nothing(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    _paid_while_broken(stocked)
    with deployed_broken_code():
        before = snapshot(stocked)
        with pytest.raises(NondeterminismError):
            stocked.resume_flow("o1")
        assert stocked.apply_parked() == []
        assert snapshot(stocked) == before
    assert len(stocked.parked()) == 1


def test_a_parked_payment_for_an_order_that_closed_meanwhile_is_refunded(
    stocked: Shop, shop_clock: ShopClock
) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    _paid_while_broken(stocked)
    # The order's own timer closes it (the engine alone: the shop's sweep is skipped).
    shop_clock.advance(3600)
    stocked.engine.fire_due_timers(shop_clock())
    assert stocked.order("o1").order.status == "expired"
    (result,) = stocked.apply_parked("o1")
    assert (result.outcome, result.order_status) == ("refunded", "refunded")
    assert stocked.parked() == []
    check_all(stocked)


def _foreign(shop: Shop, kind: str, event_id: str) -> bytes:
    return body_for(shop, "o1", kind, event_id=event_id, intent_id="pi_made_in_the_dashboard")


def test_a_payment_on_an_intent_orderflow_did_not_create_goes_to_review(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    result = deliver(stocked, _foreign(stocked, "payment_intent.succeeded", "evt_f"))
    assert (result.outcome, result.order_status) == ("recorded", "needs_review")
    assert "held for review" in result.reason and "pi_made_in_the_dashboard" in result.reason
    row = stocked.order("o1").order
    assert row.paid == 2500  # the money is recorded
    assert "AwaitPayment" not in stocked.engine.status("o1").awaits  # nor will it expire
    assert after_deferred_calls(stocked).status == "cancelled"
    assert stocked.provider.intents[row.intent_id].status == "canceled"  # type: ignore[attr-defined,index]
    assert stocked.parked() == []
    # The same payment reported again (another event about that intent) is deduplicated.
    again = deliver(stocked, _foreign(stocked, "payment_intent.succeeded", "evt_f2"))
    assert again.outcome == "already_settled"
    assert stocked.review("o1", "refund").order.status == "refunded"
    (refund,) = stocked.provider.refunds.values()  # type: ignore[attr-defined]
    assert (refund.intent_id, refund.amount) == ("pi_made_in_the_dashboard", 2500)
    check_all(stocked)


def test_an_unknown_intent_with_no_known_order_stays_listed(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    body = _foreign(stocked, "payment_intent.succeeded", "evt_u")
    doc = json.loads(body)
    doc["data"]["object"]["metadata"] = {}
    assert "parked" in deliver(stocked, json.dumps(doc).encode()).reason
    with unchanged(stocked):
        assert stocked.apply_parked() == []
    assert [p.event_id for p in stocked.parked()] == ["evt_u"]
