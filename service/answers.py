"""What a delivery is answered with: the README's contract, decided in one place.

2xx with the `SettleResult` for every authentic event (already settled and ignored
included), 400 for a request that is not an authentic, well-formed event, 413 past the
body cap, 503 with `Retry-After` when storage (or a provider the source asks) fails: the
provider retries, and nothing is acknowledged that is not committed.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from commerce import (
    BadSignature,
    BodyTooLarge,
    LiveModeMismatch,
    MalformedEvent,
    ProviderError,
    SettleResult,
)
from ledger import LedgerError

JSON = "application/json"
REJECTED = (BadSignature, MalformedEvent, LiveModeMismatch)
UNAVAILABLE = (LedgerError, ProviderError)


@dataclass(frozen=True, kw_only=True)
class Answer:
    """An HTTP answer, framework-neutral: status, body, headers, and the outcome to count."""

    status: int
    body: bytes
    outcome: str
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    result: SettleResult | None = None
    error: BaseException | None = None

    def all_headers(self) -> list[tuple[str, str]]:
        """Content-Type and Content-Length first, then the answer's own."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def error(status: int, outcome: str, exc: BaseException | str, **extra: str) -> Answer:
    """A one-line JSON error: `{"error": message, "kind": class}`."""
    message = exc if isinstance(exc, str) else str(exc)
    kind = outcome if isinstance(exc, str) else type(exc).__name__
    body = msgspec.json.encode({"error": message, "kind": kind})
    headers = tuple(extra.items())
    failure = None if isinstance(exc, str) else exc
    return Answer(status=status, body=body, outcome=outcome, headers=headers, error=failure)


def too_large(size: int, limit: int, *, at_least: bool) -> Answer:
    """413, and the connection is closed: the rest of the body is never read."""
    exc = BodyTooLarge(size, limit, at_least=at_least)
    return error(413, "too_large", exc, Connection="close")


def timed_out(seconds: float) -> Answer:
    """408: the client did not send its body within the read timeout."""
    message = f"the request body did not arrive within {seconds:g} s"
    return error(408, "timed_out", message, Connection="close")


def of(outcome: SettleResult | BaseException, retry_after: int) -> Answer:
    """The answer to a delivery that settled as `outcome` (a result, or why it did not)."""
    if isinstance(outcome, SettleResult):
        payload = msgspec.json.encode(outcome)
        return Answer(status=200, body=payload, outcome=outcome.outcome, result=outcome)
    if isinstance(outcome, REJECTED):
        return error(400, "rejected", outcome)
    if isinstance(outcome, BodyTooLarge):  # the adapters cap first; the library checks again
        return error(413, "too_large", outcome)
    if isinstance(outcome, UNAVAILABLE):  # nothing committed: the provider must come back
        return error(503, "unavailable", outcome, **{"Retry-After": str(retry_after)})
    return error(500, "error", outcome)  # a bug, not the provider's fault: 500 and it retries
