"""Strict webhook bodies (`commerce.bodies`): every authentic body settles or is a typed
`MalformedEvent`, never a `UnicodeDecodeError` or `RecursionError`, and nothing is written.

The settle cases are the ones seen in the field: invalid UTF-8 inside a field nobody reads
(the ledger write failed, so an authentic payment never settled), nesting past the
decoder's recursion limit, and a repeated `"id"` (the last one silently won).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from shop_helpers import FIXTURES, SECRET, body_for, check_all, deliver, unchanged

from commerce import (
    MAX_BODY,
    MAX_JSON_DEPTH,
    BodyTooLarge,
    MalformedEvent,
    Shop,
    SignatureMismatch,
    decode_event,
)
from commerce.bodies import check_body
from commerce.sumup_events import decode_checkout, decode_notice

SUCCEEDED = "payment_intent.succeeded"
FIXTURE_FILES = sorted(FIXTURES.rglob("*.json")) if FIXTURES.is_dir() else []


def nested(depth: int, *, kind: str = "[") -> bytes:
    """A value `depth` containers deep: `[[[...]]]` or `{"a":{"a":...}}`."""
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def with_field(body: bytes, raw: bytes) -> bytes:
    """`body` (a JSON object) with one more top-level member, given as raw JSON text."""
    return body.rstrip()[:-1] + b"," + raw + b"}"


@pytest.fixture
def order(stocked: Shop) -> str:
    stocked.start_order([("MUG", 2)], order_id="o1")
    return "o1"


@pytest.fixture
def paid(stocked: Shop, order: str) -> bytes:
    """An authentic `payment_intent.succeeded` body for order o1."""
    return body_for(stocked, order, SUCCEEDED, event_id="evt_1")


# -- what passes -------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURE_FILES, reason="the payment fixtures are not beside the repo")
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_real_fixture_is_strict_json(path: Path) -> None:
    check_body(path.read_bytes())


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"[[[[{{{{"}',  # brackets inside strings are text
        b'{"a":"\\"[[[[[[[[","b":"\\\\"}',  # ...also after escaped quotes
        b'{"a":{"id":1},"b":{"id":2},"id":3}',  # one key in several objects
        b'{"a":"x:y","b":["c:d"]}',  # colons inside strings
        b'{"emoji":"\\ud83d\\ude00","raw":"\xf0\x9f\x98\x80"}',  # a surrogate pair, escaped
        b'{"a":' + nested(MAX_JSON_DEPTH - 1) + b"}",
        b"{" + b",".join(b'"k%d":[1]' % i for i in range(200)) + b"}",  # wide, not deep
    ],
    ids=["brackets-in-strings", "escaped-quotes", "same-key-other-objects", "colons", "pair",
         "at-the-depth-limit", "wide"],
)  # fmt: skip
def test_strict_bodies_pass(body: bytes) -> None:
    check_body(body)


# -- what is refused, and how it is named -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"a":"\xff"}', "invalid UTF-8 at byte 6"),
        (b'{"a":"\xed\xa0\x80"}', "invalid UTF-8 at byte 6"),  # an encoded surrogate
        (b'{"a":"\xc0\xaf"}', "invalid UTF-8 at byte 6"),  # overlong
        (b'{"a":"x\xe2\x82"}', "invalid UTF-8 at byte 7"),  # cut short
        (b'{"a":"\\ud800"}', "invalid JSON"),  # a lone surrogate, escaped
        (b'{"a":"\\udc00x"}', "invalid JSON"),
        (nested(MAX_JSON_DEPTH + 1), f"nested {MAX_JSON_DEPTH + 1} levels deep"),
        (nested(MAX_JSON_DEPTH + 1, kind="{"), f"nested {MAX_JSON_DEPTH + 1} levels deep"),
        (nested(200_000), "nested 200000 levels deep"),
        (b"[" * 100_000, "nested 100000 levels deep"),  # never closed: still counted
        (b'{"a":"\\"",' + b'"b":' + nested(100) + b"}", "nested 101 levels deep"),
        (b'{"id":"evt_1","id":"evt_2"}', "duplicate key 'id' at `$`"),
        (b'{"data":{"object":{"id":"pi_1","x":1,"id":"pi_2"}}}', "at `$.data.object`"),
        (b'{"a":[{"k":1},{"k":1,"k":2}]}', "duplicate key 'k' at `$.a[1]`"),
        (b'{"a\\"b":1,"a\\"b":2}', "duplicate key 'a\"b'"),
        (b'{"a":NaN}', "invalid JSON"),
        (b'{"a":1e400}', "invalid JSON"),
        (b'{"a":' + b"1" * 5000 + b"}", "invalid JSON"),
        (b'{"a":1', "invalid JSON"),
        (b"", "invalid JSON"),
    ],
    ids=lambda v: None if isinstance(v, str) else repr(v[:24]),
)
def test_loose_bodies_are_malformed(body: bytes, fragment: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        check_body(body)
    assert fragment in str(caught.value)


def test_size_is_checked_first() -> None:
    with pytest.raises(BodyTooLarge, match=f"over the {MAX_BODY}-byte limit"):
        check_body(b"[" * (MAX_BODY + 1))


VALID = [
    (decode_event, b'{"id":"evt_1","type":"customer.created","livemode":false,"created":1}'),
    (decode_notice, b'{"id":"c1","event_type":"CHECKOUT_STATUS_CHANGED"}'),
    (decode_checkout, b'{"id":"c1","amount":10.1,"currency":"EUR","status":"PAID"}'),
]


@pytest.mark.parametrize(
    "extra",
    [b'"x":"\xff"', b'"id":"other"', b'"deep":' + nested(5000)],
    ids=["invalid-utf8", "repeated-id", "deep"],
)
@pytest.mark.parametrize(("decode", "body"), VALID, ids=lambda v: getattr(v, "__name__", ""))
def test_both_providers_decoders_run_the_check(decode, body: bytes, extra: bytes) -> None:  # type: ignore[no-untyped-def]
    decode(body)  # decodes as it stands
    with pytest.raises(MalformedEvent):
        decode(with_field(body, extra))


# -- through the shop: the cases seen in the field ---------------------------------------


def test_invalid_utf8_in_an_unused_field_is_malformed_and_writes_nothing(
    stocked: Shop, paid: bytes
) -> None:
    doc = json.loads(paid)
    doc["data"]["object"]["description"] = "PLACEHOLDER"
    body = json.dumps(doc).encode().replace(b"PLACEHOLDER", b"caf\xe9")  # Latin-1, not UTF-8
    with unchanged(stocked), pytest.raises(MalformedEvent, match="invalid UTF-8 at byte"):
        deliver(stocked, body)
    assert deliver(stocked, paid).outcome == "settled"  # the well-formed delivery still settles
    check_all(stocked)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_malformed_and_writes_nothing(
    stocked: Shop, paid: bytes, depth: int
) -> None:
    body = with_field(paid, b'"deep":' + nested(depth - 1))
    with unchanged(stocked), pytest.raises(MalformedEvent, match=f"nested {depth} levels"):
        deliver(stocked, body)
    assert deliver(stocked, paid).outcome == "settled"


def test_a_repeated_event_id_is_malformed_and_writes_nothing(stocked: Shop, paid: bytes) -> None:
    twice = with_field(paid, b'"id":"evt_other"')
    with (
        unchanged(stocked),
        pytest.raises(MalformedEvent, match=re.escape("duplicate key 'id' at `$`")),
    ):
        deliver(stocked, twice)
    assert deliver(stocked, paid).outcome == "settled"


def test_a_repeated_amount_is_malformed(stocked: Shop, paid: bytes) -> None:
    doc = json.loads(paid)
    inner = json.dumps(doc["data"]["object"]).encode()
    doc["data"]["object"] = "INNER"
    body = json.dumps(doc).encode().replace(b'"INNER"', with_field(inner, b'"amount":1'))
    with (
        unchanged(stocked),
        pytest.raises(MalformedEvent, match=re.escape("'amount' at `$.data.object`")),
    ):
        deliver(stocked, body)


def test_an_oversized_body_is_refused_before_its_signature_is_hashed(stocked: Shop) -> None:
    """Checking the signature first would hash all of it and say `SignatureMismatch`."""
    body = b" " * (MAX_BODY + 1)
    header = "t=1700000000,v1=" + "0" * 64
    with unchanged(stocked), pytest.raises(BodyTooLarge, match=f"{MAX_BODY + 1} bytes"):
        stocked.settle_webhook(body, header, secret=SECRET)
    with pytest.raises(SignatureMismatch):  # at the cap, the signature is checked as usual
        stocked.settle_webhook(body[:-1], header, secret=SECRET)
