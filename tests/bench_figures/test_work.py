"""The bench's work counters count what they say (statements, commits, WAL frames)."""

from __future__ import annotations

from pathlib import Path

from bench.work import figures, phases


def test_each_begin_commits_twice_and_each_settle_once(tmp_path: Path) -> None:
    begin, settle = phases(tmp_path / "work.db", count=3, history=2)
    assert (begin.commits, settle.commits) == (6, 3)
    assert begin.statements[0] == "BEGIN IMMEDIATE"
    assert all(not sql.startswith("--") for sql in settle.statements)  # no trigger bodies
    per = figures(settle, "settle")
    assert per["SQL statements per settle"] == len(settle.statements) / 3
    assert 1 <= per["WAL pages per settle commit"] < 100  # every commit writes pages
    assert per["CPU ms per settle"] > 0
