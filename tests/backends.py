"""Contract tests on both backends: `targets` makes new, empty ledger targets for one test.

A test (or module) marked `both_backends` runs once per backend: its `backend` fixture is
"sqlite" (files in `tmp_path`) or "postgres" (fresh schemas on `ORDERFLOW_TEST_PG_DSN`,
skipped when unset, see `pg.py`). Unmarked tests get SQLite alone, so SQLite specifics
(files, WAL, `ledger.db`) and the many variations of one behaviour stay single-backend.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pg import fresh_schema

BACKENDS = ("sqlite", "postgres")
MARK = "both_backends"


class Targets:
    """New, empty ledger targets on one backend, removed when the test ends."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self._tmp = tmp_path
        self._stack = ExitStack()

    @property
    def postgres(self) -> bool:
        return self.backend == "postgres"

    def new(self, name: str = "shop") -> str:
        """A target that lives until the test ends: `name`.db in tmp_path, or a new schema.

        The same name twice is refused: a test that reopens a target keeps the one it got.
        """
        if self.postgres:
            return self._stack.enter_context(fresh_schema())
        path = self._tmp / f"{name}.db"
        if path.exists():
            raise ValueError(f"{path} exists: reuse the target, or name another")
        return str(path)

    @contextmanager
    def fresh(self, name: str = "shop") -> Iterator[str]:
        """A target for one block (a hypothesis example), removed when it ends."""
        if self.postgres:
            with fresh_schema() as dsn:
                yield dsn
            return
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / f"{name}.db")

    def examples(self, count: int) -> int:
        """A hypothesis example count for this backend: a third on PostgreSQL.

        Each example there makes and drops a schema, and every statement is a round trip;
        SQLite's run keeps the full count, PostgreSQL's checks the same property on fewer.
        """
        return max(5, count // 3) if self.postgres else count

    def close(self) -> None:
        self._stack.close()
