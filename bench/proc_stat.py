"""CPU time of other processes, from Linux `/proc` (the served process, a database server)."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, list[str]]:
    """The process's name and the fields of `/proc/<pid>/stat` after it."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = _stat(pid)[1]
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_by_pid(prefix: str) -> dict[int, float]:
    """pid -> CPU seconds so far, of every process whose name starts with `prefix`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            name, fields = _stat(int(entry))
        except OSError:
            continue  # it ended meanwhile
        if name.startswith(prefix):
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found
