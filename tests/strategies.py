"""Hypothesis strategies shared by the test suites (money, order lines, coupons)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import strategies as st

from commerce.money import EXPONENTS, Money
from commerce.pricing import Coupon, Line

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed, timezone-aware 'now' for quotes."""

COMMON_CURRENCIES = ("EUR", "USD", "GBP", "JPY", "KRW", "BHD", "KWD", "TND")
"""Two-, zero- and three-decimal currencies: the cases that catch exponent bugs."""

T = TypeVar("T")

currencies = st.sampled_from(COMMON_CURRENCIES)
any_currency = st.sampled_from(sorted(EXPONENTS))
skus = st.from_regex(r"[A-Z][A-Z0-9-]{0,7}", fullmatch=True)
tax_rates_bp = st.integers(min_value=0, max_value=10_000)  # MAX_TAX_RATE_BP: 100%


def money(
    currency: str | None = None, *, min_amount: int = 0, max_amount: int = 10**15
) -> st.SearchStrategy[Money]:
    """`Money` in `currency` (else any known currency) between the bounds, in minor units."""
    codes = st.just(currency) if currency else any_currency
    return st.builds(Money, st.integers(min_amount, max_amount), codes)


def lines(
    currency: str, *, max_lines: int = 6, max_unit_price: int = 10**7
) -> st.SearchStrategy[list[Line]]:
    """Non-empty order lines in one currency, one line per SKU."""
    line = st.builds(
        Line,
        sku=skus,
        quantity=st.integers(1, 1_000),
        unit_price=st.integers(0, max_unit_price),
        currency=st.just(currency),
    )
    return st.lists(line, min_size=1, max_size=max_lines, unique_by=lambda x: x.sku)


def coupons(currency: str, *, now: datetime = NOW) -> st.SearchStrategy[Coupon]:
    """Well-defined coupons for `currency`, unexpired at `now` (the minimum may not be met)."""
    expires = st.none() | st.integers(1, 10**7).map(lambda s: now + timedelta(seconds=s))
    min_subtotal = st.integers(0, 10**6)
    percent = st.builds(
        Coupon,
        code=skus,
        percent_off_bp=st.integers(1, 10_000),
        currency=st.just(currency),
        min_subtotal=min_subtotal,
        expires_at=expires,
    )
    fixed = st.builds(
        Coupon,
        code=skus,
        amount_off=st.integers(0, 10**8),
        currency=st.just(currency),
        min_subtotal=min_subtotal,
        expires_at=expires,
    )
    return percent | fixed


orders = currencies.flatmap(lambda c: st.tuples(st.just(c), lines(c), st.none() | coupons(c)))
"""(currency, lines, coupon or None): a whole order to quote."""


# -- webhook deliveries (tests/commerce/test_settle_properties.py) ------------------------

WEBHOOK_KINDS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)


def deliveries(
    order_ids: list[str], *, max_size: int = 14
) -> st.SearchStrategy[list[tuple[str, ...]]]:
    """Webhook deliveries over `order_ids` in any order, with repeats and re-used event ids.

    Each item is `("d", order_id, kind, event_id, "full" | "partial")` or `("tick",)` (the
    payment timeout passes). A small pool of event ids makes duplicates, re-ids and
    same-id-different-body conflicts likely.
    """
    delivery = st.tuples(
        st.just("d"),
        st.sampled_from(order_ids),
        st.sampled_from(WEBHOOK_KINDS),
        st.sampled_from(("evt_a", "evt_b", "evt_c")),
        st.sampled_from(("full", "partial")),
    )
    tick: st.SearchStrategy[tuple[str, ...]] = st.just(("tick",))
    item = st.one_of(delivery, delivery, delivery, tick)  # ticks are rarer
    return st.lists(item, max_size=max_size)


# -- mutated webhook bodies (tests/commerce/test_bodies_fuzz.py) --------------------------

