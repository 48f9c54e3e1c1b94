"""The storage seam: commerce and cli read the commerce tables through `commerce.readmodel`.

Only `Ledger.query` (portable SQL) reaches the database from them: no `ledger.db` (the
SQLite-only handle), no sqlite3, and SQL on the commerce tables only in the read model and
the projection that writes them. `cli/serve.py` and `service/` are not held to it here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SOURCES = sorted(
    p
    for package in ("commerce", "cli")
    for p in (ROOT / package).rglob("*.py")
    if p.relative_to(ROOT).as_posix() != "cli/serve.py"
)
_SQL_OWNERS = {"commerce/readmodel.py", "commerce/projections.py", "commerce/stock_counts.py"}
_TABLES = "products|coupons|orders|payment_intents|webhooks|parked"
_SQL = re.compile(rf"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|UPDATE)?\s*({_TABLES})\b")


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _name(node: ast.expr) -> str | None:
    """`ledger` for `ledger`, `self.ledger` or `shop.ledger`; else the last name, if any."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


@pytest.mark.parametrize("path", _SOURCES, ids=_ids(_SOURCES))
def test_no_database_handle_outside_the_ledger(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "db":
            assert _name(node.value) != "ledger", f"{path.name}:{node.lineno} uses ledger.db"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names]
            assert not {"sqlite3", "sqlite_utils"} & set(names), f"{path.name} imports sqlite"


@pytest.mark.parametrize("path", _SOURCES, ids=_ids(_SOURCES))
def test_sql_on_commerce_tables_only_in_the_read_model(path: Path) -> None:
    if path.relative_to(ROOT).as_posix() in _SQL_OWNERS:
        return
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not _SQL.search(node.value), f"{path.name}:{node.lineno}: {node.value[:60]}"


def test_the_read_model_reads_and_writes_nothing() -> None:
    text = (ROOT / "commerce" / "readmodel.py").read_text()
    assert ".execute(" not in text
    assert not re.search(r"\b(INSERT|UPDATE|DELETE)\b", text)
    assert "rowid" not in text  # the parked order column comes from projections.PARKED_ORDER


def test_commerce_sql_is_portable() -> None:
    for path in (ROOT / "commerce").rglob("*.py"):
        text = path.read_text()
        assert "INSERT OR REPLACE" not in text, path.name
        if path.name != "projections.py":  # PARKED_ORDER names SQLite's rowid, once
            assert "rowid" not in text.replace("WITHOUT ROWID", ""), path.name
