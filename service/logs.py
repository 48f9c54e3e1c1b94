"""One JSON object per log line, on the `orderflow.service` logger."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

LOGGER = logging.getLogger("orderflow.service")


def line(level: int = logging.INFO, **fields: Any) -> None:
    """Log `fields` as one JSON object (None values are kept: a missing order says so)."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, msgspec.json.encode(fields).decode())
