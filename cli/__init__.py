"""The `orderflow` command line: typer, thin over commerce.

Import `app` (the typer application) or call `main()`; the modules are an implementation detail.
"""

from __future__ import annotations

from cli.app import app, main

__all__ = ["app", "main"]
