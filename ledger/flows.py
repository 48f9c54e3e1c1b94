"""The built-in `flows` projection: one row per flow instance, from its `flow:<id>` stream.

It reads only the `type`, `name`, `version`, `status`, `awaits` and `due` fields of the
JSON bodies, and agrees with `flowlib.log.advance`: `FlowStarted` (re)starts the row;
a later event with a status sets the row's status, awaits and due from its own fields
(absent ones mean none); an event without a status (`StepDone`) leaves the row as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from ledger.codec import utc_text
from ledger.errors import CorruptRecord
from ledger.records import FlowRow, Record
from ledger.tx import Conn, Tx

PREFIX = "flow:"
COLUMNS = "flow_id, name, version, status, awaits, due"  # what a `FlowRow` is made from
DUE_INDEX = "CREATE INDEX IF NOT EXISTS idx_flows_due_set ON flows (due) WHERE due IS NOT NULL"
"""Partial: finished and plainly waiting flows (most rows, in time) have no due, and the
timer query (`due IS NOT NULL AND due <= ?`) never looks for them; leaving them out keeps
the index small and spares a step that ends a flow the insert of its NULL entry."""


class _FlowFields(msgspec.Struct):
    """The fields of a flow event the index needs; everything else is ignored."""

    type: str = ""
    name: str = ""
    version: int = 0
    status: str | None = None
    awaits: list[str] = []
    due: datetime | None = None


_decode = msgspec.json.Decoder(_FlowFields).decode
_encode_awaits = msgspec.json.Encoder().encode
_decode_awaits = msgspec.json.Decoder(list[str]).decode

_START = (
    "INSERT INTO flows (flow_id, name, version, status, awaits, due, started_position, "
    "updated_position) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flow_id) DO UPDATE "
    "SET name = excluded.name, version = excluded.version, status = excluded.status, "
    "awaits = excluded.awaits, due = excluded.due, updated_position = excluded.updated_position"
)
_TABLE_SQLITE = (
    "CREATE TABLE IF NOT EXISTS flows (flow_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, status TEXT NOT NULL, awaits TEXT NOT NULL, due TEXT,"
    " started_position INTEGER NOT NULL, updated_position INTEGER NOT NULL)"
    " STRICT, WITHOUT ROWID"
)
# The same columns; `due` (fixed-width UTC text) compares bytewise, as on SQLite.
_TABLE_POSTGRES = (
    'CREATE TABLE IF NOT EXISTS flows (flow_id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL,'
    " version BIGINT NOT NULL, status TEXT NOT NULL, awaits TEXT NOT NULL,"
    ' due TEXT COLLATE "C", started_position BIGINT NOT NULL, updated_position BIGINT NOT NULL)'
)
_UPDATE = "UPDATE flows SET status = ?, awaits = ?, due = ?, updated_position = ? WHERE flow_id = ?"


class FlowsProjection:
    """Keeps the `flows` table (see the module docstring); a `Projection`."""

    name = "flows"
    tables: Sequence[str] = ("flows",)

    def create(self, tx: Tx) -> None:
        """Create the `flows` table and its index on `due`.

        On SQLite keyed by flow id without a rowid (one b-tree to write per step, not two); with
        no index on `status`: it changes at every step, and listing by status is rare.
        """
        tx.execute(_TABLE_POSTGRES if tx.dialect == "postgresql" else _TABLE_SQLITE)
        tx.execute(DUE_INDEX)

    def apply(self, tx: Tx, record: Record) -> None:
        """Fold one event into the row of the flow whose stream it belongs to."""
        self.apply_batch(tx, [record])

    def apply_batch(self, tx: Tx, records: Sequence[Record]) -> None:
        """Fold one append's events (one stream) into its flow's row, in one statement.

        The row ends as folding each event in turn leaves it: a `FlowStarted` restarts it,
        and the last event with a status sets status, awaits and due.
        """
        if not records or not records[0].stream.startswith(PREFIX):
            return
        started: tuple[_FlowFields, int] | None = None
        last: tuple[_FlowFields, int] | None = None
        for record in records:
            if record.type == "StepDone":  # never carries a status (see the module docstring)
                continue
            try:
                fields = _decode(record.data)
            except msgspec.DecodeError as exc:
                raise CorruptRecord(
                    record.position, record.stream, record.version, str(exc)
                ) from exc
            if fields.type == "FlowStarted":  # a first insert keeps the first start's position
                started = (fields, started[1] if started else record.position)
            if fields.status is not None:
                last = (fields, record.position)
        if last is None:
            return
        flow_id = records[0].stream[len(PREFIX) :]
        fields, position = last
        awaits = _encode_awaits(fields.awaits).decode()
        due = utc_text(fields.due) if fields.due is not None else None
        if started is None:
            tx.execute(_UPDATE, (fields.status, awaits, due, position, flow_id))
        else:
            begun, at = started
            row = (flow_id, begun.name, begun.version, fields.status, awaits, due, at, position)
            tx.execute(_START, row)


def query(
    conn: Conn,
    status: str | None,
    due_before: datetime | None,
    limit: int | None,
    *,
    started_after: int | None = None,
    newest: bool = False,
) -> list[FlowRow]:
    """Rows with `status`, and/or due at or before `due_before` (then ordered by due).

    `started_after` keeps flows started after that position; `newest` makes `limit` keep
    the last rows rather than the first (still returned in order).
    """
    where: list[str] = []
    params: list[object] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if due_before is not None:
        where.append("due IS NOT NULL AND due <= ?")
        params.append(utc_text(due_before))
    if started_after is not None:
        where.append("started_position > ?")
        params.append(int(started_after))
    sql = f"SELECT {COLUMNS} FROM flows"
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "due, started_position" if due_before is not None else "started_position"
    if newest:
        order = ", ".join(f"{column} DESC" for column in order.split(", "))
    sql += f" ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = [flow_row(values) for values in conn.execute(sql, params)]
    return rows[::-1] if newest else rows


def flow_row(values: Sequence[Any]) -> FlowRow:
    """A `FlowRow` from the values of a `SELECT {COLUMNS} FROM flows`."""
    flow_id, name, version, status, awaits, due = values
    return FlowRow(
        flow_id=flow_id,
        name=name,
        version=version,
        status=status,
        awaits=_decode_awaits(awaits),
        due=None if due is None else datetime.fromisoformat(due),
    )
