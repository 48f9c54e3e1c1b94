"""Group commit in the library: `Shop.receive_batch` settles several deliveries in one write
transaction, each in its own savepoint, and answers each as `receive` would have (on both
backends; the one-commit count reads SQLite's statement trace)."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import Targets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shop_helpers import (
    SECRET,
    ShopClock,
    body_for,
    check_all,
    count_events,
    stocked_shop,
    tables,
    unchanged,
)
from strategies import deliveries

from commerce import (
    FakeProvider,
    LiveModeMismatch,
    SettleResult,
    Shop,
    SignatureMismatch,
    StripeWebhooks,
    sign,
)

SOURCE = StripeWebhooks(SECRET)
ORDERS = {"o0": 1, "o1": 2, "o2": 3}


def _open(path: Path | str, clock: ShopClock) -> Shop:
    shop = Shop.open(path, provider=FakeProvider(), clock=clock, synchronous="NORMAL")
    stocked_shop(shop)
    for order_id, quantity in ORDERS.items():
        shop.start_order([("MUG", quantity)], order_id=order_id)
    return shop


def _delivery(shop: Shop, action: tuple[str, ...]) -> tuple[StripeWebhooks, bytes, dict[str, str]]:
    _, order_id, kind, pool, partial = action
    refunded = 100 if partial == "partial" and kind == "charge.refunded" else None
    body = body_for(
        shop, order_id, kind, event_id=f"{pool}_{order_id}", created=0, amount_refunded=refunded
    )
    return SOURCE, body, {"Stripe-Signature": sign(body, SECRET, int(shop.clock().timestamp()))}


def _outcome(answer: SettleResult | Exception) -> tuple[str, ...]:
    if isinstance(answer, SettleResult):
        return (answer.outcome, answer.order_id or "", answer.order_status or "")
    return ("error", type(answer).__name__)


@pytest.mark.both_backends
def test_batches_answer_and_record_exactly_what_one_at_a_time_does(targets: Targets) -> None:
    """For all delivery histories cut into batches of any sizes: the same answers, the same
    tables, the same events in the same order, as settling each delivery alone (a decision
    that calls a provider after its commit ends its transaction, so what follows sees it)."""

    @settings(
        max_examples=targets.examples(25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(plays=deliveries(sorted(ORDERS)), cuts=st.lists(st.integers(1, 5), min_size=1))
    def check(plays: list[tuple[str, ...]], cuts: list[int]) -> None:
        _alone_and_batched(targets, plays, cuts)

    check()


def _alone_and_batched(targets: Targets, plays: list[tuple[str, ...]], cuts: list[int]) -> None:
    alone_clock, batch_clock = ShopClock(), ShopClock()
    with (
        targets.fresh("alone") as alone_at,
        targets.fresh("batch") as batch_at,
        _open(alone_at, alone_clock) as alone,
        _open(batch_at, batch_clock) as batched,
    ):
        one_by_one: list[tuple[str, ...]] = []
        grouped: list[tuple[str, ...]] = []
        pending: list[tuple[str, ...]] = []

        def flush() -> None:
            sizes = iter(cuts * (len(pending) + 1))
            while pending:
                size = next(sizes)
                chunk, pending[:] = pending[:size], pending[size:]
                batch = [_delivery(batched, action) for action in chunk]
                grouped.extend(_outcome(a) for a in batched.receive_batch(batch))

        for action in plays:
            if action[0] == "tick":
                flush()
                for shop, clock in ((alone, alone_clock), (batched, batch_clock)):
                    clock.advance(1800)
                    shop.fire_timers()
                continue
            source, body, headers = _delivery(alone, action)
            one_by_one.append(_outcome(alone.receive(source, body, headers)))
            pending.append(action)
        flush()
        assert grouped == one_by_one
        assert tables(batched) == tables(alone)
        rows = "SELECT stream, version, type, data FROM events ORDER BY position"
        assert batched.ledger.query(rows) == alone.ledger.query(rows)
        check_all(batched)


def test_a_batch_commits_once_and_a_refused_delivery_is_answered_alone(tmp_path: Path) -> None:
    clock = ShopClock()
    with _open(tmp_path / "shop.db", clock) as shop:
        good = [_delivery(shop, ("d", o, "payment_intent.succeeded", "e", "full")) for o in ORDERS]
        forged = (SOURCE, good[0][1], {"Stripe-Signature": sign(good[0][1], "whsec_x", 0)})
        other_mode = StripeWebhooks(SECRET)
        live = body_for(shop, "o1", "payment_intent.succeeded", event_id="evt_live", livemode=True)
        wrong_mode = (other_mode, live, {"Stripe-Signature": sign(live, SECRET, clock.ts())})
        statements: list[str] = []
        shop.ledger.db.conn.set_trace_callback(statements.append)
        answers = shop.receive_batch([good[0], forged, good[1], wrong_mode, good[2], good[0]])
        shop.ledger.db.conn.set_trace_callback(None)
        kinds = [_outcome(a)[0] for a in answers]
        assert kinds == ["settled", "error", "settled", "error", "settled", "already_settled"]
        assert isinstance(answers[1], SignatureMismatch)
        assert isinstance(answers[3], LiveModeMismatch)
        assert statements.count("COMMIT") == 1  # one commit for the whole batch
        assert count_events(shop, "OrderFulfilled") == 3
        check_all(shop)


@pytest.mark.both_backends
def test_a_batch_of_nothing_authentic_writes_nothing(targets: Targets) -> None:
    clock = ShopClock()
    with _open(targets.new(), clock) as shop:
        body = body_for(shop, "o0", "payment_intent.succeeded", event_id="e1")
        forged = (SOURCE, body, {"Stripe-Signature": sign(body, "whsec_x", clock.ts())})
        with unchanged(shop):
            (answer,) = shop.receive_batch([forged])
        assert isinstance(answer, SignatureMismatch)


@pytest.mark.both_backends
def test_a_late_payment_ends_its_transaction_so_the_next_delivery_sees_its_refund(
    targets: Targets,
) -> None:
    clock = ShopClock()
    with _open(targets.new(), clock) as shop:
        clock.advance(1800)
        shop.fire_timers()  # every order expired: a payment now is late, and refunded
        late = _delivery(shop, ("d", "o0", "payment_intent.succeeded", "e", "full"))
        again = _delivery(shop, ("d", "o0", "payment_intent.succeeded", "f", "full"))
        other = _delivery(shop, ("d", "o1", "payment_intent.succeeded", "e", "full"))
        answers = shop.receive_batch([late, again, other])
        assert [_outcome(a)[::2] for a in answers] == [
            ("refunded", "refunded"),
            ("already_settled", "refunded"),  # after the refund, as it would be alone
            ("refunded", "refunded"),
        ]
        assert count_events(shop, "RefundIssued") == 2
        check_all(shop)
