"""`orderflow serve --db postgresql://...`: a real server process settles signed deliveries
on the PostgreSQL test server (skipped when `ORDERFLOW_TEST_PG_DSN` is unset)."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_helpers import BIN, Server, fulfilled, payments, received, signed, stocked

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")


def test_serve_on_a_dsn_settles_a_signed_delivery_once(pg_dsn: str, tmp_path: Path) -> None:
    order_ids = stocked(pg_dsn, 2)
    bodies = payments(pg_dsn, order_ids)
    server = Server(pg_dsn, logs=tmp_path)
    try:
        status, _, health = server.get("/healthz")
        assert status == 200, health
        body = bodies["o0"]
        status, _, answer = server.post("/webhooks/stripe", body, signed(body))
        assert (status, answer["outcome"], answer["order_status"]) == (200, "settled", "fulfilled")
        status, _, again = server.post("/webhooks/stripe", body, signed(body))
        assert (status, again["outcome"]) == (200, "already_settled")
    finally:
        assert server.stop() == 0, server.logs()
    assert fulfilled(pg_dsn) == {"o0": 1}
    assert received(pg_dsn) == {"evt_o0": 1}
