"""Workloads the reliability tests run in real subprocesses (`python workload.py MODE ...`).

    churn DB SENT SEED START   start and settle orders forever, timers firing, until killed;
                               each webhook body goes to SENT (fsync'd) before it is
                               delivered, and "ACK <event id> <outcome>" is printed after
    deliver DB BODIES SEED GO  deliver every body of the JSON list BODIES, shuffled, once
                               the file GO exists; prints "OUTCOME <event id> <outcome>"
    order DB SKU QTY N SEED GO start N orders for QTY of SKU once GO exists; prints
                               "ACCEPTED <order id>" or "OUT <order id>"

Each mode prints "READY" once its shop is open. Clocks are virtual (see `Clock`), so the
parent decides when payment timeouts fall due.
"""

from __future__ import annotations

import base64
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).parent))

from reliability_helpers import SECRET, T0, Clock, event_body

from commerce import FakeProvider, OutOfStock, PaymentIntent, Shop, ShopConfig, sign

SKUS = ("APL", "BRD", "CHS")
TIMEOUT = 60
CONFIG = ShopConfig(payment_timeout_seconds=TIMEOUT)


def say(*parts: object) -> None:
    print(*parts, flush=True)


def wait_for(go: Path) -> None:
    while not go.exists():
        time.sleep(0.002)


def record_sent(sent: object, body: bytes) -> None:
    """Append the body to the side file and fsync it before it is delivered."""
    sent.write(base64.b64encode(body) + b"\n")  # type: ignore[attr-defined]
    sent.flush()  # type: ignore[attr-defined]
    os.fsync(sent.fileno())  # type: ignore[attr-defined]


def deliver(shop: Shop, clock: Clock, sent: object, body: bytes, event_id: str) -> None:
    record_sent(sent, body)
    result = shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
    say("ACK", event_id, result.outcome)


def churn(db: str, sent_path: str, seed: int, start: float) -> None:
    """Start, pay, fail, cancel and abandon orders with timers firing, until killed."""
    rng = random.Random(seed)
    clock = Clock(T0 + timedelta(seconds=start))
    shop = Shop.open(db, synchronous="NORMAL", clock=clock, provider=FakeProvider(), config=CONFIG)
    say("READY")
    with open(sent_path, "ab") as sent:
        for n in range(1_000_000):
            clock.advance(rng.choice([1, 2, 5, 20]))
            sku = rng.choice(SKUS)
            try:
                view = shop.start_order([(sku, rng.randint(1, 3))], order_id=f"o{seed}_{n}")
            except OutOfStock:
                shop.restock(sku, rng.randint(5, 20))
                continue
            order = view.order
            assert order.intent_id is not None
            pi = PaymentIntent(
                intent_id=order.intent_id,
                order_id=order.order_id,
                amount=order.total,
                currency=order.currency,
            )
            fate = rng.random()
            events = []
            if fate < 0.2:
                events.append("payment_intent.payment_failed")
            if fate < 0.65:
                events.append("payment_intent.succeeded")
            elif fate < 0.75:
                shop.cancel_order(order.order_id)
            for i, kind in enumerate(events):
                event_id = f"evt_{seed}_{n}_{i}"
                body = event_body(pi, kind, event_id, clock.unix)
                for _ in range(rng.choice([1, 1, 2])):
                    deliver(shop, clock, sent, body, event_id)
            if n % 3 == 0:
                shop.fire_timers()


def deliver_all(db: str, bodies_path: str, seed: int, go: str) -> None:
    bodies = [base64.b64decode(b) for b in msgspec.json.decode(Path(bodies_path).read_bytes())]
    random.Random(seed).shuffle(bodies)
    clock = Clock()
    shop = Shop.open(db, provider=FakeProvider(), clock=clock, config=CONFIG)
    say("READY")
    wait_for(Path(go))
    for body in bodies:
        result = shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
        say("OUTCOME", result.event_id, result.outcome)
    shop.close()


def order_many(db: str, sku: str, quantity: int, n: int, seed: int, go: str) -> None:
    clock = Clock()
    shop = Shop.open(db, provider=FakeProvider(), clock=clock, config=CONFIG)
    say("READY")
    wait_for(Path(go))
    for i in range(n):
        order_id = f"p{seed}_{i}"
        try:
            shop.start_order([(sku, quantity)], order_id=order_id)
        except OutOfStock:
            say("OUT", order_id)
        else:
            say("ACCEPTED", order_id)
    shop.close()


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "churn":
        churn(args[0], args[1], int(args[2]), float(args[3]))
    elif mode == "deliver":
        deliver_all(args[0], args[1], int(args[2]), args[3])
    elif mode == "order":
        order_many(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), args[5])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
