"""Errors raised by the service.

```
ServiceError
 + StartupRefused        the ledger failed its start-up verification (names the position)
 + SourceUnavailable     a webhook source is configured but cannot be built here
 + NotAdvanced           the worker could not advance some due flows (they stay due)
 + ChainCheckFailed      the background scrub found the hash chain broken
```
"""

from __future__ import annotations


class ServiceError(Exception):
    """Root of every error the service raises."""


class StartupRefused(ServiceError):
    """The ledger did not verify before taking traffic; nothing was served.

    `position` is the first broken event (None when the chain is intact but something else
    failed, e.g. a projection differs from a rebuild).
    """

    def __init__(self, position: int | None, reason: str) -> None:
        self.position, self.reason = position, reason
        where = f" at position {position}" if position is not None else ""
        super().__init__(
            f"refusing to start: the ledger does not verify{where} ({reason}); "
            "see `orderflow ledger verify`"
        )


class SourceUnavailable(ServiceError):
    """A webhook source is configured in the environment but cannot be built."""

    def __init__(self, provider: str, reason: str) -> None:
        self.provider, self.reason = provider, reason
        super().__init__(f"webhook source {provider!r}: {reason}")


class NotAdvanced(ServiceError):
    """Some due flows could not be advanced (each stays due and is retried)."""

    def __init__(self, flow_ids: list[str]) -> None:
        self.flow_ids = flow_ids
        shown = ", ".join(flow_ids[:10]) + (" ..." if len(flow_ids) > 10 else "")
        super().__init__(f"{len(flow_ids)} due flow(s) could not be advanced: {shown}")


class ChainCheckFailed(ServiceError):
    """The background scrub found the hash chain broken."""

    def __init__(self, position: int | None) -> None:
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"the ledger's hash chain is broken{where}")
