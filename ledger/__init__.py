"""orderflow's append-only event ledger on SQLite.

One file of hash-chained, msgspec-encoded events; projections kept in step; flowlib's `Store`.
"""

from __future__ import annotations

from ledger.codec import GENESIS
from ledger.errors import (
    AppendOnlyViolation,
    ConcurrencyError,
    CorruptRecord,
    DiskFull,
    IdempotencyConflict,
    InvalidAppend,
    LedgerError,
    NotALedger,
    OpenError,
    ReadOnlyLedger,
    SchemaTooNew,
    StorageError,
    TransactionAborted,
)
from ledger.flows import FlowsProjection
from ledger.projection import Projection
from ledger.records import (
    Appended,
    BrokenLink,
    FlowRow,
    Gap,
    ProjectionDiff,
    Record,
    VerifyReport,
)
from ledger.schema import SCHEMA_VERSION
from ledger.store import WAL_AUTOCHECKPOINT, Ledger, Synchronous

__all__ = [
    "GENESIS",
    "SCHEMA_VERSION",
    "WAL_AUTOCHECKPOINT",
    "AppendOnlyViolation",
    "Appended",
    "BrokenLink",
    "ConcurrencyError",
    "CorruptRecord",
    "DiskFull",
    "FlowRow",
    "FlowsProjection",
    "Gap",
    "IdempotencyConflict",
    "InvalidAppend",
    "Ledger",
    "LedgerError",
    "NotALedger",
    "OpenError",
    "Projection",
    "ProjectionDiff",
    "ReadOnlyLedger",
    "Record",
    "SchemaTooNew",
    "StorageError",
    "Synchronous",
    "TransactionAborted",
    "VerifyReport",
]