INVALID_UTF8 = (b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80")
"""A stray byte, a lone continuation byte, an overlong, a surrogate, a cut-short sequence,
and a code point past U+10FFFF."""


JsonPath = tuple[str | int, ...]


def _objects(node: object, path: JsonPath = ()) -> list[JsonPath]:
    """The path (keys and indexes) of every object in a decoded JSON document."""
    if isinstance(node, list):
        return [found for i, item in enumerate(node) for found in _objects(item, (*path, i))]
    if not isinstance(node, dict):
        return []
    found = [path]
    for key, value in node.items():
        found += _objects(value, (*path, key))
    return found


def _append(obj: bytes, member: bytes) -> bytes:
    """The JSON object text `obj` with the raw `"key":value` text `member` added last."""
    inner = obj.rstrip()[:-1]
    return inner + (b"," if inner.rstrip() != b"{" else b"") + member + b"}"


def add_member(body: bytes, path: JsonPath, member: bytes) -> bytes:
    """`body` with the raw JSON text `member` added to the object at `path`."""
    if not path:
        return _append(body, member)
    doc = json.loads(body)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    spliced = _append(json.dumps(parent[path[-1]]).encode(), member)
    parent[path[-1]] = "\x00INNER\x00"
    return json.dumps(doc).encode().replace(b'"\\u0000INNER\\u0000"', spliced)


@st.composite
def _structural(draw: st.DrawFn, body: bytes) -> bytes:
    """One change made through the JSON structure, at any object of the (pristine) body."""
    doc = json.loads(body)
    paths = _objects(doc)
    if not paths:
        return body
    path = draw(st.sampled_from(paths))
    node = doc
    for key in path:
        node = node[key]
    kind = draw(st.sampled_from(("none", "utf8", "deep", "duplicate", "extra")))
    if kind == "utf8":  # inside a string nobody reads
        member = b'"note":"caf' + draw(st.sampled_from(INVALID_UTF8)) + b'"'
    elif kind == "deep":
        depth = draw(st.integers(1, 3000))
        member = b'"deep":' + b"[" * depth + b"]" * depth
    elif kind == "duplicate" and node:
        key = draw(st.sampled_from(sorted(node)))
        value = draw(st.sampled_from([node[key], "evt_other", 1, None]))
        member = json.dumps(key).encode() + b":" + json.dumps(value).encode()
    elif kind == "extra":
        member = b'"extra":{"ok":[1,"\\u00e9"]}'  # harmless: the body still settles
    else:
        return body
    return add_member(body, path, member)


@st.composite
def _bytewise(draw: st.DrawFn, body: bytes) -> bytes:
    """One change to the bytes: a flip, a cut, or invalid UTF-8 inserted anywhere."""
    at = draw(st.integers(0, max(len(body) - 1, 0)))
    kind = draw(st.sampled_from(("flip", "truncate", "utf8")))
    if kind == "flip" and body:
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if kind == "truncate":
        return body[:at]
    return body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:]


def mutated(body: bytes) -> st.SearchStrategy[bytes]:
    """`body` changed once through its structure (invalid UTF-8 in an unused string, deep
    nesting, a repeated key in any object, a harmless field, or nothing), then 0-2 times
    byte by byte (flips, truncation, invalid UTF-8 anywhere)."""

    def bytewise(current: bytes, steps: int) -> st.SearchStrategy[bytes]:
        result = st.just(current)
        for _ in range(steps):
            result = result.flatmap(_bytewise)
        return result

    return st.tuples(_structural(body), st.integers(0, 2)).flatmap(lambda t: bytewise(*t))


# -- shop histories and their interleavings (tests/commerce/test_projection_interleavings.py)

HISTORY_ORDERS = ("o0", "o1", "o2", "o3")
HISTORY_SKUS = ("MUG", "TEE", "YEN", "CUP")  # CUP: not in the standard catalog until added


def shop_histories(*, max_size: int = 30) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """What a shop goes through: orders on several SKUs, webhooks, timers, moves of stock.

    Items name their action first (see `test_projection_interleavings.play`); the first
    ones start orders. Small pools of order ids, SKUs and event ids make duplicates, late
    payments and refused commands likely.
    """
    order = st.sampled_from(HISTORY_ORDERS)
    euros = st.lists(
        st.tuples(st.sampled_from(HISTORY_SKUS[:2] + HISTORY_SKUS[3:]), st.integers(1, 3)),
        min_size=1,
        max_size=3,
        unique_by=_first,
    )
    basket = euros | euros | st.integers(1, 2).map(lambda quantity: [("YEN", quantity)])
    start = st.tuples(st.sampled_from(("start", "start", "early")), order, basket)
    event = st.sampled_from(("evt_a", "evt_b", "evt_c"))
    webhook = st.tuples(st.just("webhook"), order, st.sampled_from(WEBHOOK_KINDS), event)
    partial = st.tuples(st.just("partial_refund"), order, event)
    other = st.one_of(
        st.tuples(st.sampled_from(("settle", "cancel", "foreign", "accept", "refund")), order),
        st.tuples(st.just("restock"), st.sampled_from(HISTORY_SKUS), st.integers(1, 4)),
        st.tuples(st.sampled_from(("product", "ghost", "tick", "retry", "coupon"))),
    )
    item = st.one_of(start, webhook, webhook, webhook, partial, other, other)
    opening = st.lists(start, min_size=2, max_size=4, unique_by=_second)
    return st.tuples(opening, st.lists(item, min_size=6, max_size=max_size)).map(_joined)


def _first(pair: tuple[str, int]) -> str:
    return pair[0]


def _second(item: tuple[Any, ...]) -> Any:
    return item[1]


def _joined(parts: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    return parts[0] + parts[1]


@st.composite
def interleavings(draw: st.DrawFn, streams: Mapping[str, Sequence[T]]) -> list[T]:
    """A random merge of the sequences, each one's own order kept (runs of one drawn at once).

    Shrinks towards taking the streams whole, one after another, in the order given.
    """
    queues = [list(items) for items in streams.values() if items]
    merged: list[T] = []
    while queues:
        index = draw(st.integers(0, len(queues) - 1))
        queue = queues[index]
        run = draw(st.integers(1, len(queue))) if len(queue) > 1 else 1
        merged.extend(queue[:run])
        del queue[:run]
        if not queue:
            del queues[index]
    return merged
