"""Settling payment-provider events: verify, decode, deduplicate, route, resume the order.

Everything a delivery decides happens in one ledger transaction, so two processes
settling the same order serialise and exactly one of them acts. Each event id is settled
once, forever (the `webhooks` table is a projection of `WebhookReceived`); each payment
intent only moves forward (open -> succeeded -> refunded), so a second event about the
same payment, or a stale one, is recorded as superseded and not acted on. An event that
comes before its order can take it is parked and handed over when the order's flow waits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import msgspec

from commerce.errors import LiveModeMismatch
from commerce.events import (
    PaymentNotice,
    PaymentSuperseded,
    RefundRecorded,
    WebhookConflict,
    WebhookParked,
    WebhookReceived,
)
from commerce.flows import LATE_PAYMENT_FLOW
from commerce.handlers import order_stream
from commerce.requests import AwaitPayment
from commerce.signature import verify
from commerce.stripe_events import AnyStripeEvent, ChargeRefunded, IntentEvent, decode_event
from flowlib import Engine, FlowError
from ledger import Ledger

Outcome = Literal["settled", "already_settled", "recorded", "refunded", "ignored"]
SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"
PAID = ("succeeded", "refunded", "partially_refunded")


class SettleResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a delivery did: settled / already_settled / recorded / refunded / ignored, and why."""

    outcome: Outcome
    event_id: str
    reason: str
    order_id: str | None = None
    order_status: str | None = None


class _Decision(msgspec.Struct, frozen=True):
    outcome: Outcome
    reason: str
    order_id: str | None = None
    intent_id: str | None = None
    parked: tuple[WebhookParked, ...] = ()  # written to the webhook's stream before its record
    late_flow: str | None = None  # a refund flow whose provider call runs after the commit


def _moved(order_id: str, intent_id: str | None) -> _Decision:
    reason = "the order moved to another ledger: deliver its events there"
    return _Decision("ignored", reason, order_id, intent_id)


def late_flow_id(intent_id: str) -> str:
    """The id of the flow that refunds a late payment on `intent_id` (one per intent)."""
    return f"late:{intent_id}"


