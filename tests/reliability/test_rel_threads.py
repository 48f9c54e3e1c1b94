"""One `Shop` per process, used from many threads: the README's web handler, for real.

The README's "From a web handler" program runs verbatim in its own process on
127.0.0.1 (a `ThreadingHTTPServer`: one thread per request); 16 clients post signed
deliveries with duplicates and forgeries while another process writes to the same file.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from reliability_helpers import SECRET, event_body, intent_of, ledger_facts

from commerce import FakeProvider, Money, Shop, sign

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "orderflow"
ORDERS = 24


def readme_web_handler() -> str:
    """The Python block under "From a web handler" in the README, as written."""
    section = (ROOT / "README.md").read_text().split("## From a web handler", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's web-handler section has no Python block"
    return match.group(1)


def deliveries(db: Path) -> list[tuple[bytes, str, int]]:
    """(body, signature, expected status) for every post: each payment thrice, plus forgeries."""
    now = int(time.time())
    posts = []
    with Shop.open(db, provider=FakeProvider()) as shop:
        shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=1000)
        for n in range(ORDERS):
            shop.start_order([("MUG", 1 + n % 3)], order_id=f"o{n}")
            body = event_body(intent_of(shop, f"o{n}"), "payment_intent.succeeded", f"evt_{n}", now)
            posts += [(body, sign(body, SECRET, now), 200)] * 3
            posts.append((body, sign(body, "whsec_forged", now), 400))
            posts.append((body + b" ", sign(body, SECRET, now), 400))  # not the signed bytes
    random.Random(7).shuffle(posts)
    return posts


def post(port: int, body: bytes, signature: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/webhooks/stripe", body, {"Stripe-Signature": signature})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
def test_readme_handler_under_a_threaded_server_settles_each_payment_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    posts = deliveries(db)
    program = tmp_path / "webhook_server.py"
    program.write_text(readme_web_handler())
    env = {**os.environ, "ORDERFLOW_DB": str(db), "STRIPE_WEBHOOK_SECRET": SECRET, "PORT": "0"}
    env["STRIPE_API_KEY"] = "sk_test_never_called"  # the snippet's provider: paid in time
    server = subprocess.Popen(
        [sys.executable, str(program)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stop = threading.Event()

    def other_process_writes() -> int:  # a second process on the same file, all along
        count = 0
        while not stop.is_set():
            done = subprocess.run(
                [str(BIN), "--db", str(db), "catalog", "restock", "MUG", "1"],
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            count += 1
        return count

    failure: BaseException | None = None
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[-1])
        with ThreadPoolExecutor(1) as side, ThreadPoolExecutor(16) as clients:
            restocks = side.submit(other_process_writes)
            try:
                answers = list(clients.map(lambda p: (p[2], *post(port, p[0], p[1])), posts))
            except OSError as exc:  # reported with what the server said, below
                failure = exc
            finally:
                stop.set()
            restocked = restocks.result()
    finally:
        stop.set()
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert failure is None and b"Traceback" not in stderr, f"{failure!r}\n{stderr.decode()}"
    assert [(want, got) for want, got, _ in answers if want != got] == []
    outcomes = Counter(answer.get("outcome") for want, _, answer in answers if want == 200)
    assert outcomes["settled"] == ORDERS, outcomes
    assert outcomes["already_settled"] == 2 * ORDERS, outcomes
    with Shop.open(db) as shop:
        facts = ledger_facts(shop)
        assert all(facts.fulfilled[f"o{n}"] == 1 for n in range(ORDERS)), facts.fulfilled
        assert {row.status for row in shop.orders()} == {"fulfilled"}
        mug = shop.products()[0]
        sold = sum(1 + n % 3 for n in range(ORDERS))
        assert (mug.sold, mug.available + mug.sold) == (sold, 1000 + restocked)
        assert restocked > 0
        assert shop.ledger.verify().ok
