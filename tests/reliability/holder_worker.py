"""A process that holds one ledger open twice (a shop per thread, say) and answers on stdin.

`python holder_worker.py DB` prints "ready", then for each line:
- `restock N` (through the first shop) prints "ok";
- `stock` prints the MUG units available as each of its two shops sees them;
- `quit` closes both and exits.
"""

from __future__ import annotations

import sys

from commerce import Shop


def main(path: str) -> None:
    first, second = Shop.open(path), Shop.open(path)
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "restock":
            first.restock("MUG", int(args[0]))
            print("ok", flush=True)
        elif command == "stock":
            seen = [
                shop.ledger.db.execute(
                    "SELECT available FROM products WHERE sku = 'MUG'"
                ).fetchone()[0]
                for shop in (first, second)
            ]
            print(" ".join(map(str, seen)), flush=True)
        elif command == "quit":
            break
    first.close()
    second.close()


if __name__ == "__main__":
    main(sys.argv[1])
