"""The commerce events: a pinned tag set, and every event survives the ledger's codec."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import coupons, currencies

from commerce.events import AnyCommerceEvent, CouponAdded
from commerce.pricing import Coupon

EVENTS = typing.get_args(AnyCommerceEvent)
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode


def test_the_tag_set_is_pinned() -> None:
    """Tags are class names and logs are forever: renaming or dropping one breaks old files."""
    assert [cls.__name__ for cls in EVENTS] == [
        "ProductAdded",
        "Restocked",
        "StockRemoved",
        "CouponAdded",
        "OrderPlaced",
        "StockReserved",
        "StockReleased",
        "StockCommitted",
        "PaymentIntentCreated",
        "PaymentFailed",
        "PaymentReceived",
        "OrderFulfilled",
        "PaymentDisputed",
        "OrderClosed",
        "OrderMovedOut",
        "RefundIssued",
        "RefundRecorded",
        "PaymentSuperseded",
        "WebhookReceived",
        "WebhookConflict",
        "WebhookParked",
        "WebhookUnparked",
        "ReviewResolved",
        "PaymentIntentAdopted",
    ]
    for cls in EVENTS:
        assert cls.__struct_config__.tag == cls.__name__
        assert "type" not in cls.__struct_fields__  # the tag field's name


def _any_event() -> st.SearchStrategy[Any]:
    simple = [st.builds(cls) for cls in EVENTS if cls is not CouponAdded]
    coupon = currencies.flatmap(coupons).map(lambda c: CouponAdded(coupon=c))
    return st.one_of(*simple, coupon)


@settings(max_examples=200)
@given(_any_event())
def test_every_event_round_trips_through_json(event: Any) -> None:
    assert _decode(msgspec.json.encode(event)) == event


def test_a_coupon_event_keeps_the_coupon_whole() -> None:
    coupon = Coupon(code="TEN", percent_off_bp=1000)
    assert _decode(msgspec.json.encode(CouponAdded(coupon=coupon))) == CouponAdded(coupon=coupon)
