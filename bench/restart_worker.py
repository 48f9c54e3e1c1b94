"""A fresh process over a file of suspended orders: `python -m bench.restart_worker PATH N SECRET`.

Prints one JSON object: seconds from process start to the first settle completed, the
settle rate over the next N orders (each flow rebuilt from its log), and the process's
own peak RSS (VmHWM: unlike `ru_maxrss`, not inherited from the parent across exec).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from commerce import FakeProvider, PaymentIntent, Shop, sign  # noqa: E402

CHUNK = 1000


def signed_body(index: int, secret: str) -> tuple[bytes, str]:
    """The succeeded webhook for seeded order `index`, signed now."""
    intent = PaymentIntent(
        intent_id=f"pi_{index:024d}", order_id=f"o{index:07d}", amount=1250, currency="EUR"
    )
    now = int(time.time())
    body = FakeProvider.event_for(
        intent, "payment_intent.succeeded", event_id=f"evt_{index}", created=now
    )
    return body, sign(body, secret, now)


def chunks(first: int, count: int, secret: str) -> Iterator[list[tuple[bytes, str]]]:
    """Bodies in chunks, made outside the timed part and never all held at once."""
    for start in range(first, first + count, CHUNK):
        yield [signed_body(i, secret) for i in range(start, min(start + CHUNK, first + count))]


def peak_rss_mb() -> float:
    """This process's peak resident set, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(path: str, count: int, secret: str) -> None:
    """Open, settle order 1, then settle orders 2..count+1; print the figures."""
    shop = Shop.open(path, provider=FakeProvider())
    body, header = signed_body(1, secret)
    result = shop.settle_webhook(body, header, secret=secret)
    if result.outcome != "settled":
        raise SystemExit(f"first settle: {result}")
    first = time.perf_counter() - STARTED
    busy = 0.0
    for chunk in chunks(2, count, secret):
        started = time.perf_counter()
        for body, header in chunk:
            shop.settle_webhook(body, header, secret=secret)
        busy += time.perf_counter() - started
    shop.close()
    print(json.dumps({"first": first, "rate": count / busy, "rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
