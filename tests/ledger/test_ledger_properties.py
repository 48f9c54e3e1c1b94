"""Property: any sequence of appends and reads keeps the ledger's invariants."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import Balances, Deposited

from ledger import ConcurrencyError, IdempotencyConflict, Ledger

STREAMS = ["account:a", "account:b", "other:c"]

appends = st.tuples(
    st.just("append"),
    st.sampled_from(STREAMS),
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
    st.none() | st.sampled_from(["k1", "k2", "k3"]),
    st.sampled_from([None, "right", "wrong"]),
)
reads = st.tuples(st.just("read"), st.sampled_from(STREAMS))
transactions = st.tuples(st.just("txn"), st.lists(appends, max_size=4), st.booleans())
operations = st.lists(st.one_of(appends, reads, transactions), max_size=12)

Model = dict[str, Any]


def _apply(ledger: Ledger, model: Model, op: tuple[Any, ...]) -> None:
    """Run one append against the ledger and the model, checking the outcome agrees."""
    _, stream, amounts, key, expect = op
    events = [Deposited(stream, amount) for amount in amounts]
    current = len(model["streams"].get(stream, []))
    expected = {None: None, "right": current, "wrong": current + 1}[expect]
    if key in model["keys"]:
        original_stream, original, start = model["keys"][key]
        if (original_stream, original) == (stream, events) and expected in (None, start):
            assert ledger.append(
                stream, events, idempotency_key=key, expected_version=expected
            ) == (start + len(events))
            return
        try:
            ledger.append(stream, events, idempotency_key=key, expected_version=expected)
        except IdempotencyConflict:
            return
        raise AssertionError("conflict expected")
    if expect == "wrong":
        try:
            ledger.append(stream, events, idempotency_key=key, expected_version=expected)
        except ConcurrencyError:
            return
        raise AssertionError("concurrency error expected")
    version = ledger.append(stream, events, idempotency_key=key, expected_version=expected)
    model["streams"].setdefault(stream, []).extend(events)
    assert version == len(model["streams"][stream])
    if key is not None:
        model["keys"][key] = (stream, events, current)


def _copy(model: Model) -> Model:
    return {
        "streams": {stream: list(events) for stream, events in model["streams"].items()},
        "keys": dict(model["keys"]),
    }


def _run(ledger: Ledger, model: Model, op: tuple[Any, ...]) -> Model:
    if op[0] == "append":
        _apply(ledger, model, op)
    elif op[0] == "read":
        assert ledger.read(op[1], Deposited) == model["streams"].get(op[1], [])
    else:
        saved = _copy(model)
        try:
            with ledger.transaction():
                for inner in op[1]:
                    _apply(ledger, model, inner)
                if op[2]:
                    raise KeyboardInterrupt  # any exception, even a BaseException
        except KeyboardInterrupt:
            return saved
    return model


@settings(max_examples=50, deadline=None)
@given(operations)
def test_any_appends_keep_the_invariants(ops: list[tuple[Any, ...]]) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Ledger.open(Path(tmp) / "p.db", synchronous="NORMAL", projections=[Balances()]) as ledger,
    ):
        model: Model = {"streams": {}, "keys": {}}
        for op in ops:
            model = _run(ledger, model, op)
        records = list(ledger.read_all())
        assert [r.position for r in records] == list(range(1, len(records) + 1))
        versions: dict[str, int] = {}
        for record in records:
            versions[record.stream] = versions.get(record.stream, 0) + 1
            assert record.version == versions[record.stream]
        for stream in STREAMS:
            assert ledger.read(stream, Deposited) == model["streams"].get(stream, [])
        report = ledger.verify()
        assert report.ok, report
        tables = ledger.db.execute("SELECT * FROM balances ORDER BY account").fetchall()
        ledger.rebuild()
        assert ledger.db.execute("SELECT * FROM balances ORDER BY account").fetchall() == tables
