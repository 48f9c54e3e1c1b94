"""Where the instructions go: `python -m bench.callgrind_objects BEFORE.out AFTER.out N`.

Reads two callgrind output files of the cumulative workload (`bench/callgrind.sh
--keep DIR` leaves them) and prints the instructions per step that each binary object
(the interpreter, SQLite, the sqlite3 binding, msgspec, libcrypto's hashing, libc)
spent itself, from the difference of the two runs divided by N.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_NAMED = re.compile(r"\((\d+)\)(?: (.*))?")
_GROUPS = (  # first match wins: a readable component for each shared object
    ("sqlite3 binding (_sqlite3)", "_sqlite3"),
    ("SQLite (libsqlite3)", "libsqlite3"),
    ("msgspec", "msgspec"),
    ("hashing (libcrypto, _hashlib)", "libcrypto"),
    ("hashing (libcrypto, _hashlib)", "_hashlib"),
    ("libc (malloc, memcpy, ...)", "libc.so"),
    ("kernel / loader", "ld-linux"),
    ("the interpreter (python3.11, libpython)", "python3"),
    ("the interpreter (python3.11, libpython)", "libpython"),
)


def self_cost_by_object(path: Path) -> Counter[str]:
    """Instructions each object spent in its own code (calls' inclusive costs left out)."""
    names: dict[str, str] = {}
    costs: Counter[str] = Counter()
    current = "?"
    skip_next = False  # the cost line after `calls=` is the callee's inclusive cost
    with path.open() as lines:
        for line in lines:
            if line.startswith(("ob=", "cob=")):  # both name objects, in one numbering
                key, _, value = line.partition("=")
                match = _NAMED.match(value.strip())
                number, name = match.groups() if match else (value.strip(), value.strip())
                if name:
                    names[number] = name
                if key == "ob":
                    current = names.get(number, "?")
            elif line.startswith("calls="):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                fields = line.split()
                if len(fields) >= 2:
                    costs[current] += int(fields[1])
    return costs


def group(costs: Counter[str]) -> Counter[str]:
    """The costs summed into readable components."""
    grouped: Counter[str] = Counter()
    for name, cost in costs.items():
        label = next((label for label, part in _GROUPS if part in name), f"other ({name})")
        grouped[label] += cost
    return grouped


def main(before: Path, after: Path, count: int) -> None:
    """Print instructions per step by component, largest first."""
    diff = group(self_cost_by_object(after))
    diff.subtract(group(self_cost_by_object(before)))
    total = sum(diff.values())
    print(f"{'component':44} {'per step':>12} {'share':>7}")
    for label, cost in diff.most_common():
        if cost / count >= 500:
            print(f"{label:44} {cost / count:12,.0f} {cost / total:7.1%}")
    print(f"{'total':44} {total / count:12,.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python -m bench.callgrind_objects BEFORE.out AFTER.out N")
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
