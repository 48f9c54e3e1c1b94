"""The service tests reuse the commerce suite's Stripe fixtures (`test_fixtures_settle`) and
the ledger suite's `tamper`."""

from __future__ import annotations

import sys
from pathlib import Path

for folder in ("commerce", "ledger"):
    path = str(Path(__file__).resolve().parents[1] / folder)
    if path not in sys.path:
        sys.path.append(path)
