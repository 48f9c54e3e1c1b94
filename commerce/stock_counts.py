"""The stock counts of `products` (available, reserved, sold), kept right in any order.

The commerce projection's stock moves come from two kinds of stream: a SKU's own
(`ProductAdded`, `Restocked`, `StockRemoved`) and each order's (reserve, release, commit,
move out). A rebuild may replay them in any order that keeps each stream's own, so a
reservation can come before the restock it took from, or before the product itself. A move
that its row cannot take yet (missing, or a count would drop below zero, which the table's
CHECK refuses) waits in `stock_unapplied`; the sum of the moves is all that counts in the
end, and once every event is in, nothing waits. The shop only writes moves its rows can
take, so in commit order `stock_unapplied` stays empty and each move is one UPDATE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commerce.events import ProductAdded, Restocked, StockRemoved
from ledger import Tx

_STOCK = ("available", "reserved", "sold")
_TABLES = ("products", "stock_unapplied")  # what a stock move writes, and reads
Counts = tuple[int, ...]  # a SKU's (available, reserved, sold), or a move of them


def mover(column_from: str | None, column_to: str | None) -> Callable[[Tx, Any, int], None]:
    """Move each line's quantity between stock columns (None: in from or out to nowhere)."""
    signs = {column_from: -1, column_to: 1}
    move = tuple(signs.get(column, 0) for column in _STOCK)

    def apply(tx: Tx, event: Any, position: int) -> None:
        moves = [(line.sku, tuple(sign * line.quantity for sign in move)) for line in event.lines]

        def write(late: Tx) -> None:
            for sku, counts in moves:
                _move(late, sku, counts)

        # A popular SKU's row is changed by every order's reserve and settle: written at
        # the commit, it stays locked for the commit alone (see `Tx.at_commit`).
        tx.at_commit(write, _TABLES)

    return apply


_MOVE = (  # applied at once unless the row is missing, a count would drop below 0, or moves wait
    "UPDATE products SET available = available + ?, reserved = reserved + ?, sold = sold + ?"
    " WHERE sku = ? AND available + ? >= 0 AND reserved + ? >= 0 AND sold + ? >= 0"
    " AND NOT EXISTS (SELECT 1 FROM stock_unapplied u WHERE u.sku = products.sku)"
)
_STOCK_OF = (
    "SELECT 0, available, reserved, sold FROM products WHERE sku = ?"
    " UNION ALL SELECT 1, available, reserved, sold FROM stock_unapplied WHERE sku = ?"
)


def _move(tx: Tx, sku: str, move: Counts) -> None:
    """Add `move` to the SKU's counts; kept in `stock_unapplied` until they can take it.

    Events of other streams may come first in a rebuild (a reservation before the restock
    it took from, or before the product itself): their sum is all that counts in the end.
    """
    if tx.execute(_MOVE, (*move, sku, *move)) == 0:
        _settle_stock(tx, sku, move)


def _settle_stock(tx: Tx, sku: str, move: Counts) -> None:
    """Apply what waits for the SKU plus `move` to its row if every count stays >= 0."""
    stored = {kind: tuple(counts) for kind, *counts in tx.query(_STOCK_OF, (sku, sku))}
    waiting = stored.get(1, (0, 0, 0))
    owed = tuple(a + b for a, b in zip(waiting, move, strict=True))
    product = stored.get(0)
    if product is not None and min(a + b for a, b in zip(product, owed, strict=True)) >= 0:
        if any(owed):
            total = tuple(a + b for a, b in zip(product, owed, strict=True))
            tx.execute(f"UPDATE products SET {_SET_STOCK} WHERE sku = ?", (*total, sku))
        owed = (0, 0, 0)
    if owed == waiting:
        return
    if any(owed):
        tx.execute(_UNAPPLIED_UPSERT, (sku, *owed))
    else:
        tx.execute("DELETE FROM stock_unapplied WHERE sku = ?", (sku,))


_SET_STOCK = ", ".join(f"{column} = ?" for column in _STOCK)
_UNAPPLIED_UPSERT = (
    "INSERT INTO stock_unapplied (sku, available, reserved, sold) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (sku) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _STOCK)
)


def product_added(tx: Tx, e: ProductAdded, position: int) -> None:
    tx.execute(
        "INSERT INTO products (sku, name, unit_price, currency) VALUES (?, ?, ?, ?)",
        (e.sku, e.name, e.unit_price, e.currency),
    )
    _settle_stock(tx, e.sku, (0, 0, 0))  # moves that came first (a rebuild's order)


def restocked(tx: Tx, e: Restocked, position: int) -> None:
    _move(tx, e.sku, (e.quantity, 0, 0))


def removed(tx: Tx, e: StockRemoved, position: int) -> None:
    _move(tx, e.sku, (-e.quantity, 0, 0))
