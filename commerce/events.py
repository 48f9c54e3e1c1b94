"""The order domain's events: what the ledger records about products, stock, orders, payments.

Streams: `sku:<SKU>` holds a product's catalog and restock events; `order:<id>` holds
everything that happens to one order (stock reservations included, so each change of
stock is recorded once); `coupon:<CODE>` and `webhook:<event id>` hold the rest.
Tags are class names: never rename one, and give every new field a default.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from commerce.pricing import Coupon, Quote


class CommerceEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True, omit_defaults=True):
    """Base of every commerce event."""


class StockLine(msgspec.Struct, frozen=True):
    """`quantity` units of `sku`."""

    sku: str
    quantity: int


class PaymentNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's word about a payment, as the order flow receives it."""

    event_id: str
    intent_id: str
    succeeded: bool
    amount: int
    currency: str
    reason: str = ""


# -- catalog -------------------------------------------------------------------------


class ProductAdded(CommerceEvent, frozen=True):
    """A SKU joined the catalog at a unit price."""

    sku: str
    name: str
    unit_price: int
    currency: str


class Restocked(CommerceEvent, frozen=True):
    """Units of a SKU became available (`reason` says where from, if not a delivery)."""

    sku: str
    quantity: int
    reason: str = ""


class StockRemoved(CommerceEvent, frozen=True):
    """Units taken out of the available stock (by a move, see `commerce.transfer`)."""

    sku: str
    quantity: int
    reason: str = ""


class CouponAdded(CommerceEvent, frozen=True):
    """A coupon joined the catalog (or replaced one with its code)."""

    coupon: Coupon


# -- orders --------------------------------------------------------------------------


class OrderPlaced(CommerceEvent, frozen=True):
    """An order was priced and recorded; its quote is kept with it."""

    order_id: str
    quote: Quote
    placed_at: datetime


class StockReserved(CommerceEvent, frozen=True):
    """The order's lines are held: available -> reserved."""

    order_id: str
    lines: list[StockLine]


class StockReleased(CommerceEvent, frozen=True):
    """The order let its lines go (expired, cancelled, failed): reserved -> available."""

    order_id: str
    lines: list[StockLine]
    reason: str


class StockCommitted(CommerceEvent, frozen=True):
    """The order was fulfilled: reserved -> sold."""

    order_id: str
    lines: list[StockLine]


class PaymentIntentCreated(CommerceEvent, frozen=True):
    """The provider's intent for the order; webhooks about it route here.

    `provider` names the provider that took it: its refunds and cancels go there.
    `client_secret` (Stripe.js) or `checkout_url` (a hosted page) is what a storefront
    needs to let the customer pay, if the provider gave one. It is recorded, not only
    returned, so `order show` gives it again to a storefront that lost it (the flow's log
    holds the provider's answer anyway, to replay exactly); it lets someone pay this one
    intent, nothing more, and stops working once the intent is paid or cancelled.
    """

    order_id: str
    intent_id: str
    amount: int
    currency: str
    provider: str = "fake"
    client_secret: str | None = None
    checkout_url: str | None = None


class PaymentFailed(CommerceEvent, frozen=True):
    """A payment attempt failed; the customer may try again until the timeout."""

    order_id: str
    intent_id: str
    event_id: str
    reason: str


class PaymentReceived(CommerceEvent, frozen=True):
    """Money arrived for the order (`amount` in minor units of `currency`)."""

    order_id: str
    intent_id: str
    event_id: str
    amount: int
    currency: str


class OrderFulfilled(CommerceEvent, frozen=True):
    """The order was paid in full and its stock left."""

    order_id: str


class PaymentDisputed(CommerceEvent, frozen=True):
    """A payment that does not match the quote: kept, not fulfilled, for a person to review.

    `held_at` starts the review hold's expiry (older events: when it was recorded).
    """

    order_id: str
    intent_id: str
    event_id: str
    amount: int
    currency: str
    reason: str
    held_at: datetime | None = None


class ReviewResolved(CommerceEvent, frozen=True):
    """Someone (or the hold's expiry) decided a review hold: `accept` fulfils, `refund` refunds."""

    order_id: str
    decision: str
    reason: str


class PaymentIntentAdopted(CommerceEvent, frozen=True):
    """A payment intent orderflow did not create, paid for this order: kept, so it dedupes."""

    order_id: str
    intent_id: str
    amount: int
    currency: str


class OrderClosed(CommerceEvent, frozen=True):
    """The order ended without fulfilment: `status` is expired, cancelled or failed."""

    order_id: str
    status: str
    reason: str


class OrderMovedOut(CommerceEvent, frozen=True):
    """The order continues in another ledger; the stock it held here went with it."""

    order_id: str
    lines: list[StockLine]
    reason: str


class RefundIssued(CommerceEvent, frozen=True):
    """We gave money back (a late payment for a closed order)."""

    order_id: str
    intent_id: str
    refund_id: str
    amount: int
    currency: str
    reason: str


class RefundRecorded(CommerceEvent, frozen=True):
    """The provider reports a refund of the charge; `amount_refunded` is the running total."""

    order_id: str
    intent_id: str
    event_id: str
    amount_refunded: int
    currency: str
    full: bool


class PaymentSuperseded(CommerceEvent, frozen=True):
    """A provider event that arrived after the intent moved past it: recorded, not acted on."""

    order_id: str
    intent_id: str
    event_id: str
    event_type: str
    reason: str


# -- webhooks ------------------------------------------------------------------------


class WebhookReceived(CommerceEvent, frozen=True):
    """A provider event, deduplicated by `event_id` forever; `body` is kept as received.

    `provider` names the source that delivered it (None in ledgers from before it was kept).
    """

    event_id: str
    event_type: str
    digest: str
    outcome: str
    reason: str
    order_id: str | None = None
    intent_id: str | None = None
    body: msgspec.Raw = msgspec.Raw(b"null")
    provider: str | None = None


class WebhookConflict(CommerceEvent, frozen=True):
    """The same event id came again with a different body; the first body stands."""

    event_id: str
    digest: str


class WebhookParked(CommerceEvent, frozen=True):
    """An event that came before its order could take it; applied when the flow waits."""

    event_id: str
    intent_id: str
    payment: PaymentNotice
    order_id: str | None = None


class WebhookUnparked(CommerceEvent, frozen=True):
    """A parked event was handed to its order's flow."""

    event_id: str
    intent_id: str
    order_id: str


AnyCommerceEvent = (
    ProductAdded
    | Restocked
    | StockRemoved
    | CouponAdded
    | OrderPlaced
    | StockReserved
    | StockReleased
    | StockCommitted
    | PaymentIntentCreated
    | PaymentFailed
    | PaymentReceived
    | OrderFulfilled
    | PaymentDisputed
    | OrderClosed
    | OrderMovedOut
    | RefundIssued
    | RefundRecorded
    | PaymentSuperseded
    | WebhookReceived
    | WebhookConflict
    | WebhookParked
    | WebhookUnparked
    | ReviewResolved
    | PaymentIntentAdopted
)
