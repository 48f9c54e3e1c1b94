"""orderflow's append-only event ledger: on one SQLite file, or on PostgreSQL.

Hash-chained, msgspec-encoded events; projections kept in step; flowlib's `Store`.
"""

from __future__ import annotations

from ledger.codec import GENESIS
from ledger.copy import CopyProgress, CopyReport
from ledger.errors import (
    AppendOnlyViolation,
    ChainBroken,
    ConcurrencyError,
    CopyUnverified,
    CorruptRecord,
    DestinationNotEmpty,
    DiskFull,
    IdempotencyConflict,
    InvalidAppend,
    LedgerError,
    LockTimeout,
    MissingLedger,
    NotALedger,
    OpenError,
    ReadOnlyLedger,
    SchemaTooNew,
    StorageError,
    TransactionAborted,
    TransactionConflict,
)
from ledger.flows import FlowsProjection
from ledger.projection import Projection
from ledger.records import (
    Anchor,
    Appended,
    BrokenLink,
    FlowRow,
    Gap,
    Mark,
    ProjectionDiff,
    Record,
    VerifyReport,
)
from ledger.schema import SCHEMA_VERSION
from ledger.sqlite import WAIT_NOTICE
from ledger.sqlite_ledger import WAL_AUTOCHECKPOINT
from ledger.store import Ledger, Synchronous, is_dsn
from ledger.tx import Dialect, Params, SqliteTx, Tx

__all__ = [
    "GENESIS",
    "SCHEMA_VERSION",
    "WAIT_NOTICE",
    "WAL_AUTOCHECKPOINT",
    "Anchor",
    "AppendOnlyViolation",
    "Appended",
    "BrokenLink",
    "ChainBroken",
    "ConcurrencyError",
    "CopyProgress",
    "CopyReport",
    "CopyUnverified",
    "CorruptRecord",
    "DestinationNotEmpty",
    "Dialect",
    "DiskFull",
    "FlowRow",
    "FlowsProjection",
    "Gap",
    "IdempotencyConflict",
    "InvalidAppend",
    "Ledger",
    "LedgerError",
    "LockTimeout",
    "Mark",
    "MissingLedger",
    "NotALedger",
    "OpenError",
    "Params",
    "Projection",
    "ProjectionDiff",
    "ReadOnlyLedger",
    "Record",
    "SchemaTooNew",
    "SqliteTx",
    "StorageError",
    "Synchronous",
    "TransactionAborted",
    "TransactionConflict",
    "Tx",
    "VerifyReport",
    "is_dsn",
]
