"""The shop, the deliveries and the checks the scale-out tests share (imported, not collected)."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from commerce import FakeProvider, Money, PaymentIntent, Shop

WORKER = Path(__file__).with_name("scale_worker.py")
SECRET = "whsec_scale"
PAID, UNPAID, COPIES = 48, 16, 3


def orders(target: str) -> dict[str, PaymentIntent]:
    """The shop's orders (PAID + UNPAID), each with its payment intent."""
    intents = {}
    with Shop.open(target, provider=FakeProvider()) as shop:
        shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=PAID + UNPAID)
        for n in range(PAID + UNPAID):
            row = shop.start_order([("MUG", 1)], order_id=f"o{n:03d}").order
            assert row.intent_id is not None
            intents[row.order_id] = PaymentIntent(
                intent_id=row.intent_id, order_id=row.order_id, amount=1250, currency="EUR"
            )
    return intents


def job_files(
    tmp_path: Path, intents: dict[str, PaymentIntent], seed: int, workers: int = 8
) -> list[Path]:
    """Each worker's job file: its share of every paid order's webhook, COPIES times over."""
    paid = sorted(intents)[:PAID]
    bodies = [
        FakeProvider.event_for(
            intents[o], "payment_intent.succeeded", event_id=f"evt_{o}", created=int(time.time())
        )
        for o in paid
    ] * COPIES
    random.Random(seed).shuffle(bodies)
    jobs = []
    for n in range(workers):
        job = tmp_path / f"job{n}.json"
        share = [base64.b64encode(b).decode() for b in bodies[n::workers]]
        spec = {
            "bodies": share,
            "secret": SECRET,
            "offset": 3600,  # past every order's 30-minute payment timeout
            "fire_every": 4,
            "ready": str(tmp_path / f"ready{n}"),
            "go": str(tmp_path / "go"),
        }
        job.write_text(json.dumps(spec))
        jobs.append(job)
    return jobs


def run(
    tmp_path: Path, jobs: Sequence[Path], targets: Sequence[str], prefixes: Sequence[list[str]]
) -> list[str]:
    """Start worker n on `targets[n]` under command `prefixes[n]` (e.g. `ip netns exec`),
    release them all at once, and collect every outcome."""
    procs = [
        subprocess.Popen(
            [*prefix, sys.executable, str(WORKER), target, str(job)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for job, target, prefix in zip(jobs, targets, prefixes, strict=True)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{n}").exists() for n in range(len(jobs))):
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outcomes: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        outcomes += json.loads(out)
    return outcomes


def per_order(shop: Shop) -> dict[str, Counter[str]]:
    """For each order, how many of each event its order and flow streams hold."""
    counts: dict[str, Counter[str]] = {}
    for record in shop.ledger.read_all():
        kind, _, order_id = record.stream.partition(":")
        if kind in ("order", "flow"):
            counts.setdefault(order_id, Counter())[record.type] += 1
    return counts


def check_exactly_once(target: str, intents: dict[str, PaymentIntent], outcomes: list[str]) -> None:
    """Each paid order fulfilled or given back once, each unpaid one expired once, each flow
    ended once, stock conserved, `verify` clean; then a row edited behind the triggers is
    flagged.

    A delivery may be parked: its order's flow was mid-step (closing the order at its
    timeout, say, while another worker fired it). The next timers round applies it, so the
    check runs one (`apply_parked`) first."""
    assert len(outcomes) == PAID * COPIES
    tally = Counter(outcomes)
    assert set(tally) <= {"settled", "already_settled", "refunded", "parked"}, tally
    assert tally["settled"] + tally["refunded"] + tally["parked"] == PAID, tally
    paid = sorted(intents)[:PAID]
    with Shop.open(target, provider=FakeProvider()) as shop:
        shop.apply_parked()  # as the next timers round would
        counts = per_order(shop)
        for order_id in intents:
            events = counts[order_id]
            assert events["FlowEnded"] == 1, (order_id, events)
            if order_id in paid:
                assert events["OrderFulfilled"] + events["RefundIssued"] == 1, events
            else:
                assert events["OrderClosed"] == 1 and events["OrderFulfilled"] == 0, events
        sold = sum(counts[o]["OrderFulfilled"] for o in paid)
        (product,) = shop.products()
        stock = (product.available, product.reserved, product.sold)
        assert stock == (PAID + UNPAID - sold, 0, sold)
        report = shop.ledger.verify()
        assert report.ok, report
        _edit_behind_the_triggers(target)
        broken = shop.ledger.verify()
        assert not broken.ok and broken.broken is not None, broken


def _edit_behind_the_triggers(target: str) -> None:
    """Change one stored event as a superuser whose session fires no ordinary triggers."""
    import psycopg

    with psycopg.connect(target, autocommit=True) as raw:
        raw.execute("SET session_replication_role = replica")
        changed = raw.execute(
            "UPDATE events SET data = replace(data, '1250', '1') "
            "WHERE position = (SELECT min(position) FROM events WHERE type = 'OrderPlaced')"
        ).rowcount
        assert changed == 1
