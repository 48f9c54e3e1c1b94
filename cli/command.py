"""The root command's click group: a closed pipe, usage errors under --json, misplaced options."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from cli.clickcompat import ClickException, Context, NoArgsIsHelpError, NoSuchOption, UsageError
from cli.runtime import JSON_ARGS, report

CLOSED_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` exits with under `set -o pipefail`
GLOBAL_OPTIONS = ("--db", "--debug", "--flows", "--provider", "--version")


class PlainArgument(TyperArgument):
    """An argument shown as people write it: `SKU` (required) or `[FILE]`, with no type."""

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        """`NAME`, or `[NAME]` when it may be left out."""
        return [self._rich_display_name() if self.required else f"[{self._rich_display_name()}]"]

    def _rich_display_name(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx: Context) -> str | None:
        """No `<str>` after the name: the help says what it is."""
        return None


class RootGroup(TyperGroup):
    """`orderflow`: every command runs inside `_handled`, and its help shows plain metavars."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_metavars(self)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        """Parse the root options; note whether `--json` is among all the arguments."""
        wanted = "--json" in _before_separator(args)
        with _handled(wanted):
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta[JSON_ARGS] = wanted
        return ctx

    def invoke(self, ctx: Context) -> Any:
        """Run the command; usage errors under --json, a closed pipe and misplaced options."""
        with _handled(bool(ctx.meta.get(JSON_ARGS))):
            return super().invoke(ctx)


def _plain_metavars(command: Any) -> None:
    """Every option's value as `NAME` (not `<str>`) and every argument as `NAME` (not `{name}`)."""
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = PlainArgument
        elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def _before_separator(args: Sequence[str]) -> list[str]:
    return list(args[: args.index("--")] if "--" in args else args)


@contextmanager
def _handled(as_json: bool) -> Iterator[None]:
    try:
        yield
    except NoSuchOption as exc:
        error = _misplaced(exc) or exc
        if as_json:
            _json_usage(error)
        raise error from None
    except ClickException as exc:
        if as_json and not isinstance(exc, NoArgsIsHelpError):
            _json_usage(exc)
        raise
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(CLOSED_PIPE) from None


def _misplaced(exc: NoSuchOption) -> UsageError | None:
    """A root option given after the command: say where it goes."""
    if exc.option_name not in GLOBAL_OPTIONS:
        return None
    path = exc.ctx.command_path.split(" ", 1) if exc.ctx else ["orderflow"]
    rest = f" {path[1]}" if len(path) > 1 else ""
    return UsageError(
        f"{exc.option_name} is an option of orderflow itself: give it before the command, "
        f"as in `{path[0]} {exc.option_name} ...{rest}`",
        ctx=exc.ctx,
    )


def _json_usage(exc: ClickException) -> None:
    """A usage error as one JSON object on stderr (exit 2, as in text)."""
    report(exc.format_message(), "usage", as_json=True)
    raise typer.Exit(exc.exit_code)


def _silence_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests capture it)
        pass
