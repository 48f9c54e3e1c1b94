"""Stripe's PaymentIntents and Refunds APIs over plain HTTPS (stdlib `http.client`).

Form-encoded requests with the step's key as `Idempotency-Key`, the order id in
`metadata[order_id]` and a pinned `Stripe-Version`. Stripe's answers map onto the typed
`ProviderError` family: card errors are `CardDeclined`, 429 `RateLimited`, 5xx, timeouts and
connection failures `ProviderUnavailable`, other 4xx `InvalidRequest` with Stripe's message.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import quote, urlencode

import msgspec

from commerce.errors import (
    CardDeclined,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from commerce.money import Money
from commerce.providers.base import PaymentIntent, Refund
from commerce.providers.http import Endpoint, decode

STRIPE_API_VERSION = "2024-06-20"
"""The Stripe API version every request pins (answers keep this shape whatever the account's)."""
STRIPE_API_BASE = "https://api.stripe.com"
T = TypeVar("T")


class _Intent(msgspec.Struct):
    id: str
    amount: int
    currency: str
    status: str
    livemode: bool = False
    metadata: dict[str, str] = {}
    client_secret: str | None = None


class _Refund(msgspec.Struct):
    id: str
    amount: int
    currency: str
    status: str | None = None
    payment_intent: str | None = None


class _ErrorBody(msgspec.Struct):
    kind: str = msgspec.field(name="type", default="api_error")
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class _Error(msgspec.Struct):
    error: _ErrorBody


class StripeProvider:
    """A `PaymentProvider` for Stripe; `base_url` points it elsewhere (a local stand-in).

    `timeout` bounds the connect and each read, in seconds. A call that times out may
    still have been carried out by Stripe: the flow retries it with the same idempotency
    key, so Stripe answers the first outcome again rather than charging twice.
    """

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = STRIPE_API_BASE,
        timeout: float = 20.0,
        api_version: str = STRIPE_API_VERSION,
    ) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is needed (STRIPE_API_KEY)")
        self._endpoint = Endpoint(base_url, timeout=timeout, who="Stripe")
        self._api_key, self.api_version = api_key, api_version

    @property
    def timeout(self) -> float:
        """Seconds allowed for the connect and for each read."""
        return self._endpoint.timeout

    def create_intent(self, order_id: str, amount: Money, *, idempotency_key: str) -> PaymentIntent:
        """Create the order's PaymentIntent (`automatic_payment_methods` on)."""
        form = {
            "amount": str(amount.amount),
            "currency": amount.currency.lower(),
            "metadata[order_id]": order_id,
            "automatic_payment_methods[enabled]": "true",
        }
        raw = self._call("POST", "/v1/payment_intents", form, idempotency_key)
        return _intent(_decode(raw, _Intent), order_id)

    def refund(self, intent_id: str, amount: Money, *, idempotency_key: str) -> Refund:
        """Refund `amount` of the intent's charge."""
        form = {"payment_intent": intent_id, "amount": str(amount.amount)}
        r = _decode(self._call("POST", "/v1/refunds", form, idempotency_key), _Refund)
        return Refund(
            refund_id=r.id,
            intent_id=r.payment_intent or intent_id,
            amount=r.amount,
            currency=r.currency.upper(),
            status=r.status or "pending",
        )

    def cancel(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        """Cancel an intent not yet paid (Stripe refuses a succeeded one: `InvalidRequest`)."""
        path = f"/v1/payment_intents/{quote(intent_id, safe='')}/cancel"
        return _intent(_decode(self._call("POST", path, {}, idempotency_key), _Intent))

    def retrieve(self, intent_id: str) -> PaymentIntent:
        """The intent's current state, as Stripe reports it."""
        path = f"/v1/payment_intents/{quote(intent_id, safe='')}"
        return _intent(_decode(self._call("GET", path, {}, None), _Intent))

    def _call(self, method: str, path: str, form: dict[str, str], key: str | None) -> bytes:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Stripe-Version": self.api_version,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if key is not None:
            headers["Idempotency-Key"] = key
        body = urlencode(form).encode() if method == "POST" else None
        answer = self._endpoint.request(method, path, body=body, headers=headers)
        if answer.ok:
            return answer.body
        should_retry = answer.headers.get("stripe-should-retry", "").lower() == "true"
        raise _error(answer.status, answer.body, should_retry=should_retry)


def _intent(i: _Intent, order_id: str | None = None) -> PaymentIntent:
    return PaymentIntent(
        intent_id=i.id,
        order_id=i.metadata.get("order_id", order_id or ""),
        amount=i.amount,
        currency=i.currency.upper(),
        status=i.status,
        livemode=i.livemode,
        client_secret=i.client_secret,
    )


def _decode(raw: bytes, shape: type[T]) -> T:
    return decode(raw, shape, "Stripe")


def _error(status: int, raw: bytes, *, should_retry: bool) -> ProviderError:
    """The typed error for a non-2xx answer."""
    try:
        e = msgspec.json.decode(raw, type=_Error).error
    except msgspec.DecodeError:
        e = _ErrorBody(message=raw[:200].decode(errors="replace"))
    message = f"Stripe {status}: {e.message or e.kind}"
    if e.kind == "card_error" or status == 402:
        return CardDeclined(message, code=e.decline_code or e.code or "card_declined")
    if status == 429:
        return RateLimited(message, code=e.code or "rate_limit")
    if status >= 500 or should_retry:  # 409 on a key whose first request still runs
        return ProviderUnavailable(message, code=e.code or e.kind)
    return InvalidRequest(message, code=e.code or e.kind)
