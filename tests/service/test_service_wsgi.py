"""The WSGI callable under a real wsgiref server: the same answers as the ASGI app."""

from __future__ import annotations

from pathlib import Path

from service_helpers import SECRET, payments, raw_exchange, request, signed, stocked, wsgi_server

from commerce import MAX_BODY, FakeProvider, Shop, StripeWebhooks
from service import Settings, create_wsgi_app

QUIET = Settings(verify=False, worker=False, reconcile_every=1e6, scrub_every=1e6)


def test_the_wsgi_app_settles_refuses_and_cuts_off(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    (order,) = stocked(db, 1)
    body = payments(db, [order])[order]
    with Shop.open(db, provider=FakeProvider()) as shop:
        app = create_wsgi_app(shop, {"stripe": StripeWebhooks(SECRET)}, settings=QUIET)
        with wsgi_server(app, read_timeout=0.5) as port:
            settled = request(port, "POST", "/webhooks/stripe", body, signed(body))
            again = request(port, "POST", "/webhooks/stripe", body, signed(body))
            forged = request(port, "POST", "/webhooks/stripe", body, signed(body, "whsec_x"))
            unknown = request(port, "POST", "/webhooks/paypal", b"{}", {})
            head = (
                "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {MAX_BODY + 1}\r\n\r\n"
            ).encode()
            too_large = raw_exchange(port, head, [])
            slow = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"
            cut_off = raw_exchange(port, slow, [])
            health = request(port, "GET", "/healthz", None, {})
            metrics = request(port, "GET", "/metrics", None, {})
        app.close()
    assert (settled[0], settled[2]["outcome"]) == (200, "settled")
    assert (again[0], again[2]["outcome"]) == (200, "already_settled")
    assert (forged[0], forged[2]["kind"]) == (400, "SignatureMismatch")
    assert unknown[0] == 404
    assert too_large.startswith(b"HTTP/1.0 413 ") and b"1048576-byte limit" in too_large
    assert cut_off.startswith(b"HTTP/1.0 408 "), cut_off
    assert health[0] == 200 and health[2]["ok"]
    assert 'orderflow_deliveries_total{outcome="timed_out",provider="stripe"} 1' in metrics[2]
