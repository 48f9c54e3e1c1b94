"""A separate process that settles one delivery on a shared shop file (for the race tests).

usage: settle_worker.py DB GO_FILE READY_FILE MODE ARG [BODY_FILE]
MODE "webhook": ARG is the signing time (unix seconds), BODY_FILE the raw body.
MODE "settle": ARG is the order id (the direct, trusted call).
Prints the outcome as JSON on stdout.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from commerce import FakeProvider, Shop, sign

SECRET = "whsec_test_secret"


def main(db: str, go: str, ready: str, mode: str, arg: str, body_file: str = "") -> None:
    now = datetime.fromtimestamp(int(arg), UTC) if mode == "webhook" else datetime.now(UTC)
    with Shop.open(db, provider=FakeProvider(), clock=lambda: now) as shop:
        body = Path(body_file).read_bytes() if body_file else b""
        Path(ready).touch()
        deadline = time.monotonic() + 30
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        if mode == "webhook":
            result = shop.settle_webhook(body, sign(body, SECRET, int(arg)), secret=SECRET)
        else:
            result = shop.settle(arg)
        sys.stdout.write(msgspec.json.encode(result).decode())


if __name__ == "__main__":
    main(*sys.argv[1:])
