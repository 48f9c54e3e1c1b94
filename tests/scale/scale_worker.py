"""One worker process of the scale-out tests: settle deliveries and fire timers on one ledger.

`python scale_worker.py TARGET JOB.json`: waits for JOB's `go` file, then delivers each of
its bodies (signed now, on a clock `offset` seconds ahead) and fires due timers after
every `fire_every` deliveries and once at the end. Prints a JSON list of the outcomes
("parked" for a delivery recorded to be applied later: its flow was mid-step).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from commerce import FakeProvider, Shop, sign


def main(target: str, job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    offset = timedelta(seconds=job["offset"])

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    bodies = [base64.b64decode(b) for b in job["bodies"]]
    outcomes: list[str] = []
    with Shop.open(target, provider=FakeProvider(), clock=clock) as shop:
        Path(job["ready"]).touch()
        go = Path(job["go"])
        while not go.exists():
            time.sleep(0.002)
        for index, body in enumerate(bodies):
            header = sign(body, job["secret"], int(clock().timestamp()))
            result = shop.settle_webhook(body, header, secret=job["secret"])
            parked = result.outcome == "recorded" and result.reason.startswith("parked:")
            outcomes.append("parked" if parked else result.outcome)
            if index % job["fire_every"] == 0:
                shop.fire_timers()
        shop.fire_timers()
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
