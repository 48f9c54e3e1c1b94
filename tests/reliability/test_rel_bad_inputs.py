"""Bad-input corpus for the library: each bad input gets its typed error (or outcome) and
message, and writes nothing where nothing should be written (chain head and event count
compared before and after; file-level cases compare the file's sha256).

The CLI's corpus is in `test_rel_cli_bad_inputs.py`.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from reliability_helpers import SECRET, Clock, event_body, intent_of, sha256_file

from commerce import (
    BodyTooLarge,
    CouponRejected,
    DuplicateSku,
    EmptyOrder,
    FakeProvider,
    FloatNotAllowed,
    InvalidMoney,
    InvalidOrder,
    InvalidQuantity,
    InvalidTransition,
    LiveModeMismatch,
    MalformedEvent,
    Money,
    PaymentIntent,
    Shop,
    ShopConfig,
    SignatureExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    UnknownCurrency,
    UnknownOrder,
    UnknownProduct,
    parse_money,
    sign,
)
from flowlib import ImportRejected
from ledger import NotALedger, ReadOnlyLedger, SchemaTooNew

SUCCEEDED = "payment_intent.succeeded"


@dataclass
class Ctx:
    """A shop with one order ("o1", 2 x APL, awaiting payment) and a settable clock."""

    shop: Shop
    clock: Clock
    intent: PaymentIntent

    def body(self, top: dict[str, Any] | None = None, **obj: Any) -> bytes:
        """A genuine event about o1, with `top` and `data.object` (`obj`) fields changed."""
        doc = msgspec.json.decode(event_body(self.intent, SUCCEEDED, "evt_bad", self.clock.unix))
        doc.update(top or {})
        doc["data"]["object"].update(obj)
        return msgspec.json.encode(doc)

    def deliver(self, body: bytes, header: str | None = "sign", secret: str = SECRET) -> Any:
        if header == "sign":
            header = sign(body, secret, self.clock.unix)
        return self.shop.settle_webhook(body, header, secret=SECRET)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Ctx]:
    clock = Clock()
    config = ShopConfig(payment_timeout_seconds=600)
    with Shop.open(tmp_path / "shop.db", clock=clock, provider=FakeProvider(), config=config) as s:
        s.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        s.start_order([("APL", 2)], order_id="o1")
        yield Ctx(s, clock, intent_of(s, "o1"))


def _forged_future(c: Ctx) -> Any:
    body = c.body()
    return c.shop.settle_webhook(body, sign(body, SECRET, c.clock.unix + 301), secret=SECRET)


def _tampered(c: Ctx) -> Any:
    body = c.body()
    header = sign(body, SECRET, c.clock.unix)
    return c.shop.settle_webhook(
        body.replace(b'"amount":500', b'"amount":5'), header, secret=SECRET
    )


def _ghost_intent(c: Ctx) -> Any:
    ghost = PaymentIntent(intent_id="pi_ghost0001", order_id="nope", amount=500, currency="EUR")
    return c.deliver(event_body(ghost, SUCCEEDED, "evt_ghost", c.clock.unix))


# (id, action, expected error or None for an outcome, message fragment, events written:
# a number, or None for "some", as settling runs the order's flow steps too)
Action = Callable[[Ctx], Any]
CASES: list[tuple[str, Action, type[Exception] | None, str, int | None]] = [
    # -- webhook signatures: decided before parsing, nothing written --------------------
    (
        "signature-missing",
        lambda c: c.deliver(c.body(), None),
        SignatureMissing,
        "no Stripe-Signature",
        0,
    ),
    (
        "signature-empty",
        lambda c: c.deliver(c.body(), "  "),
        SignatureMissing,
        "no Stripe-Signature",
        0,
    ),
    (
        "signature-no-v1",
        lambda c: c.deliver(c.body(), f"t={c.clock.unix},v0=abc"),
        SignatureMissing,
        "schemes found: v0",
        0,
    ),
    (
        "signature-garbage",
        lambda c: c.deliver(c.body(), "garbage"),
        SignatureMalformed,
        "key=value",
        0,
    ),
    (
        "signature-bad-timestamp",
        lambda c: c.deliver(c.body(), "t=yesterday,v1=00"),
        SignatureMalformed,
        "not unix seconds",
        0,
    ),
    (
        "signature-wrong-secret",
        lambda c: c.deliver(c.body(), "sign", secret="whsec_other"),
        SignatureMismatch,
        "matches the body",
        0,
    ),
    ("signature-tampered-body", _tampered, SignatureMismatch, "matches the body", 0),
    (
        "signature-expired",
        lambda c: c.shop.settle_webhook(
            c.body(), sign(c.body(), SECRET, c.clock.unix - 301), secret=SECRET
        ),
        SignatureExpired,
        "301s old",
        0,
    ),
    ("signature-from-the-future", _forged_future, SignatureExpired, "in the future", 0),
    # -- webhook bodies: authentic but unusable, nothing written ------------------------
    ("body-malformed-json", lambda c: c.deliver(b"not json"), MalformedEvent, "invalid JSON", 0),
    ("body-truncated-json", lambda c: c.deliver(c.body()[:-40]), MalformedEvent, "truncated", 0),
    (
        "body-empty-object",
        lambda c: c.deliver(b"{}"),
        MalformedEvent,
        "missing required field `id`",
        0,
    ),
    (
        "body-over-limit",
        lambda c: c.deliver(b" " * (1024 * 1024 + 1)),
        BodyTooLarge,
        "over the 1048576-byte limit",
        0,
    ),
    (
        "body-amount-as-text",
        lambda c: c.deliver(c.body(amount="500")),
        MalformedEvent,
        "$.data.object.amount",
        0,
    ),
    (
        "body-negative-amount",
        lambda c: c.deliver(c.body(amount_received=-5)),
        MalformedEvent,
        "$.data.object.amount_received",
        0,
    ),
    (
        "body-livemode-as-text",
        lambda c: c.deliver(c.body({"livemode": "false"})),
        MalformedEvent,
        "$.livemode",
        0,
    ),
    (
        "body-unknown-currency",
        lambda c: c.deliver(c.body(currency="zzz")),
        MalformedEvent,
        "unknown currency",
        0,
    ),
    (
        "body-not-bytes",
        lambda c: c.shop.settle_webhook("{}", "t=1,v1=00", secret=SECRET),
        TypeError,
        "raw bytes",
        0,
    ),
    (
        "body-live-mode-event",
        lambda c: c.deliver(c.body({"livemode": True})),
        LiveModeMismatch,
        "live-mode",
        0,
    ),
    # -- webhook bodies that are recorded, not acted on ---------------------------------
    (
        "event-type-unknown",
        lambda c: c.deliver(c.body({"type": "customer.created"})),
        None,
        "ignored: event type customer.created is not acted on",
        1,
    ),
    (
        "event-amount-mismatch",
        lambda c: c.deliver(c.body(amount_received=499)),
        None,
        "recorded: payment kept; order is needs_review",
        None,
    ),
    (
        "event-currency-mismatch",
        lambda c: c.deliver(c.body(currency="usd")),
        None,
        "recorded: payment kept; order is needs_review",
        None,
    ),
    (
        "event-refund-unknown-intent",
        lambda c: c.deliver(
            event_body(
                PaymentIntent(intent_id="pi_ghost0002", order_id="x", amount=5, currency="EUR"),
                "charge.refunded",
                "evt_r",
                c.clock.unix,
            )
        ),
        None,
        "ignored: refund for unknown payment intent pi_ghost0002",
        1,
    ),
    # -- orders and catalog -------------------------------------------------------------
    (
        "order-negative-quantity",
        lambda c: c.shop.start_order([("APL", -1)]),
        InvalidQuantity,
        "invalid quantity -1",
        0,
    ),
    (
        "order-zero-quantity",
        lambda c: c.shop.start_order([("APL", 0)]),
        InvalidQuantity,
        "invalid quantity 0",
        0,
    ),
    (
        "order-float-quantity",
        lambda c: c.shop.start_order([("APL", 1.5)]),
        InvalidQuantity,
        "invalid quantity 1.5",
        0,
    ),
    (
        "order-bool-quantity",
        lambda c: c.shop.start_order([("APL", True)]),
        InvalidQuantity,
        "invalid quantity True",
        0,
    ),
    (
        "order-unknown-sku",
        lambda c: c.shop.start_order([("NOPE", 1)]),
        UnknownProduct,
        "unknown product 'NOPE'",
        0,
    ),
    ("order-no-lines", lambda c: c.shop.start_order([]), EmptyOrder, "at least one line", 0),
    (
        "order-duplicate-sku",
        lambda c: c.shop.start_order([("APL", 1), ("APL", 1)]),
        DuplicateSku,
        "duplicate SKU lines for 'APL'",
        0,
    ),
    (
        "order-unknown-coupon",
        lambda c: c.shop.start_order([("APL", 1)], coupon="NOPE"),
        CouponRejected,
        "no such coupon",
        0,
    ),
    ("order-unknown-id", lambda c: c.shop.order("nope"), UnknownOrder, "unknown order 'nope'", 0),
    (
        "cancel-unknown-order",
        lambda c: c.shop.cancel_order("nope"),
        UnknownOrder,
        "unknown order 'nope'",
        0,
    ),
    (
        "settle-unknown-order",
        lambda c: c.shop.settle("nope"),
        UnknownOrder,
        "unknown order 'nope'",
        0,
    ),
    (
        "restock-unknown-sku",
        lambda c: c.shop.restock("NOPE", 1),
        UnknownProduct,
        "unknown product 'NOPE'",
        0,
    ),
    (
        "restock-negative",
        lambda c: c.shop.restock("APL", -3),
        InvalidQuantity,
        "invalid quantity -3",
        0,
    ),
    (
        "product-twice",
        lambda c: c.shop.add_product("APL", "Again", Money(1, "EUR")),
        InvalidTransition,
        "in the catalog",
        0,
    ),
    (
        "product-blank-sku",
        lambda c: c.shop.add_product(" ", "Blank", Money(1, "EUR")),
        InvalidOrder,
        "non-empty SKU",
        0,
    ),
    (
        "import-garbage",
        lambda c: c.shop.import_flows(b"garbage"),
        ImportRejected,
        "not a valid shop export",
        0,
    ),
    (
        "import-other-format",
        lambda c: c.shop.import_flows(b'{"format":"x","format_version":1}'),
        ImportRejected,
        "expected orderflow.shop",
        0,
    ),
    # -- money ----------------------------------------------------------------------------
    (
        "money-decimal-comma",
        lambda c: parse_money("12,50", "EUR"),
        InvalidMoney,
        "expected digits",
        0,
    ),
    (
        "money-too-many-decimals",
        lambda c: parse_money("1.234", "EUR"),
        InvalidMoney,
        "at most 2 decimals",
        0,
    ),
    ("money-negative", lambda c: parse_money("-1", "EUR"), InvalidMoney, "negative amounts", 0),
    ("money-exponent", lambda c: parse_money("1e3", "EUR"), InvalidMoney, "expected digits", 0),
    ("money-nan", lambda c: parse_money("NaN", "EUR"), InvalidMoney, "expected digits", 0),
    ("money-empty", lambda c: parse_money("", "EUR"), InvalidMoney, "expected digits", 0),
    (
        "money-unknown-currency",
        lambda c: parse_money("1.00", "XXX"),
        UnknownCurrency,
        "unknown currency 'XXX'",
        0,
    ),
    ("money-float", lambda c: Money(1.5, "EUR"), FloatNotAllowed, "floats are not allowed", 0),
]


@pytest.mark.parametrize(
    ("action", "error", "fragment", "written"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input(
    ctx: Ctx, action: Action, error: type[Exception] | None, fragment: str, written: int | None
) -> None:
    ledger = ctx.shop.ledger
    head, count = ledger.head(), ledger.count()
    products, orders = ctx.shop.products(), ctx.shop.orders()
    if error is None:
        result = action(ctx)
        assert fragment == f"{result.outcome}: {result.reason}"
    else:
        with pytest.raises(error) as caught:
            action(ctx)
        assert fragment in str(caught.value)
    if written is None:
        assert ledger.count() > count
    else:
        assert ledger.count() == count + written
    if written == 0:
        assert ledger.head() == head
        assert (ctx.shop.products(), ctx.shop.orders()) == (products, orders)
    assert ledger.verify().ok


def test_outcomes_of_mismatched_payments_keep_the_money_for_review(ctx: Ctx) -> None:
    result = ctx.deliver(ctx.body(currency="usd"))
    row = ctx.shop.order("o1").order
    assert (result.order_status, row.status, row.paid) == ("needs_review", "needs_review", 500)
    assert ctx.shop.engine.status("o1").status == "completed"
    # the reservation is kept for the person who reviews it
    assert ctx.shop.products()[0].reserved == 2


def test_payment_for_an_unknown_intent_is_parked(ctx: Ctx) -> None:
    head, count = ctx.shop.ledger.head(), ctx.shop.ledger.count()
    result = _ghost_intent(ctx)
    assert result.outcome == "recorded"
    assert result.reason.startswith("parked: its payment intent is not known yet")
    assert ctx.shop.ledger.count() == count + 2 and ctx.shop.ledger.head() != head


# -- file-level bad inputs: the file's bytes must not change -----------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 100)


def _truncated_ledger(path: Path) -> None:
    _real_ledger(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scribbled_ledger(path: Path) -> None:
    _real_ledger(path)
    data = bytearray(path.read_bytes())
    data[200:4000] = b"\xff" * 3800
    path.write_bytes(bytes(data))


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()


def _newer_schema(path: Path) -> None:
    _real_ledger(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def _read_only(path: Path) -> None:
    _real_ledger(path)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _real_ledger(path: Path) -> None:
    with Shop.open(path) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        shop.ledger.checkpoint("TRUNCATE")
    for leftover in (path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock")):
        leftover.unlink(missing_ok=True)


FILE_CASES: list[tuple[str, Callable[[Path], None], type[Exception], str]] = [
    ("not-sqlite", _garbage, NotALedger, "not a SQLite database"),
    ("truncated-ledger", _truncated_ledger, NotALedger, "malformed"),
    ("scribbled-ledger", _scribbled_ledger, NotALedger, "malformed"),
    ("foreign-sqlite", _foreign_sqlite, NotALedger, "another SQLite database"),
    ("newer-schema", _newer_schema, SchemaTooNew, "schema version 99"),
    ("read-only-file", _read_only, ReadOnlyLedger, "not writable"),
]


@pytest.mark.parametrize(
    ("make", "error", "fragment"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_bad_file(
    tmp_path: Path, make: Callable[[Path], None], error: type[Exception], fragment: str
) -> None:
    path = tmp_path / "shop.db"
    make(path)
    before = sha256_file(path)
    with pytest.raises(error) as caught:
        Shop.open(path)
    assert fragment in str(caught.value)
    assert sha256_file(path) == before
    assert not path.with_name("shop.db-wal").exists() or error is ReadOnlyLedger


def test_directory_as_ledger(tmp_path: Path) -> None:
    with pytest.raises(NotALedger, match="it is a directory"):
        Shop.open(tmp_path)
    assert os.listdir(tmp_path) == []
