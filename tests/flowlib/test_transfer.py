"""Export/import documents, fingerprints, the golden export, and the upgrade gate."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from flow_helpers import (
    HANDLERS,
    T0,
    Approve,
    Charge,
    FakeClock,
    Pay,
    Release,
    Reserve,
    log_bytes,
    make_engine,
    snapshot,
)

from flowlib import (
    Engine,
    FlowDocument,
    ImportRejected,
    MemoryStore,
    NewId,
    Now,
    Registry,
    RetireRefused,
    RetryPolicy,
    StepContext,
    StepFailed,
    Timer,
    first_of,
    flow,
)
from flowlib.transfer import FORMAT, FORMAT_VERSION, fingerprint

GOLDEN = Path(__file__).parent.parent / "data" / "flowlib" / "golden_v1.json"


def shop_registry() -> Registry:
    """Flows whose code must keep replaying the golden export: change them only compatibly."""
    registry = Registry()

    @flow("order", version=1, registry=registry)
    def order(sku: str, amount: int):  # type: ignore[no-untyped-def]
        placed = yield Now()
        order_id = yield NewId()
        reservation = yield Reserve(sku=sku)
        try:
            won = yield first_of(Pay(order=order_id), Timer(seconds=1800))
            if won.winner == "Timer":
                yield Release(sku=sku)
                return {"status": "expired", "order": order_id}
            receipt = yield Charge(amount=won.value, retry=RetryPolicy(max_attempts=3))
        except StepFailed as failure:
            yield Release(sku=sku)
            return {"status": failure.kind, "order": order_id}
        return {
            "status": "paid",
            "order": order_id,
            "receipt": receipt,
            "at": placed.isoformat(),
            "reservation": reservation,
            "amount": amount,
        }

    @flow("approval", version=2, registry=registry)
    def approval(who: str):  # type: ignore[no-untyped-def]
        ok = yield Approve(who=who)
        if not ok:
            raise ValueError("rejected")
        return "approved"

    return registry


def shop_handlers(busy: bool = False) -> dict:
    def charge(request: Charge, ctx: StepContext) -> str:
        if busy:
            raise StepFailed("busy", "try later", retryable=True)
        return f"ch-{request.amount}"

    return {**HANDLERS, Charge: charge}


def shop_engine(store: MemoryStore | None = None, busy: bool = False) -> Engine:
    return make_engine(shop_registry(), shop_handlers(busy), store, FakeClock())


def populated() -> Engine:
    """One instance in each interesting state."""
    engine = shop_engine()
    engine.start("order", "A", 10, flow_id="paid")
    engine.resume("paid", 10, awaiting=Pay)
    engine.start("order", "B", 20, flow_id="waiting")
    engine.start("order", "C", 30, flow_id="expired")
    engine.start("order", "D", 40, flow_id="cancelled")
    engine.cancel("cancelled", "customer")
    engine.start("approval", "eve", flow_id="rejected")
    engine.resume("rejected", False, awaiting=Approve)
    engine.start("approval", "bob", flow_id="approval")
    engine.clock.advance(1800)  # type: ignore[attr-defined]
    engine.fire_due_timers()  # expires "expired" and "waiting"... so restart one waiting
    engine.start("order", "E", 50, flow_id="pay-waiting")
    busy = shop_engine(engine.store, busy=True)
    busy.clock = engine.clock
    busy.start("order", "F", 60, flow_id="retrying")
    busy.resume("retrying", 60, awaiting=Pay)
    return engine


def write_golden() -> None:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_bytes(populated().export())


# -- the document ---------------------------------------------------------------------------


def test_export_is_a_versioned_document_with_a_fingerprint_per_flow() -> None:
    engine = populated()
    data = engine.export()
    document = msgspec.json.decode(data, type=FlowDocument)
    assert (
        (document.format, document.format_version)
        == (FORMAT, FORMAT_VERSION)
        == ("orderflow.flows", 1)
    )
    ids = [f.flow_id for f in document.flows]
    assert ids == [s.flow_id for s in engine.flows()]
    for exported in document.flows:
        assert exported.fingerprint == fingerprint(exported.events)
        assert msgspec.json.encode(exported.events) == log_bytes(engine.store, exported.flow_id)


def test_export_by_status_or_by_id() -> None:
    engine = populated()
    by_status = msgspec.json.decode(engine.export(status="waiting"), type=FlowDocument)
    assert sorted(f.flow_id for f in by_status.flows) == ["approval", "pay-waiting", "retrying"]
    by_id = msgspec.json.decode(engine.export(flow_ids=["paid", "approval"]), type=FlowDocument)
    assert [f.flow_id for f in by_id.flows] == ["paid", "approval"]
    empty = msgspec.json.decode(engine.export(status="stuck"), type=FlowDocument)
    assert empty.flows == []


def test_export_import_export_is_byte_identical_and_flows_continue() -> None:
    source = populated()
    data = source.export()
    target = shop_engine()
    report = target.import_(data)
    assert report.imported == [s.flow_id for s in source.flows()] and report.unchanged == []
    assert target.export() == data
    # Both continue identically.
    for engine in (source, target):
        engine.resume("pay-waiting", 50, awaiting=Pay)
        engine.resume("approval", True, awaiting=Approve)
    assert target.export() == source.export()
    assert target.result("pay-waiting")["status"] == "paid"


def test_reimporting_identical_logs_is_a_no_op() -> None:
    source = populated()
    data = source.export()
    target = shop_engine()
    target.import_(data)
    before = snapshot(target.store)
    report = target.import_(data)
    assert report.imported == [] and sorted(report.unchanged) == sorted(
        s.flow_id for s in source.flows()
    )
    assert snapshot(target.store) == before


def test_a_conflicting_existing_id_is_rejected_and_nothing_is_written() -> None:
    source = populated()
    data = source.export(flow_ids=["paid", "pay-waiting"])
    target = shop_engine()
    target.start("order", "other", 1, flow_id="pay-waiting")
    before = snapshot(target.store)
    with pytest.raises(ImportRejected) as info:
        target.import_(data)
    assert info.value.flow_id == "pay-waiting" and "different log" in str(info.value)
    assert snapshot(target.store) == before  # "paid" was not written either


def damaged(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"not json", "not an orderflow export document"),
        (lambda d: b"[1, 2]", "not an orderflow export document"),
        (lambda d: d[: len(d) // 2], "not an orderflow export document"),
        (
            lambda d: damaged(d, b'"format":"orderflow.flows"', b'"format":"other"'),
            "format is 'other'",
        ),
        (lambda d: damaged(d, b'"format_version":1', b'"format_version":2'), "format version 2"),
        (lambda d: damaged(d, b'"flows":[', b'"flows":[{"flow_id":1},'), "malformed document"),
        (lambda d: damaged(d, b'"res-A"', b'"res-Z"'), "fingerprint does not match"),
        (
            lambda d: damaged(d, b'"fingerprint":"', b'"fingerprint":"0'),
            "fingerprint does not match",
        ),
        (lambda d: damaged(d, b'"type":"StepDone"', b'"type":"Nonsense"'), "malformed document"),
    ],
)
def test_a_bad_document_is_rejected_and_the_store_is_unchanged(mangle, message) -> None:
    data = populated().export()
    target = shop_engine()
    target.start("approval", "x", flow_id="mine")
    before = snapshot(target.store)
    with pytest.raises(ImportRejected, match=message):
        target.import_(mangle(data))
    assert snapshot(target.store) == before


def test_a_log_that_is_not_its_flows_is_rejected() -> None:
    source = populated()
    document = msgspec.json.decode(source.export(flow_ids=["paid"]), type=FlowDocument)
    [one] = document.flows
    moved = msgspec.structs.replace(one, flow_id="elsewhere")
    empty = msgspec.structs.replace(one, events=[], fingerprint=fingerprint([]))
    for bad in (moved, empty):
        data = msgspec.json.encode(FlowDocument(flows=[bad]))
        with pytest.raises(ImportRejected, match="does not begin with this flow's FlowStarted"):
            shop_engine().import_(data)


def test_import_dry_runs_every_log_against_the_registered_code() -> None:
    data = populated().export()
    changed = Registry()

    @flow("order", registry=changed)
    def order(sku: str, amount: int):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku)

    @flow("approval", version=2, registry=changed)
    def approval(who: str):  # type: ignore[no-untyped-def]
        yield Approve(who=who)

    target = make_engine(changed)
    with pytest.raises(ImportRejected, match="does not replay against the registered code"):
        target.import_(data)
    assert target.store.streams() == []
    with pytest.raises(ImportRejected, match="not registered"):
        make_engine(Registry()).import_(data)


# -- the upgrade gate ---------------------------------------------------------------------------


def test_check_replay_passes_unchanged_code_and_reports_divergences() -> None:
    engine = populated()
    assert engine.check_replay() == []
    changed = shop_registry()

    @flow("approval", version=2, registry=changed)
    def approval(who: str):  # type: ignore[no-untyped-def]
        yield Approve(who=who.upper())

    upgraded = make_engine(changed, store=engine.store)
    before = snapshot(engine.store)
    [divergence] = upgraded.check_replay()
    assert (divergence.flow_id, divergence.step) == ("approval", 0)
    assert divergence.logged == '{"type":"Approve","who":"bob"}'
    assert divergence.yielded == '{"type":"Approve","who":"BOB"}'
    assert "diverged" in divergence.error
    assert snapshot(engine.store) == before
    # Finished instances are not checked unless named.
    assert [d.flow_id for d in upgraded.check_replay(["rejected"])] == ["rejected"]


def test_check_replay_reports_a_missing_version_and_unknown_ids() -> None:
    engine = populated()
    without = Registry()
    gate = make_engine(without, store=engine.store)
    found = gate.check_replay()
    assert {d.flow_id for d in found} == {"approval", "pay-waiting", "retrying"}
    assert all(d.step is None and "not registered" in d.error for d in found)
    [missing] = engine.check_replay(["ghost"])
    assert missing.step is None and "ghost" in missing.error


# -- the golden export (Temporal's replayer) ---------------------------------------------------


# -- retiring moved instances ---------------------------------------------------------------


def test_retire_ends_moved_instances_here_without_running_them() -> None:
    source = populated()
    data = source.export(status="waiting")
    target = shop_engine()
    target.import_(data)
    before = {row.flow_id: row.status for row in source.flows()}
    assert sorted(source.retire_moved(data)) == ["approval", "pay-waiting", "retrying"]
    after = {row.flow_id: row.status for row in source.flows()}
    for flow_id, status in before.items():
        assert after[flow_id] == ("moved" if status == "waiting" else status)
    assert source.resume("pay-waiting", 50, awaiting=Pay).resumed is False
    source.clock.advance(86400)  # type: ignore[attr-defined]
    assert source.fire_due_timers() == []  # the retry of "retrying" moved away
    with pytest.raises(StepFailed, match="moved"):
        source.result("approval")
    assert target.resume("pay-waiting", 50, awaiting=Pay).status == "completed"


def test_retiring_again_or_a_finished_instance_changes_nothing() -> None:
    source = populated()
    data = source.export()
    source.retire_moved(data)
    before = snapshot(source.store)
    assert source.retire_moved(data) == []
    assert snapshot(source.store) == before


def test_an_instance_that_moved_on_here_since_the_export_is_not_retired() -> None:
    source = populated()
    data = source.export(status="waiting")
    source.resume("pay-waiting", 50, awaiting=Pay)
    before = snapshot(source.store)
    with pytest.raises(RetireRefused, match="pay-waiting"):
        source.retire_moved(data)
    assert snapshot(source.store) == before  # all or nothing: the others stay too


def test_the_golden_export_still_replays_under_current_code() -> None:
    assert GOLDEN.exists(), f"missing {GOLDEN}: run `python {__file__} --write-golden` once"
    data = GOLDEN.read_bytes()
    engine = shop_engine()
    report = engine.import_(data)
    assert len(report.imported) == 8
    assert engine.check_replay() == []
    assert engine.export() == data
    engine.resume("pay-waiting", 50, awaiting=Pay)
    engine.clock.now = T0 + timedelta(hours=5)  # type: ignore[attr-defined]
    assert [f.flow_id for f in engine.fire_due_timers()] == ["retrying"]
    engine.resume("approval", True, awaiting=Approve)
    assert engine.result("paid")["receipt"] == "ch-10"
    assert engine.result("expired")["status"] == "expired"
    assert engine.result("pay-waiting")["status"] == "paid"
    assert engine.result("retrying")["status"] == "paid"
    assert engine.result("approval") == "approved"
    assert {s.status for s in engine.flows()} == {"completed", "failed", "cancelled"}


if __name__ == "__main__" and "--write-golden" in sys.argv:
    write_golden()
    print(f"wrote {GOLDEN}")