class Settler:
    """Applies provider events to orders; the library call a webhook handler makes."""

    def __init__(
        self, ledger: Ledger, engine: Engine, *, livemode: bool, clock: Callable[[], datetime]
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.livemode = livemode
        self.clock = clock

    def settle_webhook(
        self,
        body: bytes,
        signature_header: str | None,
        *,
        secret: str,
        tolerance: int = 300,
        now: datetime | None = None,
    ) -> SettleResult:
        """Verify the signature on the raw `body`, then settle the event it carries."""
        verify(
            body,
            signature_header,
            secret,
            tolerance=tolerance,
            now=int((now or self.clock()).timestamp()),
        )
        return self.settle_event(decode_event(body), body)

    def settle_event(self, event: AnyStripeEvent, body: bytes) -> SettleResult:
        """Settle a decoded event whose origin the caller trusts (`body` is kept as its record)."""
        if event.livemode != self.livemode:
            raise LiveModeMismatch(event.event_id, event.livemode, self.livemode)
        digest = hashlib.sha256(body).hexdigest()
        with self.ledger.transaction():
            seen = self._seen(event.event_id)
            if seen is not None:
                return self._repeat(event, digest, *seen)
            decision = self._decide(event)
            self.ledger.append(
                f"webhook:{event.event_id}",
                [
                    *decision.parked,
                    WebhookReceived(
                        event_id=event.event_id,
                        event_type=event.event_type,
                        digest=digest,
                        outcome=decision.outcome,
                        reason=decision.reason,
                        order_id=decision.order_id,
                        intent_id=decision.intent_id,
                        body=msgspec.Raw(bytes(body)),
                    ),
                ],
                expected_version=0,
            )
        if decision.late_flow is not None:
            self.engine.run_effects(decision.late_flow)  # the refund call, nothing locked
        return self._result(event.event_id, decision)

    # -- deciding --------------------------------------------------------------------

    def _seen(self, event_id: str) -> tuple[str, str, str | None] | None:
        row = self.ledger.db.execute(
            "SELECT digest, outcome, order_id FROM webhooks WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _repeat(
        self, event: AnyStripeEvent, digest: str, stored: str, outcome: str, order_id: str | None
    ) -> SettleResult:
        if digest == stored:
            reason = f"event {event.event_id} was delivered before ({outcome})"
            return self._result(event.event_id, _Decision("already_settled", reason, order_id))
        stream = f"webhook:{event.event_id}"
        self.ledger.append(stream, [WebhookConflict(event_id=event.event_id, digest=digest)])
        reason = f"event {event.event_id} came again with a different body; the first one stands"
        return self._result(event.event_id, _Decision("recorded", reason, order_id))

    def _decide(self, event: AnyStripeEvent) -> _Decision:
        if isinstance(event, IntentEvent) and event.event_type in (SUCCEEDED, FAILED):
            return self._payment(event)
        if isinstance(event, ChargeRefunded):
            return self._refund(event)
        return _Decision("ignored", f"event type {event.event_type} is not acted on")

    def _intent(self, intent_id: str | None) -> tuple[str, int, str, str] | None:
        row = self.ledger.db.execute(
            "SELECT order_id, amount, currency, status FROM payment_intents WHERE intent_id = ?",
            (intent_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def _payment(self, event: IntentEvent) -> _Decision:
        succeeded = event.event_type == SUCCEEDED
        notice = PaymentNotice(
            event_id=event.event_id,
            intent_id=event.intent_id,
            succeeded=succeeded,
            amount=event.amount_received if succeeded else event.amount,
            currency=event.currency,
            reason=event.error_message or event.error_code or "",
        )
        intent = self._intent(event.intent_id)
        if intent is None:
            return self._park(event.order_id, notice, "its payment intent is not known yet")
        order_id, _, _, status = intent
        order_status, refunded = self._order(order_id)
        if order_status == "moved":
            return _moved(order_id, event.intent_id)
        if status in PAID:
            outcome: Outcome = "already_settled" if succeeded else "ignored"
            why = f"the payment intent is already {status}"
            return self._supersede(order_id, event, event.intent_id, why, outcome)
        if succeeded and refunded >= notice.amount:
            why = "the payment was refunded in full before it was settled"
            self.engine.cancel(order_id, why)  # no-op unless the order still waits
            return self._late_payment(order_id, notice, refunded, why)
        return self._resume(order_id, event, notice, refunded)

    def _resume(
        self, order_id: str, event: IntentEvent, notice: PaymentNotice, refunded: int
    ) -> _Decision:
        try:
            resumed = self.engine.resume(order_id, notice, awaiting=AwaitPayment)
        except FlowError as exc:
            return self._park(order_id, notice, f"the order's flow cannot take it now ({exc})")
        status = self._order_status(order_id)
        if resumed.resumed:
            if notice.succeeded and status in ("fulfilled", "partially_refunded"):
                return _Decision("settled", f"paid; order {status}", order_id, notice.intent_id)
            reason = (
                "payment attempt failed; still awaiting payment"
                if not notice.succeeded
                else f"payment kept; order is {status}"
            )
            return _Decision("recorded", reason, order_id, notice.intent_id)
        if resumed.status not in ("completed", "cancelled"):
            return self._park(order_id, notice, f"the order's flow is {resumed.status}")
        if not notice.succeeded:
            why = f"payment attempt failed after the order was {status}"
            return self._supersede(order_id, event, notice.intent_id, why, "ignored")
        return self._late_payment(order_id, notice, refunded, f"the order was {status}")

    def _late_payment(
        self, order_id: str, notice: PaymentNotice, refunded: int, why: str
    ) -> _Decision:
        """Record a payment the order can no longer take, and give back what is not yet."""
        flow_id = late_flow_id(notice.intent_id)
        self.engine.start(
            LATE_PAYMENT_FLOW, order_id, notice, refunded, flow_id=flow_id, defer_effects=True
        )
        return _Decision(
            "refunded",
            f"payment kept and refunded: {why}",
            order_id,
            notice.intent_id,
            late_flow=flow_id,
        )

    def _refund(self, event: ChargeRefunded) -> _Decision:
        intent = self._intent(event.intent_id)
        if intent is None:
            return _Decision(
                "ignored",
                f"refund for unknown payment intent {event.intent_id}",
                None,
                event.intent_id,
            )
        order_id, amount, currency, status = intent
        order_status, done = self._order(order_id)
        if order_status == "moved":
            return _moved(order_id, event.intent_id)
        if event.amount_refunded <= done or status in ("refunded",):
            why = f"refunds of {done} were already recorded"
            return self._supersede(order_id, event, event.intent_id, why, "ignored")
        full = event.amount_refunded >= amount
        self.ledger.append(
            order_stream(order_id),
            [
                RefundRecorded(
                    order_id=order_id,
                    intent_id=event.intent_id or "",
                    event_id=event.event_id,
                    amount_refunded=event.amount_refunded,
                    currency=currency,
                    full=full,
                )
            ],
        )
        reason = (
            "refunded in full"
            if full
            else f"partially refunded ({event.amount_refunded} of {amount})"
        )
        return _Decision("refunded", reason, order_id, event.intent_id)

    # -- recording -------------------------------------------------------------------

    def _park(self, order_id: str | None, notice: PaymentNotice, why: str) -> _Decision:
        parked = WebhookParked(
            event_id=notice.event_id, intent_id=notice.intent_id, payment=notice, order_id=order_id
        )
        reason = f"parked: {why}"
        return _Decision("recorded", reason, order_id, notice.intent_id, parked=(parked,))

    def _supersede(
        self,
        order_id: str,
        event: AnyStripeEvent,
        intent_id: str | None,
        why: str,
        outcome: Outcome,
    ) -> _Decision:
        superseded = PaymentSuperseded(
            order_id=order_id,
            intent_id=intent_id or "",
            event_id=event.event_id,
            event_type=event.event_type,
            reason=why,
        )
        self.ledger.append(order_stream(order_id), [superseded])
        return _Decision(outcome, f"superseded: {why}", order_id, intent_id)

    def _order(self, order_id: str) -> tuple[str | None, int]:
        """The order's status and what was refunded of it so far (one read of its row)."""
        row = self.ledger.db.execute(
            "SELECT status, refunded FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return (None, 0) if row is None else (str(row[0]), int(row[1]))

    def _order_status(self, order_id: str) -> str | None:
        return self._order(order_id)[0]

    def _result(self, event_id: str, decision: _Decision) -> SettleResult:
        status = self._order_status(decision.order_id) if decision.order_id else None
        return SettleResult(
            outcome=decision.outcome,
            event_id=event_id,
            reason=decision.reason,
            order_id=decision.order_id,
            order_status=status,
        )
