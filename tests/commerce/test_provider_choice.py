"""No silent fake: a shop takes orders only through a provider it was given, chosen by name.

Also what a storefront needs (the intent's client secret, again later) and the intent
cancelled at its provider once the order closes.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from shop_helpers import (
    LiveStandIn,
    ShopClock,
    after_deferred_calls,
    body_for,
    deliver,
    events_of,
    snapshot,
    stock,
    stocked_shop,
    unchanged,
)

from commerce import (
    Coupon,
    FakeProvider,
    InvalidConfig,
    MissingProviderKey,
    NoPaymentProvider,
    Shop,
    ShopConfig,
    StripeProvider,
    provider_from,
    refund_providers,
)
from commerce.events import PaymentIntentCreated


def _bare(tmp_path: Path, clock: ShopClock, **config: object) -> Shop:
    """A stocked shop opened without a provider."""
    shop = Shop.open(tmp_path / "bare.db", clock=clock, config=ShopConfig(**config))  # type: ignore[arg-type]
    stocked_shop(shop)
    return shop


# -- no provider, no orders -----------------------------------------------------------


def test_without_a_provider_no_order_is_taken_and_nothing_is_written(
    tmp_path: Path, shop_clock: ShopClock
) -> None:
    with _bare(tmp_path, shop_clock) as shop:
        shop.add_coupon(Coupon(code="FREE", percent_off_bp=10_000))
        with unchanged(shop), pytest.raises(NoPaymentProvider, match="pass provider="):
            shop.start_order([("MUG", 1)], order_id="o1")
        with unchanged(shop), pytest.raises(NoPaymentProvider):  # free orders too
            shop.start_order([("MUG", 1)], coupon="FREE", order_id="o2")
        assert shop.orders() == [] and stock(shop, "MUG") == (10, 0, 0)


def test_a_live_mode_shop_refuses_the_fake_for_new_orders(
    tmp_path: Path, shop_clock: ShopClock
) -> None:
    config = ShopConfig(livemode=True)
    with Shop.open(tmp_path / "live.db", clock=shop_clock, config=config) as shop:
        stocked_shop(shop)
        shop.use_provider(FakeProvider(livemode=True))
        with unchanged(shop), pytest.raises(NoPaymentProvider, match=r"live-mode.*stripe or sumup"):
            shop.start_order([("MUG", 1)], order_id="o1")
        shop.use_provider(LiveStandIn(livemode=True))  # any provider that is not the fake
        assert shop.start_order([("MUG", 1)], order_id="o1").order.status == "awaiting_payment"


def test_without_a_provider_reads_webhooks_cancels_and_timers_still_work(
    tmp_path: Path, shop_clock: ShopClock
) -> None:
    path = tmp_path / "bare.db"
    with Shop.open(path, clock=shop_clock, provider=FakeProvider()) as shop:
        stocked_shop(shop)
        for order_id in ("paid", "cancelled", "expires"):
            shop.start_order([("MUG", 1)], order_id=order_id)
    with Shop.open(path, clock=shop_clock) as shop:  # a web handler's shop, say
        assert shop.provider is None
        paid = deliver(shop, body_for(shop, "paid", "payment_intent.succeeded", event_id="e1"))
        assert (paid.outcome, paid.order_status) == ("settled", "fulfilled")
        assert shop.cancel_order("cancelled").order.status == "cancelled"
        shop_clock.advance(1800)
        shop.fire_timers()
        assert shop.order("expires").order.status == "expired"
        assert stock(shop, "MUG") == (9, 0, 1)
        # Their intents' provider is not here: the cancels at the provider keep retrying.
        state = shop.engine.status("cancelled")
        assert state.status == "waiting" and "AwaitPayment" not in state.awaits
        error = shop.engine.log("cancelled")[-1].error  # type: ignore[union-attr]
        assert error.message.endswith("not configured here")


# -- choosing by name -----------------------------------------------------------------


def test_providers_are_chosen_by_name_with_keys_from_the_environment() -> None:
    assert isinstance(provider_from("fake", {}), FakeProvider)
    env = {"STRIPE_API_KEY": "sk_test_x", "STRIPE_API_BASE": "http://127.0.0.1:9"}
    assert isinstance(provider_from("stripe", env), StripeProvider)
    with pytest.raises(MissingProviderKey, match="stripe needs STRIPE_API_KEY") as info:
        provider_from("stripe", {"STRIPE_API_KEY": ""})
    assert info.value.missing == ["STRIPE_API_KEY"]
    with pytest.raises(MissingProviderKey, match="SUMUP_API_KEY and SUMUP_MERCHANT_CODE"):
        provider_from("sumup", {"STRIPE_API_KEY": "sk_test_x"})
    with pytest.raises(MissingProviderKey, match="needs SUMUP_MERCHANT_CODE in"):
        provider_from("sumup", {"SUMUP_API_KEY": "sup_sk_x"})
    with pytest.raises(NoPaymentProvider, match="unknown payment provider 'paypal'"):
        provider_from("paypal", env)
    with pytest.raises(NoPaymentProvider, match="base_url must be an http"):
        provider_from("stripe", {"STRIPE_API_KEY": "sk_test_x", "STRIPE_API_BASE": "nowhere"})


def test_every_provider_with_keys_stays_available_for_its_own_intents() -> None:
    assert [p.name for p in refund_providers({})] == ["fake"]
    env = {"STRIPE_API_KEY": "sk_test_x"}
    assert [p.name for p in refund_providers(env)] == ["fake", "stripe"]
    assert [p.name for p in refund_providers(env, besides="stripe")] == ["fake"]


def test_sumup_is_built_from_its_keys() -> None:
    env = {"SUMUP_API_KEY": "sup_sk_x", "SUMUP_MERCHANT_CODE": "MC1"}
    assert provider_from("sumup", env).name == "sumup"
    assert "sumup" in [p.name for p in refund_providers(env)]
    notices = "https://shop.example/webhooks/sumup"
    sumup = provider_from("sumup", {**env, "SUMUP_RETURN_URL": notices})
    assert getattr(sumup, "return_url", None) == notices  # where its legacy notices go


def test_the_recorded_provider_is_a_name_orderflow_knows(tmp_path: Path) -> None:
    assert ShopConfig(provider="stripe").provider == "stripe"
    with pytest.raises(InvalidConfig, match="provider 'paypal': must be one of fake, stripe"):
        ShopConfig(provider="paypal")
    with Shop.open(tmp_path / "s.db") as shop:
        assert shop.configure(ShopConfig(provider="sumup")) is True
    with Shop.open(tmp_path / "s.db") as shop:
        assert shop.config.provider == "sumup" and shop.provider is None  # a name, no keys


def test_a_shop_that_moved_providers_still_refunds_the_old_intents(
    tmp_path: Path, shop_clock: ShopClock
) -> None:
    path, fake = tmp_path / "moved.db", FakeProvider()
    with Shop.open(path, clock=shop_clock, provider=fake) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 1)], order_id="o1")
        shop.cancel_order("o1")
    other = LiveStandIn()
    with Shop.open(path, clock=shop_clock, provider=other, refund_providers=[fake]) as shop:
        assert shop.settle("o1").outcome == "refunded"  # a late payment, refunded by the fake
        assert len(fake.refunds) == 1 and other.calls == []


# -- what the storefront needs ----------------------------------------------------------


def test_the_client_secret_is_shown_on_start_and_again_later(stocked: Shop) -> None:
    view = stocked.start_order([("MUG", 1)], order_id="o1")
    intent = stocked.provider.intents[view.order.intent_id]  # type: ignore[union-attr,index]
    assert view.client_secret == intent.client_secret and view.client_secret
    assert view.checkout_url is None
    assert stocked.order("o1").client_secret == view.client_secret
    (created,) = events_of(stocked, "PaymentIntentCreated")
    assert created.client_secret == view.client_secret


def test_intents_recorded_before_client_secrets_still_decode() -> None:
    old = (
        b'{"type":"PaymentIntentCreated","order_id":"o1","intent_id":"pi_1",'
        b'"amount":5,"currency":"EUR"}'
    )
    event = msgspec.json.decode(old, type=PaymentIntentCreated)
    assert (event.provider, event.client_secret, event.checkout_url) == ("fake", None, None)
    assert msgspec.json.encode(event) == old  # and encode to the same bytes


# -- the intent is cancelled at its provider -------------------------------------------


def test_a_cancelled_order_cancels_its_intent_at_the_provider(stocked: Shop) -> None:
    intent_id = stocked.start_order([("MUG", 2)], order_id="o1").order.intent_id
    assert stocked.cancel_order("o1").order.status == "cancelled"
    fake: FakeProvider = stocked.provider  # type: ignore[assignment]
    assert fake.intents[intent_id].status == "canceled"  # type: ignore[index]
    assert [op for op, _ in fake.calls] == ["create_intent", "cancel"]
    assert stocked.engine.status("o1").status == "cancelled"
    assert stock(stocked, "MUG") == (10, 0, 0)
    before = snapshot(stocked)
    assert stocked.cancel_order("o1").order.status == "cancelled"  # again: nothing more
    assert snapshot(stocked) == before and len(fake.calls) == 2


def test_an_expired_order_cancels_its_intent(stocked: Shop, shop_clock: ShopClock) -> None:
    intent_id = stocked.start_order([("MUG", 1)], order_id="o1").order.intent_id
    shop_clock.advance(1800)
    stocked.fire_timers()
    assert stocked.order("o1").order.status == "expired"
    assert stocked.provider.intents[intent_id].status == "canceled"  # type: ignore[union-attr,index]
    assert stocked.engine.status("o1").status == "completed"


def test_a_cancel_the_provider_refuses_leaves_the_order_closed_and_refunds_the_payment(
    stocked: Shop,
) -> None:
    intent_id = stocked.start_order([("MUG", 1)], order_id="o1").order.intent_id
    fake: FakeProvider = stocked.provider  # type: ignore[assignment]
    fake.mark_paid(intent_id)  # type: ignore[arg-type]  # paid, the webhook not here yet
    assert stocked.cancel_order("o1").order.status == "cancelled"
    assert stocked.engine.status("o1").status == "cancelled"  # the refusal is no failure
    late = deliver(stocked, body_for(stocked, "o1", "payment_intent.succeeded", event_id="e1"))
    assert (late.outcome, late.order_status) == ("refunded", "refunded")
    assert stock(stocked, "MUG") == (10, 0, 0)


def test_a_cancel_the_provider_cannot_take_now_is_retried(stocked: Shop) -> None:
    intent_id = stocked.start_order([("MUG", 1)], order_id="o1").order.intent_id
    fake: FakeProvider = stocked.provider  # type: ignore[assignment]
    fake.fail_next("cancel", "provider_unavailable")
    stocked.cancel_order("o1")
    assert stocked.engine.status("o1").status == "waiting"  # the retry, 2 s on
    assert after_deferred_calls(stocked).status == "cancelled"
    assert fake.intents[intent_id].status == "canceled"  # type: ignore[index]
    keys = {key for op, key in fake.calls if op == "cancel"}
    assert len(keys) == 1  # the same idempotency key both times
