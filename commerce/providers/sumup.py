"""SumUp's checkouts and refunds API over plain HTTPS (stdlib `http.client`).

JSON requests with a Bearer API key. Amounts travel as decimal major units (19.99 EUR),
converted exactly both ways (`to_major`, `from_major`), never through a float. SumUp takes
no idempotency key: the `checkout_reference` (the order id) is its uniqueness key, so a
create that answers 409 `DUPLICATED_CHECKOUT` was made by an earlier attempt and is looked
up and returned rather than made twice. Errors map onto the `ProviderError` family: 429
`RateLimited`, 5xx, timeouts, connection failures and unreadable answers
`ProviderUnavailable`, other 4xx `InvalidRequest` with SumUp's `error_code` and message.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote, urlencode

import msgspec

from commerce.errors import (
    BodyTooLarge,
    InvalidRequest,
    MalformedEvent,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from commerce.money import Money, to_major
from commerce.providers.base import IntentStatus, PaymentIntent, Refund, derive_id
from commerce.providers.http import Endpoint, unreadable
from commerce.sumup_events import SumUpCheckout, decode_checkout, decode_checkouts

SUMUP_API_BASE = "https://api.sumup.com"
STATUSES: dict[str, IntentStatus] = {
    "pending": "requires_payment_method",
    "paid": "succeeded",
    "failed": "failed",
    "expired": "canceled",
}
"""SumUp's checkout statuses (lower-cased) as neutral ones; any other is `processing`."""


class _Hosted(msgspec.Struct):
    enabled: bool = True


class _CreateCheckout(msgspec.Struct, omit_defaults=True):
    checkout_reference: str
    amount: Decimal
    currency: str
    merchant_code: str
    description: str | None = None
    return_url: str | None = None
    hosted_checkout: _Hosted | None = None


class _RefundBody(msgspec.Struct):
    amount: Decimal


class _ErrorBody(msgspec.Struct):
    # SumUp answers `{error_code, message[, param]}`, some endpoints a list of those, and
    # the newer ones an RFC 7807 problem (`title`, `detail`).
    error_code: str | None = None
    message: str | None = None
    param: str | None = None
    title: str | None = None
    detail: str | None = None


_encoder = msgspec.json.Encoder(decimal_format="number")  # 19.99, not "19.99"


