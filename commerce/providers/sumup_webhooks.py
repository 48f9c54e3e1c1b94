"""SumUp's webhooks as a `WebhookSource`: signed events, and the legacy unsigned notice.

A signed event carries `X-SumUp-Webhook-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
`"v1:" + t + ":" + body` (the shared `t=,v1=` checks of `commerce.signature`). The legacy
`CHECKOUT_STATUS_CHANGED` notice is unsigned, so it passes `authenticate` only in its exact
two-field shape, and it is believed only as far as SumUp's API confirms it.

Neither kind carries the amount: `decode` asks the API for the checkout (before the settle
transaction, so nothing is locked meanwhile) and reports what the API says, not what the
event says; a signed event whose status the API does not report yet is a retryable
`ProviderUnavailable` (answered 503, so SumUp delivers it again) rather than a decision.
Event ids are SumUp's prefixed `sumup:`; the legacy notice has none and gets
`sumup:<checkout id>:<status>`, so repeats of one confirmed state are one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from commerce.errors import (
    InvalidRequest,
    MalformedEvent,
    ProviderUnavailable,
    SignatureMismatch,
    SignatureMissing,
)
from commerce.providers.base import (
    Fact,
    Inbound,
    NotActedOn,
    Orphan,
    PaymentIntent,
    header,
    reported,
)
from commerce.signature import Scheme, verify
from commerce.signature import sign as _sign
from commerce.sumup_events import LEGACY_TYPE, SumUpNotice, decode_notice, is_legacy

SIGNATURE_HEADER = "X-SumUp-Webhook-Signature"
STATUS_UPDATED = "checkout.status.updated"
_ACTED_ON = ("paid", "failed", "expired")
_WORDS = {
    "requires_payment_method": "pending",
    "succeeded": "paid",
    "failed": "failed",
    "canceled": "expired",
}
"""The neutral statuses back in SumUp's words, for the legacy notice's derived event id."""


def _prefix(stamp: str) -> bytes:
    return f"v1:{stamp}:".encode()  # the timestamp as the header spells it


SUMUP = Scheme(SIGNATURE_HEADER, _prefix)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `X-SumUp-Webhook-Signature` value for `body` signed with `secret` at `timestamp`."""
    return _sign(body, secret, timestamp, scheme=SUMUP)


class Retrieves(Protocol):
    """What confirming a notice needs: the checkout's current state (`SumUpProvider`)."""

    def retrieve(self, intent_id: str) -> PaymentIntent: ...


class SumUpWebhooks:
    """The `WebhookSource` for SumUp; `client` confirms each event with SumUp's API.

    `secret` is the webhook signing secret (None: signed events are refused). With
    `accept_legacy`, the unsigned legacy notice is let through to be confirmed. SumUp's
    events do not say live or test: the mode is that of the keys behind `client`, which
    confirms every event, so no mode is checked here.
    """

    name = "sumup"

    def __init__(
        self,
        secret: str | None,
        client: Retrieves,
        *,
        tolerance: int = 300,
        accept_legacy: bool = True,
    ) -> None:
        if secret is not None and not secret:
            raise ValueError("the SumUp signing secret must be non-empty (or None)")
        self._secret, self._client = secret, client
        self.tolerance, self.accept_legacy = tolerance, accept_legacy

    def authenticate(self, body: bytes, headers: Mapping[str, str], *, now: int) -> None:
        """Raise a `BadSignature` unless `body` is signed (or is exactly a legacy notice)."""
        value = header(headers, SIGNATURE_HEADER)
        unsigned = value is None or not value.strip()
        if unsigned and self.accept_legacy and is_legacy(body):
            return  # unsigned, but believed only once the API confirms it
        if self._secret is None:
            if unsigned:
                raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
            raise SignatureMismatch("no SumUp signing secret is configured to check it with")
        verify(body, value, self._secret, tolerance=self.tolerance, now=now, scheme=SUMUP)

    def decode(self, body: bytes) -> Inbound:
        """What the event reports, as confirmed by SumUp's API (`MalformedEvent` if not one)."""
        notice = decode_notice(body)
        if notice.event_type == LEGACY_TYPE:
            return self._legacy(notice)
        if notice.event_type == STATUS_UPDATED:
            return self._updated(notice)
        reason = f"SumUp event type {notice.event_type!r} is not acted on"
        return self._inbound(notice, f"sumup:{notice.event_id or ''}", NotActedOn(reason=reason))

    def _updated(self, notice: SumUpNotice) -> Inbound:
        event_id, checkout_id = f"sumup:{notice.event_id or ''}", notice.checkout_id
        if not checkout_id:
            raise MalformedEvent(f"{STATUS_UPDATED} without `$.payload.checkout_id`")
        if notice.status not in _ACTED_ON:
            reason = f"checkout {checkout_id} is {notice.status or 'of no status'}"
            return self._inbound(notice, event_id, NotActedOn(reason=reason))
        intent = self._confirm(checkout_id)
        if intent is None:  # signed, so authentic: money we cannot place
            reason = f"SumUp's API does not know checkout {checkout_id}"
            return self._inbound(notice, event_id, Orphan(intent_id=checkout_id, reason=reason))
        if _WORDS.get(intent.status) not in _ACTED_ON:  # the API lags the event: ask again later
            raise ProviderUnavailable(
                f"SumUp says checkout {checkout_id} is {notice.status} but its API still"
                f" reports {intent.status}: deliver it again later",
                code="not_confirmed_yet",
            )
        return self._inbound(notice, event_id, _fact(event_id, intent), intent)

    def _legacy(self, notice: SumUpNotice) -> Inbound:
        checkout_id = notice.checkout_id or ""
        intent = self._confirm(checkout_id)
        if intent is None:  # forged or mistaken: it changes nothing
            reason = f"SumUp's API does not know checkout {checkout_id}: not confirmed"
            event_id = f"sumup:{checkout_id}:unknown"
            return self._inbound(notice, event_id, NotActedOn(reason=reason))
        event_id = f"sumup:{checkout_id}:{_WORDS.get(intent.status, intent.status)}"
        return self._inbound(notice, event_id, _fact(event_id, intent), intent)

    def _confirm(self, checkout_id: str) -> PaymentIntent | None:
        """The checkout as SumUp's API reports it; None if SumUp does not know it.

        Other failures propagate, so the delivery is answered 5xx and SumUp sends it again.
        """
        try:
            return self._client.retrieve(checkout_id)
        except InvalidRequest as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    def _inbound(
        self, notice: SumUpNotice, event_id: str, fact: Fact, intent: PaymentIntent | None = None
    ) -> Inbound:
        hint = (intent.order_id if intent else None) or notice.reference
        return Inbound(
            provider=self.name,
            event_id=event_id,
            event_type=notice.event_type,
            fact=fact,
            order_hint=hint,
        )


def _fact(event_id: str, intent: PaymentIntent) -> Fact:
    """The fact SumUp's API reports for the checkout (whatever the event claimed)."""
    return reported(event_id, intent, failure="SumUp reports the checkout failed")
