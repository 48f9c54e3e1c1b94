"""bench.pg_chain's pure parts (keys, links, verification) and, on a server, its checks."""

from __future__ import annotations

import random

import pytest
from pg import server_dsn

from bench import pg_chain
from bench.pg_chain import ChainRow, EventRow, global_link, stream_link
from ledger import GENESIS
from ledger.codec import chain_hash


def _ledger(layout: list[str]) -> tuple[list[EventRow], list[ChainRow]]:
    """Events appended to the streams in `layout` (one per entry), sequenced in that order."""
    tips: dict[str, tuple[int, str]] = {}
    events: list[EventRow] = []
    chain: list[ChainRow] = []
    previous = GENESIS
    for event_id, stream in enumerate(layout, start=1):
        version, before = tips.get(stream, (0, GENESIS))
        at, data = f"2024-01-01T00:00:{event_id:02d}.000000+00:00", f'{{"n": {event_id}}}'
        link = stream_link(before, stream, version + 1, "T", data, at)
        tips[stream] = (version + 1, link)
        events.append((event_id, stream, version + 1, "T", data, at, link))
        previous = global_link(previous, event_id, link)
        chain.append((event_id, event_id, previous))
    return events, chain


def test_a_sound_ledger_verifies() -> None:
    events, chain = _ledger(["order:1", "flow:1", "order:1", "webhook:a", "flow:1"])
    assert pg_chain.verify_sequenced(events, chain) == []


def test_an_edited_body_breaks_its_stream_chain() -> None:
    events, chain = _ledger(["order:1", "order:1", "flow:1"])
    events[0] = (*events[0][:4], '{"n": 99}', *events[0][5:])
    assert pg_chain.verify_sequenced(events, chain) == ["order:1 v1: hash does not follow"]


def test_a_gap_a_missing_event_and_a_rehashed_stream_are_flagged() -> None:
    events, chain = _ledger(["order:1", "flow:1", "order:1"])
    problems = pg_chain.verify_sequenced(events, [chain[0], chain[2]])
    assert "gap: position 3 where 2 was due" in problems
    assert "2 of 3 events sequenced" in problems
    # a stream re-linked after an edit still breaks the global chain, which links its hashes
    forged = stream_link(GENESIS, "flow:1", 1, "T", "{}", events[1][5])
    events[1] = (*events[1][:4], "{}", events[1][5], forged)
    assert pg_chain.verify_sequenced(events, chain) == ["position 2: global hash does not follow"]


def test_a_global_order_against_a_streams_order_is_flagged() -> None:
    events, _ = _ledger(["s", "s"])
    previous, chain = GENESIS, []
    for position, event in enumerate(reversed(events), start=1):  # v2 sequenced before v1
        previous = global_link(previous, position, event[6])
        chain.append((position, event[0], previous))
    assert pg_chain.verify_sequenced(events, chain) == ["position 2: s v1 after a later version"]


def test_design_a_chain_is_the_ledgers_row_hash() -> None:
    at, rows, previous = "2024-01-01T00:00:00.000000+00:00", [], GENESIS
    for position in (1, 2):
        previous = chain_hash(previous, position, "s", position, "T", b"{}", at, None)
        rows.append((position, "s", position, "T", "{}", at, previous))
    assert pg_chain.verify_global_in_tx(rows) == []
    assert pg_chain.verify_global_in_tx(rows[1:]) != []


def test_lock_keys_are_signed_64_bit_and_scoped() -> None:
    key = pg_chain.lock_key("shop", "o1")
    assert key == pg_chain.lock_key("shop", "o1")
    assert -(2**63) <= key < 2**63
    assert key != pg_chain.lock_key("other", "o1")


def test_bodies_and_settles_have_the_stated_shape() -> None:
    rng = random.Random(1)
    sizes = [len(pg_chain.body(rng, "o1", "order")) for _ in range(200)]
    assert min(sizes) >= 300 and max(sizes) <= 1_500
    settle = pg_chain.Settle.make(rng, "evt_1")
    assert len(settle.events) == 7
    assert {stream.split(":")[0] for stream, _, _ in settle.events} == {"order", "flow", "webhook"}


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert pg_chain.percentile(values, 0.5) == 50.0
    assert pg_chain.percentile(values, 0.99) == 99.0
    assert pg_chain.percentile([], 0.5) == 0.0


def test_the_sequencer_assumptions_hold_on_the_server() -> None:
    """The xmin rule, one leader, verify and a tamper; and why locks precede writes."""
    pytest.importorskip("psycopg")
    dsn = server_dsn()
    assert len(pg_chain.check_xmin_rule(dsn)) == 3
    assert len(pg_chain.check_lock_before_write(dsn)) == 1
