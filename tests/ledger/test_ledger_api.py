"""The public surface: pinned exports, and imports that respect the package boundaries."""

from __future__ import annotations

import ast
from pathlib import Path

import ledger
from ledger import Ledger

PACKAGE = Path(ledger.__file__).parent
ALLOWED = {"ledger", "msgspec", "sqlite_utils"}
FORBIDDEN = {"flowlib", "commerce", "cli"}


def test_exported_members() -> None:
    assert ledger.__all__ == [  # isort-style order (ruff RUF022): constants, then classes
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


def test_ledger_imports_only_stdlib_msgspec_and_sqlite_utils() -> None:
    """psycopg (the optional `postgres` extra) only in the PostgreSQL backend's modules."""
    import sys

    for module in PACKAGE.glob("*.py"):
        allowed = ALLOWED | ({"psycopg"} if module.name.startswith("postgres") else set())
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, f"{module.name} imports {name}"
                assert top in allowed or top in sys.stdlib_module_names, f"{module.name}: {name}"


def test_errors_are_one_tree() -> None:
    from ledger import errors

    classes = [
        v for v in vars(errors).values() if isinstance(v, type) and v.__module__ == errors.__name__
    ]
    assert all(issubclass(cls, ledger.LedgerError) for cls in classes)


def test_ledger_satisfies_the_store_protocol_structurally() -> None:
    from flowlib.store import Store

    for name in ("transaction", "read", "version", "append", "flows"):
        assert callable(getattr(Ledger, name)), name
    store: Store = Ledger.memory()  # checked by mypy; at run time, it works as one
    with store.transaction():
        assert store.append("flow:x", [], expected_version=0) == 0
