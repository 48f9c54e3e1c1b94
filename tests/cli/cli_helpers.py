"""Helpers for the CLI tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner, Result

from cli import app

Run = Callable[..., Result]
PROVIDER_ENV = {"ORDERFLOW_PROVIDER": "fake"}
"""Every CLI test runs on the fake provider unless it says otherwise (`env=` overrides)."""


def make_run(runner: CliRunner, db: Path) -> Run:
    """`run(*args, code=0, input=None)`: invoke the app on `db` and check the exit code."""

    def run(
        *args: str,
        code: int | None = 0,
        input: str | bytes | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        env = {**PROVIDER_ENV, **(env or {})}
        result = runner.invoke(app, ["--db", str(db), *args], input=input, env=env)
        if code is not None and result.exit_code != code:
            raise AssertionError(
                f"orderflow {' '.join(args)} exited {result.exit_code}, expected {code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\nexception: {result.exception!r}"
            )
        return result

    run.db = db  # type: ignore[attr-defined]
    return run


def error_line(result: Result) -> str:
    """The single `error: ...` line a refused command prints on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def script(
    binary: Path,
    *args: str,
    cwd: Path,
    db: Path | str | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `orderflow` script in a subprocess (`env` adds to a clean environment).

    The clean environment has no ORDERFLOW_ variables but `PROVIDER_ENV` (the fake).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    env = clean | PROVIDER_ENV | (env or {})
    argv = [str(binary), *(["--db", str(db)] if db else []), *args]
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
