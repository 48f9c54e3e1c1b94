"""Errors raised by the ledger.

```
LedgerError
 + ConcurrencyError       the stream is not at the expected version; nothing appended
 + IdempotencyConflict    the key was used before for different content; nothing appended
 + InvalidAppend          the append itself is malformed (not a Struct, bad key, ...)
 + AppendOnlyViolation    an UPDATE or DELETE on the events table was refused
 + CorruptRecord          a stored body does not decode as the requested type
 + ChainBroken            a stored event does not match its hash chain (changed outside)
 + TransactionAborted     SQLite ended the transaction; the outermost block must exit
 + StorageError           SQLite failed to read or write the file
    + DiskFull            the disk (or `max_page_count`) is full; the transaction rolled back
    + LockTimeout         the write lock stayed taken past the busy timeout; nothing written
 + DestinationNotEmpty    a copy's destination already holds events; nothing written
 + CopyUnverified         a copy did not verify before its commit; rolled back
 + OpenError              the file cannot be opened as a ledger; it was not touched
    + NotALedger          not SQLite, or a SQLite database of something else
    + SchemaTooNew        written by a newer orderflow
    + ReadOnlyLedger      the file or its directory is not writable (or opened read-only)
    + MissingLedger       a read-only open of a path with no ledger file
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.records import VerifyReport


class LedgerError(Exception):
    """Root of every error the ledger raises."""


class ConcurrencyError(LedgerError):
    """The stream was not at `expected` (it is at `actual`); nothing was appended."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")


class IdempotencyConflict(LedgerError):
    """`key` already names a different append (at `position` in `stream`)."""

    def __init__(self, key: str, stream: str, position: int) -> None:
        self.key, self.stream, self.position = key, stream, position
        super().__init__(
            f"idempotency key {key!r} was used at position {position} (stream {stream!r}) "
            "for different events"
        )


class InvalidAppend(LedgerError):
    """An append the ledger refuses before touching the database."""

    def __init__(self, stream: str, reason: str) -> None:
        self.stream, self.reason = stream, reason
        super().__init__(f"cannot append to {stream!r}: {reason}")


class AppendOnlyViolation(LedgerError):
    """A statement tried to change or remove recorded events."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the events table is append-only ({detail})")


class CorruptRecord(LedgerError):
    """The body at `position` does not decode as the requested type."""

    def __init__(self, position: int, stream: str, version: int, reason: str) -> None:
        self.position, self.stream, self.version, self.reason = position, stream, version, reason
        super().__init__(
            f"event at position {position} ({stream!r} v{version}) does not decode: {reason}"
        )


class ChainBroken(LedgerError):
    """The event at `position` does not match its stored hash and its predecessor's.

    SQLite cannot see a changed byte inside a row; the hash chain can. Raised when such an
    event is read to make a decision (so nothing is written on its account), and by
    writes on a ledger whose last event is broken.
    """

    def __init__(self, position: int, reason: str) -> None:
        self.position, self.reason = position, reason
        super().__init__(
            f"the ledger's hash chain is broken at position {position} ({reason}): it was "
            "changed outside orderflow; nothing was written (see `orderflow ledger verify`)"
        )


class TransactionAborted(LedgerError):
    """SQLite rolled the whole transaction back after `reason`; leave the outermost block."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the transaction was rolled back by SQLite ({reason})")


class TransactionConflict(TransactionAborted):
    """The transaction lost a race with another (a deadlock, a serialisation failure, or a
    late lock that would put a stream's events out of order) and was rolled back whole:
    nothing of it was written, and running it again is safe."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        LedgerError.__init__(
            self, f"the transaction conflicted with another and was rolled back ({reason})"
        )


class StorageError(LedgerError):
    """SQLite could not read or write the ledger file."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"ledger {path}: {reason}")


class DiskFull(StorageError):
    """No room to write; the transaction was rolled back and nothing was written."""


class LockTimeout(StorageError):
    """The write lock was held by someone else for `waited` seconds; nothing was written."""

    def __init__(self, path: str, waited: float, holder: str) -> None:
        self.waited, self.holder = waited, holder
        who = f" (held by {holder})" if holder else ""
        super().__init__(
            path, f"busy: gave up after {waited:.1f} s waiting for the write lock{who}"
        )


class OpenError(LedgerError):
    """The file cannot be opened as a ledger; its bytes were not touched."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot open ledger {path}: {reason}")


class NotALedger(OpenError):
    """The file is not SQLite, or holds a database that is not an orderflow ledger."""


class SchemaTooNew(OpenError):
    """The ledger was written by a newer orderflow (schema `found` > `supported`)."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found, self.supported = found, supported
        super().__init__(
            path, f"schema version {found} is newer than this orderflow supports ({supported})"
        )


class ReadOnlyLedger(OpenError):
    """The file or its directory cannot be written, or the ledger was opened read-only."""


class MissingLedger(OpenError):
    """A read-only open found no ledger file (reading never creates one)."""


class DestinationNotEmpty(LedgerError):
    """The copy's destination already holds events; nothing was written to it."""

    def __init__(self, path: str, events: int, head: tuple[int, str]) -> None:
        self.path, self.events, self.head = path, events, head
        super().__init__(
            f"cannot copy into {path}: it already holds {events} events "
            f"(head {head[0]}:{head[1]}); a copy needs an empty ledger, nothing was written"
        )


class CopyUnverified(LedgerError):
    """The copied ledger did not verify before its commit; it was rolled back."""

    def __init__(self, path: str, report: VerifyReport) -> None:
        self.path, self.report = path, report
        super().__init__(
            f"the copy into {path} did not verify (see `orderflow ledger verify` for what "
            "it checks); it was rolled back, nothing was written"
        )
