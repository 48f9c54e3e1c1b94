"""The README's two embedding examples, run as written: the ASGI app mounted in a
Starlette app under uvicorn, and the WSGI callable under wsgiref, each on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_helpers import env, fulfilled, payments, request, signed, stocked

README = Path(__file__).resolve().parents[2] / "README.md"
DEADLINE = 60.0


def example(heading: str) -> str:
    """The first Python block after `heading` in the README."""
    section = README.read_text().split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no Python block under {heading!r}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the port accepts a connection (or the program exits, which fails the test)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the example did not listen (exit {process.poll()})")


def pay_through(port: int, db: Path) -> None:
    """A payment through the mounted routes settles; the probes answer under the prefix."""
    (order,) = stocked(db, 1)
    body = payments(db, [order])[order]
    status, _, answer = request(port, "POST", "/payments/webhooks/stripe", body, signed(body))
    assert (status, answer["outcome"]) == (200, "settled"), answer
    again = request(port, "POST", "/payments/webhooks/stripe", body, signed(body))
    assert again[2]["outcome"] == "already_settled"
    status, _, health = request(port, "GET", "/payments/healthz", None, {})
    assert status == 200 and health["ok"], health
    assert request(port, "GET", "/", None, {})[2] == "the shop"
    assert fulfilled(db) == {order: 1}


@pytest.mark.parametrize("heading", ["### Inside your ASGI app", "### Inside your WSGI app"])
def test_the_readme_embedding_example_serves_the_routes(tmp_path: Path, heading: str) -> None:
    program = tmp_path / "site.py"
    program.write_text(example(heading))
    db = tmp_path / "shop.db"
    stocked(db, 0)
    asgi = "ASGI" in heading
    port = free_port() if asgi else 0
    log = tmp_path / "site.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(program)],
            env=env(ORDERFLOW_DB=str(db), PORT=str(port)),
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        if asgi:
            wait_for(port, process)
        else:
            assert process.stdout is not None
            port = int(process.stdout.readline().split()[-1])
        pay_through(port, db)
    finally:
        process.terminate()
        process.communicate(timeout=DEADLINE)
    assert "Traceback" not in log.read_text(), log.read_text()
