"""The fake provider that ships: in memory, ids derived from idempotency keys, failures on demand.

It is for the demo and the tests, chosen explicitly; it moves no money.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from commerce.errors import PROVIDER_ERRORS, InvalidRequest, provider_error
from commerce.money import Money
from commerce.providers.base import PaymentIntent, Refund, derive_id

EventKind = Literal["payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"]
EVENT_KINDS: tuple[str, ...] = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)
OPERATIONS: tuple[str, ...] = ("create_intent", "refund", "cancel", "retrieve")
API_VERSION = "2020-08-27"
"""The Stripe API version the fake's events claim (that of the recorded fixtures)."""


class FakeProvider:
    """An in-memory provider: ids derive from idempotency keys, failures on demand.

    `fail_next={"create_intent": ["rate_limited", "card_declined"]}` makes the next calls
    fail in that order. It keeps no durable state, so a refund for an intent this
    instance never created (another process made it) is accepted.
    """

    name = "fake"

    def __init__(
        self, *, livemode: bool = False, fail_next: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.livemode = livemode
        self.intents: dict[str, PaymentIntent] = {}
        self.refunds: dict[str, Refund] = {}
        self.calls: list[tuple[str, str]] = []
        self._failures: dict[str, list[str]] = {op: [] for op in OPERATIONS}
        self._answers: dict[str, tuple[tuple[Any, ...], PaymentIntent | Refund]] = {}
        for op, kinds in (fail_next or {}).items():
            for kind in kinds:
                self.fail_next(op, kind)

    def fail_next(self, op: str, kind: str, times: int = 1) -> None:
        """Make the next `times` calls of `op` fail with the error of `kind`."""
        if op not in self._failures:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        if kind not in PROVIDER_ERRORS:
            raise ValueError(f"unknown error kind {kind!r} (known: {', '.join(PROVIDER_ERRORS)})")
        self._failures[op].extend([kind] * times)

    def _enter(self, op: str, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("an idempotency key must be non-empty text")
        self.calls.append((op, key))
        if self._failures[op]:
            kind = self._failures[op].pop(0)
            raise provider_error(kind, f"injected failure of {op}", code="fake")

    def _replay(self, key: str, request: tuple[Any, ...]) -> PaymentIntent | Refund | None:
        seen = self._answers.get(key)
        if seen is None:
            return None
        if seen[0] != request:
            raise InvalidRequest(
                f"idempotency key {key!r} was used with different parameters",
                code="idempotency_error",
            )
        return seen[1]

    def create_intent(self, order_id: str, amount: Money, *, idempotency_key: str) -> PaymentIntent:
        """Create (or, for a known key, return again) the intent for `order_id`."""
        self._enter("create_intent", idempotency_key)
        request = ("create_intent", order_id, amount)
        seen = self._replay(idempotency_key, request)
        if isinstance(seen, PaymentIntent):
            return seen
        if amount.amount <= 0:
            raise InvalidRequest(f"amount must be positive, got {amount}", code="amount_too_small")
        intent_id = derive_id("pi_", idempotency_key)
        intent = PaymentIntent(
            intent_id=intent_id,
            order_id=order_id,
            amount=amount.amount,
            currency=amount.currency,
            livemode=self.livemode,
            client_secret=derive_id(f"{intent_id}_secret_fake_", f"secret:{idempotency_key}"),
        )
        self.intents[intent.intent_id] = intent
        self._answers[idempotency_key] = (request, intent)
        return intent

    def refund(self, intent_id: str, amount: Money, *, idempotency_key: str) -> Refund:
        """Refund `amount` of `intent_id` (or, for a known key, return the same refund)."""
        self._enter("refund", idempotency_key)
        request = ("refund", intent_id, amount)
        seen = self._replay(idempotency_key, request)
        if isinstance(seen, Refund):
            return seen
        self._check_refund(intent_id, amount)
        refund = Refund(
            refund_id=derive_id("re_", idempotency_key),
            intent_id=intent_id,
            amount=amount.amount,
            currency=amount.currency,
        )
        self.refunds[refund.refund_id] = refund
        self._answers[idempotency_key] = (request, refund)
        return refund

    def cancel(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        """Cancel an intent this instance created (`InvalidRequest` for any other)."""
        self._enter("cancel", idempotency_key)
        intent = self._known(intent_id)
        if intent.status == "succeeded":
            raise InvalidRequest(
                f"{intent_id} is already paid", code="payment_intent_unexpected_state"
            )
        canceled = msgspec.structs.replace(intent, status="canceled")
        self.intents[intent_id] = canceled
        return canceled

    def retrieve(self, intent_id: str) -> PaymentIntent:
        """The intent as this instance knows it (`InvalidRequest` for any other)."""
        self._enter("retrieve", intent_id)
        return self._known(intent_id)

    def mark_paid(self, intent_id: str) -> PaymentIntent:
        """Test hook: the customer paid `intent_id` (what `retrieve` will report)."""
        paid = msgspec.structs.replace(self._known(intent_id), status="succeeded")
        self.intents[intent_id] = paid
        return paid

    def _known(self, intent_id: str) -> PaymentIntent:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise InvalidRequest(f"no such payment intent {intent_id!r}", code="resource_missing")
        return intent

    def _check_refund(self, intent_id: str, amount: Money) -> None:
        if not intent_id.startswith("pi_"):
            raise InvalidRequest(f"no such payment intent {intent_id!r}", code="resource_missing")
        if amount.amount <= 0:
            raise InvalidRequest(f"amount must be positive, got {amount}", code="amount_too_small")
        intent = self.intents.get(intent_id)
        if intent is None:
            return
        if amount.currency != intent.currency:
            raise InvalidRequest(
                f"refund in {amount.currency} for an intent in {intent.currency}",
                code="currency_mismatch",
            )
        done = sum(r.amount for r in self.refunds.values() if r.intent_id == intent_id)
        if done + amount.amount > intent.amount:
            left = Money(intent.amount - done, intent.currency)
            raise InvalidRequest(
                f"refund of {amount} exceeds the {left} left", code="amount_too_large"
            )

    @staticmethod
    def event_for(
        intent: PaymentIntent,
        kind: str,
        *,
        event_id: str,
        created: int,
        amount_refunded: int | None = None,
    ) -> bytes:
        """The JSON body of a Stripe-shaped event of `kind` about `intent`.

        `kind` is one of `EVENT_KINDS`; `amount_refunded` (default: all of it) makes a
        partial `charge.refunded`. The body carries `metadata.order_id`.
        """
        if kind == "charge.refunded":
            obj = _charge_object(intent, created, amount_refunded)
        elif kind in EVENT_KINDS:
            obj = _intent_object(intent, created, succeeded=kind == "payment_intent.succeeded")
        else:
            raise ValueError(f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})")
        return msgspec.json.encode(
            {
                "id": event_id,
                "object": "event",
                "api_version": API_VERSION,
                "created": created,
                "data": {"object": obj},
                "livemode": intent.livemode,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": kind,
            }
        )


_DECLINE = {
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
    "type": "card_error",
}


def _intent_object(intent: PaymentIntent, created: int, *, succeeded: bool) -> dict[str, Any]:
    return {
        "id": intent.intent_id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_capturable": 0,
        "amount_received": intent.amount if succeeded else 0,
        "capture_method": "automatic",
        "created": created,
        "currency": intent.currency.lower(),
        "last_payment_error": None if succeeded else _DECLINE,
        "latest_charge": derive_id("ch_", intent.intent_id) if succeeded else None,
        "livemode": intent.livemode,
        "metadata": {"order_id": intent.order_id},
        "payment_method_types": ["card"],
        "status": "succeeded" if succeeded else "requires_payment_method",
    }


def _charge_object(intent: PaymentIntent, created: int, refunded: int | None) -> dict[str, Any]:
    refunded = intent.amount if refunded is None else refunded
    if not 0 < refunded <= intent.amount:
        raise ValueError(f"amount_refunded must be in 1..{intent.amount}, got {refunded}")
    return {
        "id": derive_id("ch_", intent.intent_id),
        "object": "charge",
        "amount": intent.amount,
        "amount_captured": intent.amount,
        "amount_refunded": refunded,
        "captured": True,
        "created": created,
        "currency": intent.currency.lower(),
        "livemode": intent.livemode,
        "metadata": {"order_id": intent.order_id},
        "paid": True,
        "payment_intent": intent.intent_id,
        "refunded": refunded == intent.amount,
        "status": "succeeded",
    }
