"""`webhook deliver` never reads past the body cap plus one byte: a larger delivery is one
`error:` line, and the process stays small however much is offered on stdin (256 MiB used
to peak at 551 MiB RSS before being refused)."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import Run, error_line

from commerce import MAX_BODY

OFFERED = 64 * MAX_BODY  # what the test is ready to push into the pipe
CHUNK = 64 * 1024
SLACK = MAX_BODY  # the pipe's buffer (64 KiB on Linux) and the reader's, with room to spare
HEADER = "t=1700000000,v1=" + "0" * 64


@dataclass
class Delivery:
    code: int
    stderr: str
    taken: int  # bytes the pipe accepted before the process closed it
    peak_rss_kib: int


def _feed(fd: int, total: int, taken: list[int]) -> None:
    chunk = b" " * CHUNK
    try:
        while taken[0] < total:
            taken[0] += os.write(fd, chunk[: total - taken[0]])
    except BrokenPipeError:
        pass  # the reader is done: what it took is all it will take
    finally:
        os.close(fd)


def deliver_stream(binary: Path, tmp_path: Path, total: int) -> Delivery:
    """Run `orderflow webhook deliver -`, offering `total` bytes on stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    argv = [str(binary), "--db", str(tmp_path / "shop.db"), "webhook", "deliver", "-"]
    proc = subprocess.Popen(
        [*argv, "--signature", HEADER, "--secret", "whsec_test"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdin is not None and proc.stderr is not None
    taken = [0]
    writer = threading.Thread(target=_feed, args=(os.dup(proc.stdin.fileno()), total, taken))
    proc.stdin.close()
    writer.start()
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS, not pytest's
    finally:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    writer.join(timeout=30)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    return Delivery(proc.returncode, stderr, taken[0], usage.ru_maxrss)


def test_deliver_reads_at_most_the_cap_plus_one_byte_from_stdin(
    orderflow_bin: Path, tmp_path: Path
) -> None:
    small = deliver_stream(orderflow_bin, tmp_path, 100)  # the same command on a tiny body
    big = deliver_stream(orderflow_bin, tmp_path, OFFERED)
    assert big.code == 1, big.stderr
    assert big.stderr == (
        f"error: webhook body is at least {MAX_BODY + 1} bytes, over the {MAX_BODY}-byte limit\n"
    )
    assert big.taken <= MAX_BODY + 1 + SLACK, f"the pipe took {big.taken} of {OFFERED} bytes"
    growth_mib = (big.peak_rss_kib - small.peak_rss_kib) / 1024
    assert growth_mib < 16, f"peak RSS {big.peak_rss_kib} KiB vs {small.peak_rss_kib} KiB"
    assert small.code == 1 and "bad webhook signature" in small.stderr  # it was read and checked


@pytest.mark.parametrize("size", [MAX_BODY, MAX_BODY + 1, 5 * MAX_BODY])
def test_deliver_refuses_only_what_is_over_the_cap(shop_db: Run, tmp_path: Path, size: int) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b" " * size)
    for source, given in ((str(path), None), ("-", path.read_bytes())):
        result = shop_db(
            "webhook",
            "deliver",
            source,
            "--signature",
            HEADER,
            "--secret",
            "s",
            input=given,
            code=1,
        )
        line = error_line(result)
        if size > MAX_BODY:
            assert line == (
                f"error: webhook body is at least {MAX_BODY + 1} bytes, "
                f"over the {MAX_BODY}-byte limit"
            )
        else:
            assert "bad webhook signature" in line  # read whole, then checked as usual