class SumUpProvider:
    """A `PaymentProvider` for SumUp online checkouts; `base_url` points it elsewhere.

    `return_url` is where SumUp sends its status notices for the checkouts made here (the
    webhook endpoint). With `hosted`, each checkout gets a SumUp-hosted payment page, its
    address in `PaymentIntent.checkout_url`.
    """

    name = "sumup"

    def __init__(
        self,
        api_key: str,
        merchant_code: str,
        *,
        base_url: str = SUMUP_API_BASE,
        timeout: float = 20.0,
        livemode: bool = False,
        return_url: str | None = None,
        hosted: bool = True,
    ) -> None:
        if not api_key:
            raise ValueError("a SumUp API key is needed (SUMUP_API_KEY)")
        if not merchant_code:
            raise ValueError("a SumUp merchant code is needed (SUMUP_MERCHANT_CODE)")
        self._endpoint = Endpoint(base_url, timeout=timeout, who="SumUp")
        self._api_key, self.merchant_code = api_key, merchant_code
        self.livemode, self.return_url, self.hosted = livemode, return_url, hosted

    @property
    def timeout(self) -> float:
        """Seconds allowed for the connect and for each read."""
        return self._endpoint.timeout

    def create_intent(self, order_id: str, amount: Money, *, idempotency_key: str) -> PaymentIntent:
        """Create the order's checkout, or return the one an earlier attempt created.

        `idempotency_key` is not sent (SumUp has none); `order_id` plays its part.
        """
        wire = _CreateCheckout(
            checkout_reference=order_id,
            amount=to_major(amount),
            currency=amount.currency,
            merchant_code=self.merchant_code,
            description=f"Order {order_id}",
            return_url=self.return_url,
            hosted_checkout=_Hosted() if self.hosted else None,
        )
        try:
            checkout = _checkout(self._call("POST", "/v0.1/checkouts", _encoder.encode(wire)))
        except InvalidRequest as exc:
            if exc.code != "DUPLICATED_CHECKOUT":
                raise
            checkout = self._find(order_id, exc)
        return self._intent(_matching(checkout, order_id, amount))

    def retrieve(self, intent_id: str) -> PaymentIntent:
        """The checkout's current state, as SumUp reports it."""
        return self._intent(self._fetch(intent_id))

    def _fetch(self, checkout_id: str) -> SumUpCheckout:
        """The checkout itself (with its transaction), as SumUp reports it."""
        return _checkout(self._call("GET", _path(checkout_id), None))

    def cancel(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        """Deactivate a checkout not yet paid (a processed one is `InvalidRequest`).

        A 409 is looked into: if the checkout is expired already, an earlier attempt (or
        SumUp's own clock) did the job, and that is the answer. Either way the answer has
        no `checkout_url`: there is no page left to pay on.
        """
        try:
            current = self._intent(_checkout(self._call("DELETE", _path(intent_id), None)))
        except InvalidRequest as exc:
            if exc.code != "CHECKOUT_PROCESSED":
                raise
            current = self.retrieve(intent_id)
            if current.status != "canceled":
                raise
        return msgspec.structs.replace(current, checkout_url=None)

    def refund(self, intent_id: str, amount: Money, *, idempotency_key: str) -> Refund:
        """Refund `amount` of the checkout's payment (against its successful transaction).

        SumUp's refund takes no idempotency key: the refund id is derived from ours, but a
        retry after a lost answer asks SumUp again (it refuses more than was paid).
        """
        checkout = self._fetch(intent_id)
        if checkout.currency != amount.currency:
            raise InvalidRequest(
                f"checkout {intent_id} is in {checkout.currency}, not {amount.currency}",
                code="currency_mismatch",
            )
        if checkout.status != "paid" or checkout.transaction_id is None:
            raise InvalidRequest(
                f"checkout {intent_id} is {checkout.status}: no payment to refund",
                code="not_paid",
            )
        path = f"/v0.1/me/refund/{quote(checkout.transaction_id, safe='')}"
        self._call("POST", path, _encoder.encode(_RefundBody(amount=to_major(amount))))
        return Refund(
            refund_id=derive_id("sumup_rf_", f"{checkout.transaction_id}:{idempotency_key}"),
            intent_id=intent_id,
            amount=amount.amount,
            currency=amount.currency,
        )

    def _find(self, reference: str, duplicate: InvalidRequest) -> SumUpCheckout:
        """The checkout SumUp holds for `reference` (after a 409 said there is one)."""
        query = urlencode({"checkout_reference": reference})
        raw = self._call("GET", f"/v0.1/checkouts?{query}", None)
        try:
            found = [c for c in decode_checkouts(raw) if c.reference == reference]
        except (MalformedEvent, BodyTooLarge) as exc:
            raise unreadable("SumUp", exc) from exc
        if not found:  # said to exist, not listed yet: ask again later
            raise ProviderUnavailable(
                f"SumUp has a checkout for {reference!r} but does not list it: {duplicate}",
                code="DUPLICATED_CHECKOUT",
            ) from duplicate
        # The list may be a summary: the checkout itself has the hosted page's address.
        return self._fetch(found[0].checkout_id)

    def _intent(self, checkout: SumUpCheckout) -> PaymentIntent:
        return PaymentIntent(
            intent_id=checkout.checkout_id,
            order_id=checkout.reference or "",
            amount=checkout.amount,
            currency=checkout.currency,
            status=STATUSES.get(checkout.status, "processing"),
            livemode=self.livemode,
            checkout_url=checkout.checkout_url,
        )

    def _call(self, method: str, path: str, body: bytes | None) -> bytes:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = self._endpoint.request(method, path, body=body, headers=headers)
        if answer.ok:
            return answer.body
        raise _error(answer.status, answer.body)


def _path(checkout_id: str) -> str:
    return f"/v0.1/checkouts/{quote(checkout_id, safe='')}"


def _checkout(raw: bytes) -> SumUpCheckout:
    try:
        return decode_checkout(raw)
    except (MalformedEvent, BodyTooLarge) as exc:
        raise unreadable("SumUp", exc) from exc


def _matching(checkout: SumUpCheckout, order_id: str, amount: Money) -> SumUpCheckout:
    """`checkout` if it is the one asked for; an answer for other money is refused."""
    if (checkout.reference, checkout.money) != (order_id, amount):
        raise InvalidRequest(
            f"SumUp's checkout {checkout.checkout_id} is {checkout.money} for "
            f"{checkout.reference!r}, not {amount} for {order_id!r}",
            code="checkout_mismatch",
        )
    return checkout


def _error(status: int, raw: bytes) -> ProviderError:
    """The typed error for a non-2xx answer."""
    try:
        shape = msgspec.json.decode(raw, type=_ErrorBody | list[_ErrorBody])
    except msgspec.DecodeError:
        shape = _ErrorBody(message=raw[:200].decode(errors="replace") or None)
    e = (shape[0] if shape else _ErrorBody()) if isinstance(shape, list) else shape
    said = e.message or e.detail or e.title or "no message"
    message = f"SumUp {status}: {said}" + (f" ({e.param})" if e.param else "")
    if status == 429:
        return RateLimited(message, code=e.error_code or "rate_limited")
    if status >= 500:
        return ProviderUnavailable(message, code=e.error_code or f"http_{status}")
    return InvalidRequest(message, code=e.error_code or f"http_{status}")
