"""Settling payment-provider events: authenticate, decode, deduplicate, route, resume the order.

Each provider's `WebhookSource` turns a delivery into a neutral `Inbound`; from there on
nothing here knows which provider sent it. Everything a delivery decides happens in one
ledger transaction, so two processes settling the same order serialise and exactly one of
them acts. Each event id is settled
once, forever (the `webhooks` table is a projection of `WebhookReceived`); each payment
intent only moves forward (open -> succeeded -> refunded), so a second event about the
same payment, or a stale one, is recorded as superseded and not acted on. An event that
comes before its order can take it is parked and handed over when the order's flow waits.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from commerce import readmodel
from commerce.conflicts import again_on_conflict
from commerce.errors import CommerceError, LiveModeMismatch
from commerce.events import (
    AnyCommerceEvent,
    CommerceEvent,
    OrderFulfilled,
    PaymentDisputed,
    PaymentFailed,
    PaymentIntentAdopted,
    PaymentNotice,
    PaymentReceived,
    PaymentSuperseded,
    RefundRecorded,
    StockReleased,
    WebhookConflict,
    WebhookParked,
    WebhookReceived,
    WebhookUnparked,
)
from commerce.flows import LATE_PAYMENT_FLOW
from commerce.handlers import OrderHandlers, hold_events, order_stream
from commerce.money import Money
from commerce.order import ORDER_EVENTS, OrderState, fold
from commerce.providers.base import (
    Cancellation,
    Inbound,
    NotActedOn,
    Orphan,
    RefundReport,
    WebhookSource,
)
from commerce.requests import AwaitPayment
from commerce.review import held_stock
from flowlib import Engine, FlowError, stream_of
from ledger import Ledger, LedgerError

Outcome = Literal["settled", "already_settled", "recorded", "refunded", "ignored"]
PAID = ("succeeded", "refunded", "partially_refunded")
_notice = msgspec.json.Decoder(PaymentNotice).decode


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
    order_status: str | None = None  # the status this event left the order in, if not now's


def _moved(order_id: str, intent_id: str | None) -> _Decision:
    reason = "the order moved to another ledger: deliver its events there"
    return _Decision("ignored", reason, order_id, intent_id)


Delivery = tuple[Inbound, bytes]
"""An authentic event and the raw body it came in."""
_Settled = tuple[str, _Decision] | SettleResult  # decided now (event id, decision), or a repeat
_Decided = _Settled | CommerceError


class _StillParked(Exception):
    """A parked event that still cannot be applied: its savepoint is undone."""


def _money(amount: int, currency: str) -> str:
    return str(Money(amount, currency))


def late_flow_id(intent_id: str) -> str:
    """The id of the flow that refunds a late payment on `intent_id` (one per intent)."""
    return f"late:{intent_id}"


class Settler:
    """Applies provider events to orders; the library call a webhook handler makes."""

    def __init__(
        self,
        ledger: Ledger,
        engine: Engine,
        *,
        livemode: bool,
        clock: Callable[[], datetime],
        handlers: OrderHandlers | None = None,
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.handlers = handlers  # the engine's: tells which order events a flow recorded
        self.livemode = livemode
        self.clock = clock
        self._calls = threading.local()  # .out: this thread's decision calls out after commit

    def receive(
        self,
        source: WebhookSource,
        body: bytes,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> SettleResult:
        """Authenticate a delivery of `source`'s from its raw `body` and headers, then settle it."""
        return self.settle(self.authentic(source, body, headers, now=now), body)

    def authentic(
        self,
        source: WebhookSource,
        body: bytes,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> Inbound:
        """The event a delivery carries, once `source` has authenticated and decoded it.

        This (which may ask the provider to confirm an unsigned notice) runs before any
        settle transaction, so nothing is locked while it waits.
        """
        source.authenticate(body, headers, now=int((now or self.clock()).timestamp()))
        return source.decode(body)

    def settle(self, event: Inbound, body: bytes) -> SettleResult:
        """Settle an authentic event (the caller vouches for it); `body` is kept as its record."""
        self._check_mode(event)
        decided = again_on_conflict(self.ledger, self._settled_alone, event, body)
        return self._answer(decided)

    def _settled_alone(self, event: Inbound, body: bytes) -> _Settled:
        with self.ledger.transaction():
            return self._settle_in(event, body)

    def settle_batch(self, deliveries: Sequence[Delivery]) -> list[SettleResult | CommerceError]:
        """Settle several authentic events with as few commits as they allow (group commit).

        Each is decided in a savepoint of its own, in the order given: one that is refused
        (a `CommerceError`, e.g. `LiveModeMismatch`) is undone and answered alone with its
        error, and the others still commit. Nothing is answered before its commit. A
        decision that calls a provider once committed (a late payment's refund, a cancel)
        ends its transaction, and that call is made before the next delivery is decided, so
        every delivery sees what it would have seen settled alone. A storage failure
        (`LedgerError`) undoes the transaction it happened in and is raised.
        """
        answers: list[SettleResult | CommerceError] = []
        rest = list(deliveries)
        while rest:
            decided, rest = again_on_conflict(self.ledger, self._settle_some, rest)
            answers += [d if isinstance(d, CommerceError) else self._answer(d) for d in decided]
        return answers

    def _settle_some(
        self, deliveries: list[tuple[Inbound, bytes]]
    ) -> tuple[
        list[tuple[str, _Decision] | SettleResult | CommerceError], list[tuple[Inbound, bytes]]
    ]:
        """One transaction: deliveries up to the first that calls out after its commit."""
        decided: list[tuple[str, _Decision] | SettleResult | CommerceError] = []
        with self.ledger.transaction():
            for done, (event, body) in enumerate(deliveries, 1):
                self._calls.out = False
                try:
                    self._check_mode(event)
                    with self.ledger.transaction():  # a savepoint: undone alone if refused
                        item = self._settle_in(event, body)
                except CommerceError as exc:
                    decided.append(exc)
                    continue
                decided.append(item)
                late = isinstance(item, tuple) and item[1].late_flow is not None
                if late or self._calls.out:
                    return decided, deliveries[done:]
        return decided, []

    def _check_mode(self, event: Inbound) -> None:
        if event.livemode is not None and event.livemode != self.livemode:
            raise LiveModeMismatch(event.event_id, event.livemode, self.livemode)

    def _settle_in(self, event: Inbound, body: bytes) -> _Settled:
        """Decide and record one delivery inside the open transaction."""
        digest = hashlib.sha256(body).hexdigest()
        if not self.ledger.serialised:  # before any check: one decides, once, per order
            self.ledger.lock(f"webhook:{event.event_id}", *self._order_keys(event))
        seen = readmodel.webhook_seen(self.ledger, event.event_id)
        if seen is not None:
            return self._repeat(event, digest, *seen)
        decision = self._left(self._decide(event))
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
                    provider=event.provider,
                ),
            ],
            expected_version=0,
        )
        return event.event_id, decision

    def _answer(self, decided: _Settled) -> SettleResult:
        """After the commit: run the refund a decision left, then say what it did."""
        if isinstance(decided, SettleResult):
            return decided
        event_id, decision = decided
        if decision.late_flow is not None:
            self.engine.run_effects(decision.late_flow)  # the refund call, nothing locked
        return self._result(event_id, decision)

    # -- deciding --------------------------------------------------------------------

    def _repeat(
        self, event: Inbound, digest: str, stored: str, outcome: str, order_id: str | None
    ) -> SettleResult:
        if digest == stored:
            reason = f"event {event.event_id} was delivered before ({outcome})"
            return self._result(event.event_id, _Decision("already_settled", reason, order_id))
        stream = f"webhook:{event.event_id}"
        self.ledger.append(stream, [WebhookConflict(event_id=event.event_id, digest=digest)])
        reason = f"event {event.event_id} came again with a different body; the first one stands"
        return self._result(event.event_id, _Decision("recorded", reason, order_id))

    def _order_keys(self, event: Inbound) -> list[str]:
        """The lock key of the order the event is about (its intent's, else the hint's), if any.

        The intent's order never changes once recorded, so it may be read before the lock.
        """
        intent_id = getattr(event.fact, "intent_id", None)
        intent = readmodel.intent(self.ledger, intent_id) if intent_id else None
        order_id = intent.order_id if intent is not None else event.order_hint
        return [stream_of(order_id), order_stream(order_id)] if order_id else []

    def _decide(self, event: Inbound) -> _Decision:
        fact = event.fact
        if isinstance(fact, PaymentNotice):
            return self._payment(fact, event.event_type, event.order_hint)
        if isinstance(fact, RefundReport):
            return self._refund(event, fact)
        if isinstance(fact, Cancellation):
            return self._canceled(event, fact.intent_id)
        if isinstance(fact, Orphan):
            return _Decision("recorded", fact.reason, None, fact.intent_id)
        assert isinstance(fact, NotActedOn)
        return _Decision("ignored", fact.reason)

    def _payment(
        self, notice: PaymentNotice, event_type: str, hint: str | None, before: int | None = None
    ) -> _Decision:
        """Decide a payment event; `before`: only parked events older than that row are ahead."""
        standing = readmodel.standing(self.ledger, notice, before)
        if standing is None:
            return self._unknown_intent(notice, hint)
        order_id, status, order = standing.order_id, standing.intent_status, standing.order
        refunded = order.refunded if order is not None else 0
        if order is not None and order.status == "moved":
            return _moved(order_id, notice.intent_id)
        if standing.parked_ahead:
            why = "an earlier payment event for this order is parked: this one follows it"
            return self._park(order_id, notice, why)
        if status in PAID:
            outcome: Outcome = "already_settled" if notice.succeeded else "ignored"
            why = f"the payment intent is already {status}"
            return self._supersede(
                order_id, notice.event_id, event_type, notice.intent_id, why, outcome
            )
        if notice.succeeded and 0 < notice.amount <= refunded:
            why = "the payment was refunded in full before it was settled"
            if not self._cancel(order_id, why):
                return self._park(order_id, notice, "the order's flow cannot take it now")
            return self._late_payment(order_id, notice, refunded, why)
        return self._resume(order_id, event_type, notice, order)

    def _unknown_intent(self, notice: PaymentNotice, hint: str | None) -> _Decision:
        """A payment on an intent we do not know: park it, or hold it on the order it names."""
        status = self._order_status(hint) if hint else None
        if hint is None or status in (None, "placed"):  # placed: its intent may still come
            return self._park(hint, notice, "its payment intent is not known yet")
        if status == "moved":
            return _moved(hint, notice.intent_id)
        why = f"payment intent {notice.intent_id} was not created by orderflow for this order"
        if not notice.succeeded:
            return _Decision("ignored", f"a failed attempt: {why}", hint, notice.intent_id)
        if status == "awaiting_payment" and not self._cancel(hint, f"paid elsewhere: {why}"):
            return self._park(hint, notice, "the order's flow cannot take it now")
        adopted = PaymentIntentAdopted(
            order_id=hint,
            intent_id=notice.intent_id,
            amount=notice.amount,
            currency=notice.currency,
        )
        self.ledger.append(order_stream(hint), [adopted])
        return self._hold(hint, notice, why)

    def _resume(
        self, order_id: str, event_type: str, notice: PaymentNotice, order: OrderState | None
    ) -> _Decision:
        """Hand the payment to the order's flow (`order`: its state as it stood before)."""
        try:
            with self._recording() as recorded:
                resumed = self.engine.resume(order_id, notice, awaiting=AwaitPayment)
        except FlowError as exc:
            return self._park(order_id, notice, f"the order's flow cannot take it now ({exc})")
        refunded = order.refunded if order is not None else 0
        status = self._status_after(order_id, order, recorded)
        if resumed.resumed:
            if notice.succeeded and status in ("fulfilled", "partially_refunded"):
                why = f"paid; order {status}"
                return _Decision("settled", why, order_id, notice.intent_id, order_status=status)
            reason = (
                "payment attempt failed; still awaiting payment"
                if not notice.succeeded
                else f"payment kept; order is {status}"
            )
            return _Decision("recorded", reason, order_id, notice.intent_id, order_status=status)
        if resumed.status not in ("completed", "cancelled"):
            return self._park(order_id, notice, f"the order's flow is {resumed.status}")
        if not notice.succeeded:
            why = f"payment attempt failed after the order was {status}"
            return self._supersede(
                order_id, notice.event_id, event_type, notice.intent_id, why, "ignored"
            )
        return self._late_payment(order_id, notice, refunded, f"the order was {status}")

    def _late_payment(
        self, order_id: str, notice: PaymentNotice, refunded: int, why: str
    ) -> _Decision:
        """Record a payment the order can no longer take, and give back what is not yet."""
        if notice.amount <= 0:
            return self._hold(order_id, notice, f"a payment of {notice.amount} after {why}")
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

    def _canceled(self, event: Inbound, intent_id: str) -> _Decision:
        """The provider cancelled the intent: close an order still awaiting payment on it."""
        intent = readmodel.intent(self.ledger, intent_id)
        if intent is None:
            why = f"cancellation of unknown payment intent {intent_id}"
            return _Decision("ignored", why, None, intent_id)
        order_id, status = intent.order_id, intent.status
        order_status = self._order_status(order_id)
        if order_status == "moved":
            return _moved(order_id, intent_id)
        if order_status != "awaiting_payment" or status != "open":
            why = f"the order is {order_status} and its payment intent {status}"
            return self._supersede(
                order_id, event.event_id, event.event_type, intent_id, why, "ignored"
            )
        if not self._cancel(order_id, "the payment intent was canceled at the provider"):
            why = "the order's flow cannot take the cancellation now: cancel the order by hand"
            return _Decision("recorded", why, order_id, intent_id)
        why = "payment intent canceled: the order is cancelled and its stock released"
        return _Decision("recorded", why, order_id, intent_id)

    def _refund(self, event: Inbound, report: RefundReport) -> _Decision:
        intent_id = report.intent_id
        intent = readmodel.intent(self.ledger, intent_id)
        if intent is None:
            why = f"refund for unknown payment intent {intent_id}"
            return _Decision("ignored", why, None, intent_id)
        order_id, amount, currency, status = msgspec.structs.astuple(intent)
        order = readmodel.order_state(self.ledger, order_id)
        order_status, done = (None, 0) if order is None else (order.status, order.refunded)
        if order_status == "moved":
            return _moved(order_id, intent_id)
        if report.amount_refunded <= done or status in ("refunded",):
            why = f"refunds of {_money(done, currency)} were already recorded"
            return self._supersede(
                order_id, event.event_id, event.event_type, intent_id, why, "ignored"
            )
        full = report.full or report.amount_refunded >= amount  # the charge, or all of it
        recorded = RefundRecorded(
            order_id=order_id,
            intent_id=intent_id,
            event_id=event.event_id,
            amount_refunded=report.amount_refunded,
            currency=currency,
            full=full,
        )
        self.ledger.append(order_stream(order_id), [recorded, *self._release_held(order_id, full)])
        given = _money(report.amount_refunded, currency)
        if status == "open":
            why = f"refund of {given} recorded before its payment; the order is {order_status}"
            return _Decision("recorded", why, order_id, intent_id)
        reason = (
            "refunded in full"
            if full
            else f"partially refunded ({given} of {_money(amount, currency)})"
        )
        return _Decision("refunded", reason, order_id, intent_id)

    def _release_held(self, order_id: str, full: bool) -> list[StockReleased]:
        """A full refund of a payment held for review releases the stock the order holds."""
        if not full or self._order_status(order_id) != "needs_review":
            return []
        held = held_stock(self.ledger.read(order_stream(order_id), AnyCommerceEvent))
        reason = "refunded in full while held for review"
        return [StockReleased(order_id=order_id, lines=held, reason=reason)] if held else []

    # -- parked events ---------------------------------------------------------------

    def apply_parked(self, event_id: str) -> list[SettleResult]:
        """Decide a parked event again, as if delivered now; [] if it must stay parked.

        It ends applied (its order's flow took it), refunded (the order had closed) or
        held for review; one whose order is still unknown, or whose flow still cannot take
        it, stays parked and nothing is written. A flow that takes it and waits again takes
        the events parked behind it too: each of those is decided here as well, and the
        results come oldest first, each with the status that event left the order in.
        """
        with self.ledger.transaction():
            row = readmodel.parked_row(self.ledger, event_id)
            if row is None:
                return []
            seq, intent_id, hint, raw, event_type = msgspec.structs.astuple(row)
            behind = readmodel.parked_behind(self.ledger, seq, intent_id)
            known = readmodel.intent(self.ledger, intent_id)
            order_id = known.order_id if known else hint
            since = self.ledger.version(order_stream(order_id)) if order_id else 0
            try:
                decision = self._redecide(event_id, seq, intent_id, hint, raw, event_type)
            except _StillParked:
                return []
            decisions = [(event_id, decision)]
            taken = [b for b in behind if not readmodel.is_parked(self.ledger, b[0])]
            owner = decision.order_id
            if taken and owner is not None:  # its flow took them too, when it waited again
                done = self.ledger.read(order_stream(owner), AnyCommerceEvent, from_version=since)
                if not _notice(raw).succeeded:  # it left the order awaiting payment
                    decision = msgspec.structs.replace(decision, order_status="awaiting_payment")
                    decisions = [(event_id, decision)]
                for other_id, other_raw, other_type in taken:
                    other = self._taken(owner, _notice(other_raw), other_type, hint, done)
                    decisions.append((other_id, other))
        results = []
        for decided_id, decided in decisions:
            if decided.late_flow is not None:
                self.engine.run_effects(decided.late_flow)
            results.append(self._result(decided_id, decided))
        return results

    def _taken(
        self,
        order_id: str,
        notice: PaymentNotice,
        event_type: str,
        hint: str | None,
        done: list[AnyCommerceEvent],
    ) -> _Decision:
        """What the order's flow did with a parked event it took; decided now if it did nothing.

        A flow that ends (fulfilled, held) with parked events still in hand took them
        without applying them: each is decided now, as a delivery would be (superseded).
        """
        intent_id = notice.intent_id
        mine = [e for e in done if getattr(e, "event_id", None) == notice.event_id]
        if any(isinstance(e, PaymentFailed) for e in mine):
            why = "payment attempt failed; still awaiting payment"
            return _Decision("recorded", why, order_id, intent_id, order_status="awaiting_payment")
        held = [e for e in mine if isinstance(e, PaymentDisputed)]
        if held:
            why = f"held for review: {held[-1].reason}"
            return _Decision("recorded", why, order_id, intent_id, order_status="needs_review")
        if any(isinstance(e, PaymentReceived) for e in mine) and any(
            isinstance(e, OrderFulfilled) for e in done
        ):
            why = "paid; order fulfilled"
            return _Decision("settled", why, order_id, intent_id, order_status="fulfilled")
        decision = self._payment(notice, event_type, hint)
        if decision.parked:  # its flow cannot decide it now after all: parked again
            self.ledger.append(f"webhook:{notice.event_id}", list(decision.parked))
        return decision

    def _redecide(
        self,
        event_id: str,
        seq: int,
        intent_id: str,
        hint: str | None,
        raw: str,
        event_type: str | None,
    ) -> _Decision:
        known = readmodel.intent(self.ledger, intent_id)
        order_id = known.order_id if known else hint
        if order_id is None:
            raise _StillParked
        with self.ledger.transaction():  # a savepoint: undone if the event stays parked
            unparked = WebhookUnparked(event_id=event_id, intent_id=intent_id, order_id=order_id)
            self.ledger.append(order_stream(order_id), [unparked])
            decision = self._payment(_notice(raw), event_type or "parked", hint, before=seq)
            if decision.parked:
                raise _StillParked
        return decision

    # -- recording -------------------------------------------------------------------

    def _park(self, order_id: str | None, notice: PaymentNotice, why: str) -> _Decision:
        parked = WebhookParked(
            event_id=notice.event_id, intent_id=notice.intent_id, payment=notice, order_id=order_id
        )
        reason = f"parked: {why}"
        return _Decision("recorded", reason, order_id, notice.intent_id, parked=(parked,))

    def _hold(self, order_id: str, notice: PaymentNotice, why: str) -> _Decision:
        """Record the payment on the order and hold it for a person to review."""
        self.ledger.append(order_stream(order_id), hold_events(order_id, notice, why, self.clock()))
        return _Decision("recorded", f"held for review: {why}", order_id, notice.intent_id)

    def _cancel(self, order_id: str, why: str) -> bool:
        """Cancel the order's flow if it still waits; False if its flow cannot be run now.

        Its intent is cancelled at the provider once this transaction has committed (no
        provider call while the write lock is held).
        """
        try:
            self.engine.cancel(order_id, why, defer_effects=True)
        except FlowError:
            return False
        self.ledger.after_commit(lambda: self._run_effects(order_id))
        self._calls.out = True
        return True

    def _run_effects(self, flow_id: str) -> None:
        """After a commit: the provider call the flow has open (a failure here is not the
        delivery's: the call keeps its lease, and the next timer run retries it)."""
        with contextlib.suppress(FlowError, LedgerError):
            self.engine.run_effects(flow_id)

    def _supersede(
        self,
        order_id: str,
        event_id: str,
        event_type: str,
        intent_id: str | None,
        why: str,
        outcome: Outcome,
    ) -> _Decision:
        superseded = PaymentSuperseded(
            order_id=order_id,
            intent_id=intent_id or "",
            event_id=event_id,
            event_type=event_type,
            reason=why,
        )
        self.ledger.append(order_stream(order_id), [superseded])
        return _Decision(outcome, f"superseded: {why}", order_id, intent_id)

    def _order_status(self, order_id: str) -> str | None:
        order = readmodel.order_state(self.ledger, order_id)
        return None if order is None else order.status

    def _recording(self) -> contextlib.AbstractContextManager[list[CommerceEvent]]:
        """The order events the handlers record inside the block (nothing known: None)."""
        if self.handlers is None:
            return contextlib.nullcontext([])
        recording: contextlib.AbstractContextManager[list[CommerceEvent]]
        recording = self.handlers.recording()
        return recording

    def _status_after(
        self, order_id: str, order: OrderState | None, recorded: list[CommerceEvent]
    ) -> str | None:
        """The order's status once the events its flow `recorded` are folded into `order`.

        The projection stored the same fold, so this is the row's status without reading
        it; without the handlers (or the order's state before) the row is read.
        """
        if self.handlers is None or order is None:
            return self._order_status(order_id)
        mine = [e for e in recorded if isinstance(e, ORDER_EVENTS) and e.order_id == order_id]
        return fold(mine, order).status

    def _left(self, decision: _Decision) -> _Decision:
        """`decision` with the status it left its order in, read inside its transaction.

        A decision whose refund runs after the commit is read after it instead (the order
        is refunded by then).
        """
        if decision.order_status is not None or decision.order_id is None or decision.late_flow:
            return decision
        status = self._order_status(decision.order_id)
        return msgspec.structs.replace(decision, order_status=status)

    def _result(self, event_id: str, decision: _Decision) -> SettleResult:
        status = decision.order_status
        if status is None and decision.order_id:
            status = self._order_status(decision.order_id)
        return SettleResult(
            outcome=decision.outcome,
            event_id=event_id,
            reason=decision.reason,
            order_id=decision.order_id,
            order_status=status,
        )
