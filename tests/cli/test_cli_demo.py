"""The demo end to end: in-process, and as the installed script."""

from __future__ import annotations

import json
import time

from cli_helpers import error_line, script
from typer.testing import CliRunner

from cli import app


def test_demo_in_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "first delivery: settled" in out
    assert "second delivery: already settled" in out
    assert "declined attempt: recorded" in out
    assert "demo complete: A fulfilled, B expired, C moved and fulfilled" in out
    files = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".db", ".json"))
    assert len(files) == 3 and all(name.startswith("orderflow-demo-") for name in files)
    assert files[0] in out  # the files are named in the output
    second = CliRunner().invoke(app, ["demo"])  # never reuses the first run's files
    assert second.exit_code == 0
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".db"]) == 4


def test_demo_json(tmp_path):
    db = tmp_path / "story.db"
    result = CliRunner().invoke(app, ["demo", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert doc["files"]["shop"] == str(db)
    assert [d["outcome"] for d in doc["deliveries"]] == [
        "settled",
        "already_settled",
        "recorded",
        "settled",
    ]
    assert [o["order"]["status"] for o in doc["orders"]] == ["fulfilled", "expired", "fulfilled"]
    assert doc["verify"]["shop"]["ok"] and doc["verify"]["moved_to"]["ok"]
    assert len(doc["imported"]["imported"]) == 1


def test_demo_refuses_an_existing_file(tmp_path):
    db = tmp_path / "taken.db"
    db.write_bytes(b"")
    result = CliRunner().invoke(app, ["demo", "--db", str(db)])
    assert result.exit_code == 1
    assert "exists" in error_line(result)


def test_demo_as_the_installed_script(orderflow_bin, tmp_path):
    started = time.monotonic()
    done = script(orderflow_bin, "demo", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "demo complete" in done.stdout and done.stderr == ""
    assert elapsed < 5, f"the demo took {elapsed:.1f}s"
    shop = next(p for p in tmp_path.glob("orderflow-demo-*.db") if "moved" not in p.name)
    verified = script(orderflow_bin, "ledger", "verify", "--json", cwd=tmp_path, db=shop)
    assert json.loads(verified.stdout)["ok"] is True
