"""The parts of click the CLI uses, from the copy typer runs on.

Newer typer vendors click as `typer._click` (its exceptions are not click's); older typer
runs on click itself.
"""

from __future__ import annotations

try:
    from typer._click.core import Context
    from typer._click.exceptions import (
        ClickException,
        NoArgsIsHelpError,
        NoSuchOption,
        UsageError,
    )
    from typer._click.globals import get_current_context
except ImportError:  # typer before it vendored click
    from click import (  # type: ignore[assignment, no-redef]
        ClickException,
        Context,
        NoSuchOption,
        UsageError,
        get_current_context,
    )
    from click.exceptions import NoArgsIsHelpError  # type: ignore[assignment]

__all__ = [
    "ClickException",
    "Context",
    "NoArgsIsHelpError",
    "NoSuchOption",
    "UsageError",
    "get_current_context",
]
