from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.errors import (
    BadSignature,
    SignatureExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
)
from commerce.signature import parse_header, sign, verify

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "payments"
SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
T = 1_700_000_000


def hmac_hex(body: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_sign_produces_stripe_header() -> None:
    assert sign(BODY, SECRET, T) == f"t={T},v1={hmac_hex(BODY, SECRET, T)}"


def test_verify_returns_the_timestamp() -> None:
    assert verify(BODY, sign(BODY, SECRET, T), SECRET, now=T + 10) == T


def test_several_v1_and_unknown_schemes() -> None:
    good = hmac_hex(BODY, SECRET, T)
    old = hmac_hex(BODY, "whsec_old", T)
    header = f"t={T}, v1={old}, v1={good}, v0=deadbeef, scheme9=x"
    assert verify(BODY, header, SECRET, now=T) == T
    assert verify(BODY, header, "whsec_old", now=T) == T
    assert parse_header(header) == (T, [old, good])


def test_header_as_bytes() -> None:
    assert verify(BODY, sign(BODY, SECRET, T).encode(), SECRET, now=T) == T


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureMissing, match="no Stripe-Signature header"):
        verify(BODY, header, SECRET, now=T)


def test_header_without_v1_is_missing_a_signature() -> None:
    with pytest.raises(SignatureMissing, match=r"no v1 signature .*schemes found: v0"):
        verify(BODY, f"t={T},v0={hmac_hex(BODY, SECRET, T)}", SECRET, now=T)
    with pytest.raises(SignatureMissing, match="schemes found: none"):
        verify(BODY, f"t={T}", SECRET, now=T)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("garbage", "expected key=value"),
        ("v1=abc", "expected one t="),
        (f"t={T},t={T},v1=abc", "found 2"),
        ("t=abc,v1=abc", "not unix seconds"),
        ("t=-5,v1=abc", "not unix seconds"),
        ("t=1e9,v1=abc", "not unix seconds"),
        ("t=\u0661\u0662,v1=abc", "not unix seconds"),
        (f"t={T},,v1=abc", "expected key=value"),
        (f"t={T},=abc", "expected key=value"),
        (f"t={T},v1=" + "a" * 9000, "over 8192"),
    ],
)
def test_malformed_header(header: str, fragment: str) -> None:
    with pytest.raises(SignatureMalformed, match=fragment):
        verify(BODY, header, SECRET, now=T)


def test_mismatch() -> None:
    header = sign(BODY, SECRET, T)
    with pytest.raises(SignatureMismatch, match="none of 1 v1 signature"):
        verify(BODY, header, "whsec_other", now=T)
    with pytest.raises(SignatureMismatch):
        verify(BODY + b" ", header, SECRET, now=T)
    moved = header.replace(f"t={T}", f"t={T + 1}")
    with pytest.raises(SignatureMismatch):
        verify(BODY, moved, SECRET, now=T)
    with pytest.raises(SignatureMismatch):
        verify(BODY, f"t={T},v1=\u00e9\u00e9", SECRET, now=T)


def test_tolerance_both_ways() -> None:
    header = sign(BODY, SECRET, T)
    assert verify(BODY, header, SECRET, now=T + 300) == T
    assert verify(BODY, header, SECRET, now=T - 300) == T
    with pytest.raises(SignatureExpired, match="301s old") as info:
        verify(BODY, header, SECRET, now=T + 301)
    assert (info.value.timestamp, info.value.now, info.value.tolerance) == (T, T + 301, 300)
    with pytest.raises(SignatureExpired, match="1s in the future"):
        verify(BODY, header, SECRET, tolerance=0, now=T - 1)


def test_signature_is_decided_before_json() -> None:
    # verify never parses: any bytes verify, and a bad signature on bad JSON is a signature error
    junk = b"\xff{not json"
    assert verify(junk, sign(junk, SECRET, T), SECRET, now=T) == T
    with pytest.raises(BadSignature):
        verify(junk, sign(b"other", SECRET, T), SECRET, now=T)


def test_argument_checks() -> None:
    with pytest.raises(TypeError, match="raw bytes"):
        sign(BODY.decode(), SECRET, T)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret"):
        sign(BODY, "", T)
    with pytest.raises(ValueError, match="timestamp"):
        sign(BODY, SECRET, -1)
    with pytest.raises(ValueError, match="tolerance"):
        verify(BODY, sign(BODY, SECRET, T), SECRET, tolerance=-1, now=T)


def test_real_fixture_bytes_sign_and_verify() -> None:
    path = FIXTURES / "stripe" / "stripe-ruby-mock" / "payment_intent.succeeded.json"
    if not path.is_file():
        pytest.skip(f"payment fixtures not found at {FIXTURES} (shared/ sits beside the repo)")
    body = path.read_bytes()
    assert verify(body, sign(body, SECRET, T), SECRET, now=T) == T
    with pytest.raises(SignatureMismatch):
        verify(body.replace(b"2000", b"2001", 1), sign(body, SECRET, T), SECRET, now=T)


secrets = st.text(min_size=1, max_size=40)
stamps = st.integers(min_value=0, max_value=10**11)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512), secrets, stamps, st.integers(-300, 300))
def test_sign_then_verify(body: bytes, secret: str, t: int, skew: int) -> None:
    assert verify(body, sign(body, secret, t), secret, now=t + skew) == t


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=512), secrets, stamps, st.data())
def test_any_single_byte_change_fails(
    body: bytes, secret: str, t: int, data: st.DataObject
) -> None:
    header = sign(body, secret, t)
    i = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    with pytest.raises(SignatureMismatch):
        verify(changed, header, secret, now=t)
