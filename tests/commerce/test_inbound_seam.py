"""The inbound seam: any `WebhookSource` settles through `Shop.receive`, provider-blind.

A third provider is a new source and nothing else: `TokenWebhooks` below (a shared token
header and a tiny JSON body) settles, deduplicates, refunds and cancels orders exactly
like Stripe's source, and the settler never learns which one spoke.
"""

from __future__ import annotations

import ast
import hmac
import json
from collections.abc import Mapping
from pathlib import Path

import msgspec
import pytest
from shop_helpers import SECRET, body_for, check_all, events_of, stock, unchanged

from commerce import (
    Cancellation,
    Inbound,
    MalformedEvent,
    NotActedOn,
    PaymentNotice,
    RefundReport,
    Shop,
    SignatureMismatch,
    SignatureMissing,
    StripeWebhooks,
    sign,
)
from commerce.providers.base import header

ROOT = Path(__file__).resolve().parents[2]


class _Body(msgspec.Struct, frozen=True):
    id: str
    kind: str
    intent: str
    amount: int = 0
    currency: str = "EUR"


class TokenWebhooks:
    """A made-up provider: `X-Token` must equal the shared token; bodies are `_Body`."""

    name = "token"

    def __init__(self, token: str) -> None:
        self.token = token

    def authenticate(self, body: bytes, headers: Mapping[str, str], *, now: int) -> None:
        given = header(headers, "X-Token")
        if given is None:
            raise SignatureMissing("no X-Token header")
        if not hmac.compare_digest(given, self.token):
            raise SignatureMismatch("X-Token does not match")

    def decode(self, body: bytes) -> Inbound:
        try:
            wire = msgspec.json.decode(body, type=_Body)
        except msgspec.DecodeError as exc:
            raise MalformedEvent(str(exc)) from exc
        fact: PaymentNotice | Cancellation | RefundReport | NotActedOn
        if wire.kind in ("paid", "failed"):
            fact = PaymentNotice(
                event_id=f"token:{wire.id}",
                intent_id=wire.intent,
                succeeded=wire.kind == "paid",
                amount=wire.amount,
                currency=wire.currency,
            )
        elif wire.kind == "cancelled":
            fact = Cancellation(intent_id=wire.intent)
        elif wire.kind == "refunded":
            fact = RefundReport(
                intent_id=wire.intent, amount_refunded=wire.amount, currency=wire.currency
            )
        else:
            fact = NotActedOn(reason=f"{wire.kind} is not acted on")
        return Inbound(
            provider=self.name, event_id=f"token:{wire.id}", event_type=wire.kind, fact=fact
        )


SOURCE = TokenWebhooks("s3cret")
HEADERS = {"x-token": "s3cret"}  # any case: header names are case-blind


def _body(event_id: str, kind: str, intent: str | None, amount: int = 0) -> bytes:
    return json.dumps({"id": event_id, "kind": kind, "intent": intent, "amount": amount}).encode()


def _started(shop: Shop, order_id: str = "o1") -> str:
    view = shop.start_order([("MUG", 2)], order_id=order_id)
    assert view.order.intent_id is not None
    return view.order.intent_id


def test_a_third_provider_settles_an_order_once(stocked: Shop) -> None:
    intent = _started(stocked)
    paid = _body("e1", "paid", intent, 2500)
    first = stocked.receive(SOURCE, paid, HEADERS)
    assert (first.outcome, first.order_status) == ("settled", "fulfilled"), first
    again = stocked.receive(SOURCE, paid, HEADERS)
    assert again.outcome == "already_settled"
    (received,) = events_of(stocked, "WebhookReceived")
    assert (received.provider, received.event_id) == ("token", "token:e1")
    assert stock(stocked, "MUG") == (8, 0, 2)
    check_all(stocked)


def test_a_third_provider_refunds_and_cancels(stocked: Shop) -> None:
    paid_intent = _started(stocked, "o1")
    stocked.receive(SOURCE, _body("e1", "paid", paid_intent, 2500), HEADERS)
    refunded = stocked.receive(SOURCE, _body("e2", "refunded", paid_intent, 2500), HEADERS)
    assert (refunded.outcome, refunded.order_status) == ("refunded", "refunded"), refunded
    open_intent = _started(stocked, "o2")
    cancelled = stocked.receive(SOURCE, _body("e3", "cancelled", open_intent), HEADERS)
    assert cancelled.order_status == "cancelled", cancelled
    check_all(stocked)


def test_a_failed_attempt_from_a_third_provider_keeps_the_order_waiting(stocked: Shop) -> None:
    intent = _started(stocked)
    result = stocked.receive(SOURCE, _body("e1", "failed", intent, 2500), HEADERS)
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment"), result
    check_all(stocked)


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, SignatureMissing), ({"X-Token": "guess"}, SignatureMismatch)],
)
def test_an_unauthentic_delivery_writes_nothing(
    stocked: Shop, headers: dict[str, str], error: type[Exception]
) -> None:
    intent = _started(stocked)
    with unchanged(stocked), pytest.raises(error):
        stocked.receive(SOURCE, _body("e1", "paid", intent, 2500), headers)


def test_stripe_is_one_source_among_others(stocked: Shop) -> None:
    """`Shop.receive(StripeWebhooks(secret), ...)` is what `settle_webhook` does."""
    _started(stocked)
    body = body_for(stocked, "o1", "payment_intent.succeeded", event_id="evt_1")
    headers = {"stripe-signature": sign(body, SECRET, int(stocked.clock().timestamp()))}
    result = stocked.receive(StripeWebhooks(SECRET), body, headers)
    assert (result.outcome, result.order_status) == ("settled", "fulfilled"), result
    (received,) = events_of(stocked, "WebhookReceived")
    assert received.provider == "stripe"


def _code_words(path: Path) -> list[str]:
    """Every imported module, identifier and string in `path`'s code (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            words.append(node.module or "")
        elif isinstance(node, ast.Import):
            words.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            words.append(node.value)
    return words


@pytest.mark.parametrize("name", ["webhooks.py", "reconcile.py"])
def test_the_settler_names_no_provider(name: str) -> None:
    """Provider formats stop at their source: the settler and reconciliation see neutral
    values only (no provider module, event type or id prefix in their code)."""
    for word in _code_words(ROOT / "commerce" / name):
        for provider_word in ("stripe", "sumup", "payment_intent.", "charge.", "checkout.", "pi_"):
            assert provider_word not in word.lower(), f"commerce/{name}: {word!r}"


def test_the_provider_check_sees_a_stripe_branch(tmp_path: Path) -> None:
    """The check above would catch a settler branch on a Stripe event type."""
    settler = tmp_path / "settler.py"
    settler.write_text(
        '"""Mentions Stripe in prose only."""\nif t == "charge.refunded":\n    pass\n'
    )
    assert "charge.refunded" in _code_words(settler)
    assert not any("Stripe" in word for word in _code_words(settler))
