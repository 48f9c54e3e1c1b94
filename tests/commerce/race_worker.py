"""A separate process that settles, or cancels, orders o0..oN-1 on a shared shop file.

usage: race_worker.py DB GO_FILE READY_FILE MODE COUNT      (MODE: settle | cancel)
Prints, as JSON, what each call answered: the status it returned, or "refused:<state>".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec

from commerce import FakeProvider, InvalidTransition, Shop


def _one(shop: Shop, mode: str, order_id: str) -> str:
    try:
        if mode == "settle":
            return shop.settle(order_id).order_status or "?"
        return shop.cancel_order(order_id).order.status
    except InvalidTransition as exc:
        return f"refused:{exc.state}"


def main(db: str, go: str, ready: str, mode: str, count: str) -> None:
    with Shop.open(db, provider=FakeProvider()) as shop:
        Path(ready).touch()
        deadline = time.monotonic() + 30
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        answers = {f"o{i}": _one(shop, mode, f"o{i}") for i in range(int(count))}
    sys.stdout.write(msgspec.json.encode(answers).decode())


if __name__ == "__main__":
    main(*sys.argv[1:])
