"""Fuzzing authentic bodies: real provider fixtures, mutated (`strategies.mutated`), signed
with the shop's secret and settled through `Shop.settle_webhook` on a real SQLite file.

Each delivery either returns a `SettleResult` or raises one of the packages' typed errors,
and after an error the ledger's head is where it was. Nothing else may escape: no
`UnicodeDecodeError` from the ledger write, no `RecursionError` from the decoder.

The default run is short; `FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest
tests/commerce/test_bodies_fuzz.py` runs a long one (or `HYPOTHESIS_PROFILE=deep`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shop_helpers import FIXTURES, ShopClock, deliver
from strategies import mutated
from test_fixtures_settle import fixture_events, pointed

from commerce import (
    BodyTooLarge,
    CommerceError,
    FakeProvider,
    MalformedEvent,
    Money,
    SettleResult,
    Shop,
)
from commerce.sumup_events import decode_checkout, decode_notice
from flowlib import FlowError
from ledger import LedgerError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 0)) or settings.default.max_examples
TYPED = (CommerceError, LedgerError, FlowError)
STRIPE_EVENTS = fixture_events()  # stripe-ruby-mock, pay-rails (wrapped), openapi (wrapped)
POINTED = {  # fixtures re-id'd onto the shop's order, so a mutation can still settle it
    "stripe-ruby-mock/payment_intent.succeeded": "payment_intent.succeeded",
    "stripe-ruby-mock/payment_intent.payment_failed": "payment_intent.payment_failed",
    "stripe-ruby-mock/charge.refunded": "charge.refunded",
    "pay-rails/charge.refunded": "charge.refunded",
}
SUMUP = FIXTURES / "sumup"
SUMUP_BODIES = sorted(SUMUP.rglob("*.json")) if SUMUP.is_dir() else []
MISSING = pytest.mark.skipif(not STRIPE_EVENTS, reason="payment fixtures not beside the repo")


@contextmanager
def order_shop() -> Iterator[Shop]:
    """A fresh shop file with order o1 (2 x 10.00 USD) awaiting payment."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.db"
        with Shop.open(
            path, provider=FakeProvider(), synchronous="NORMAL", clock=ShopClock()
        ) as shop:
            shop.add_product("CAP", "Cap", Money(1000, "USD"), stock=10)
            shop.start_order([("CAP", 2)], order_id="o1")
            yield shop


def base_body(shop: Shop, key: str) -> bytes:
    """The fixture as recorded, or pointed at order o1 when it is a kind the shop acts on."""
    if key in POINTED:
        return pointed(shop, key, POINTED[key], "evt_fuzz")
    return STRIPE_EVENTS[key]


def settle_or_typed(shop: Shop, body: bytes) -> None:
    """Deliver `body` signed: a result, or a typed error that wrote nothing."""
    before = shop.ledger.head(), shop.ledger.count()
    try:
        result = deliver(shop, body)
    except TYPED:
        assert (shop.ledger.head(), shop.ledger.count()) == before
        return
    assert isinstance(result, SettleResult)
    assert shop.ledger.verify().ok


@MISSING
@settings(max_examples=EXAMPLES, deadline=None)
@given(key=st.sampled_from(sorted(STRIPE_EVENTS) or ["none"]), data=st.data())
def test_mutated_stripe_fixtures_settle_or_are_typed(key: str, data: st.DataObject) -> None:
    with order_shop() as shop:
        body = data.draw(mutated(base_body(shop, key)), label="body")
        settle_or_typed(shop, body)


@MISSING
@settings(max_examples=EXAMPLES, deadline=None)
@given(path=st.sampled_from(SUMUP_BODIES or [Path("none")]), data=st.data())
def test_mutated_sumup_fixtures_decode_or_are_malformed(path: Path, data: st.DataObject) -> None:
    body = data.draw(mutated(path.read_bytes()), label="body")
    for decode in (decode_notice, decode_checkout):
        with suppress(MalformedEvent, BodyTooLarge):
            decode(body)
    with order_shop() as shop:  # and through the Stripe path: never more than malformed
        settle_or_typed(shop, body)


@MISSING
def test_the_pointed_fixtures_settle_unmutated() -> None:
    """The corpus reaches the acting paths, not only the refusals."""
    outcomes = set()
    for key in POINTED:
        with order_shop() as shop:
            if POINTED[key] == "charge.refunded":
                shop.settle("o1")
            outcomes.add(deliver(shop, base_body(shop, key)).outcome)
    assert outcomes >= {"settled", "recorded", "refunded"}


def test_the_corpus_is_what_the_readme_names() -> None:
    if not STRIPE_EVENTS:
        pytest.skip("payment fixtures not beside the repo")
    sources = {key.split("/")[0] for key in STRIPE_EVENTS}
    assert {"stripe-ruby-mock", "pay-rails"} <= sources
    assert len(SUMUP_BODIES) >= 2
    assert all(json.loads(STRIPE_EVENTS[key]) for key in STRIPE_EVENTS)
