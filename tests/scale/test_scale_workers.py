"""Many worker processes on one PostgreSQL ledger: every delivery and timer acts exactly once.

Eight processes each get a shuffled share of every paid order's webhook, each delivered
three times (so duplicates race in different processes), and all of them fire due timers
as they go, on a clock an hour ahead, so the unpaid orders' payment timeouts are due and
every worker tries to fire them. Afterwards each paid order was fulfilled once or (when
its timeout won the race) given back once, each unpaid order expired once, every flow
ended once, and `verify` is clean until a row is edited behind the append-only triggers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pg import fresh_schema
from scale_helpers import check_exactly_once, job_files, orders, run

WORKERS = 8


@pytest.mark.parametrize("seed", [1, 2])
def test_eight_workers_on_one_postgresql_ledger_act_exactly_once(tmp_path: Path, seed: int) -> None:
    with fresh_schema() as target:
        intents = orders(target)
        jobs = job_files(tmp_path, intents, seed, WORKERS)
        outcomes = run(tmp_path, jobs, [target] * WORKERS, [[]] * WORKERS)
        check_exactly_once(target, intents, outcomes)
