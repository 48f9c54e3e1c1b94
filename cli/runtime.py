"""What every command shares: global options, opening the shop, errors, JSON and progress."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import msgspec
import typer

from commerce import CommerceError, Shop
from flowlib import Clock, FlowError, utc_now
from ledger import LedgerError, ReadOnlyLedger

T = TypeVar("T")
Access = Literal["write", "read", "check"]
DOMAIN_ERRORS = (CommerceError, LedgerError, FlowError)
DEFAULT_DB = "orderflow.db"

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of text.")
]


@dataclass
class State:
    """The root options, kept on the click context for the subcommands."""

    db: Path
    debug: bool = False
    json: bool = False


def state(ctx: typer.Context) -> State:
    """The root options (defaults when a command runs without the root callback)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State(Path(DEFAULT_DB))


def wants_json(ctx: typer.Context, flag: bool) -> bool:
    """`--json` given on the command or on the root."""
    return flag or state(ctx).json


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit with `code` (1: the domain refused)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def guarded(ctx: typer.Context) -> Iterator[None]:
    """Turn the library's typed errors into one stderr line and exit 1 (`--debug` re-raises)."""
    try:
        yield
    except DOMAIN_ERRORS as exc:
        if state(ctx).debug:
            raise
        fail(str(exc))


def open_shop(
    path: Path, *, clock: Clock = utc_now, access: Access = "write", notify: bool = False
) -> Shop:
    """Open the shop at `path` for `access`, naming a missing file or directory as such.

    "read" never creates or writes anything; "check" (verify) needs an existing file and
    writes only where it can (to record the verification). With `notify`, a write that
    waits for the lock says so on stderr, naming the holder.
    """
    absolute = path.absolute()
    if access == "write" and not absolute.parent.is_dir():
        raise ReadOnlyLedger(str(absolute), f"directory {absolute.parent} does not exist")
    readonly = access == "read" or (access == "check" and not absolute.exists())
    try:
        shop = Shop.open(path, clock=clock, readonly=readonly)
    except ReadOnlyLedger:
        if access != "check":
            raise
        shop = Shop.open(path, clock=clock, readonly=True)  # verify it, without recording
    if notify:
        shop.ledger.on_wait = _waiting
    return shop


def _waiting(holder: str) -> None:
    who = f" (held by {holder})" if holder else ""
    typer.echo(f"waiting for the ledger's write lock{who}...", err=True)


@contextmanager
def session(ctx: typer.Context, access: Access = "write") -> Iterator[Shop]:
    """The shop on the `--db` file for one command, closed afterwards; errors are guarded.

    Read commands pass "read": they open read-only, never create a file, and never wait.
    """
    with guarded(ctx):
        shop = open_shop(state(ctx).db, access=access, notify=sys.stderr.isatty())
        try:
            yield shop
        finally:
            shop.close()


def emit(value: Any) -> None:
    """Print `value` as one indented JSON document (msgspec encodes Structs and datetimes)."""
    typer.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def interactive() -> bool:
    """Progress is drawn only when a person is watching: stdout and stderr are terminals."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def working(label: str) -> Iterator[None]:
    """A spinner on stderr for one long call, on a terminal only."""
    if not interactive():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(label):
        yield


def progress(items: Sequence[T], label: str) -> Iterable[T]:
    """`items`, with a progress bar on stderr when on a terminal (quiet when piped)."""
    if not interactive() or len(items) < 2:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, description=label, console=Console(stderr=True), transient=True)


def read_input(source: str) -> bytes:
    """The raw bytes of FILE, or of stdin for "-"; an unreadable file is a usage error."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {source}: {exc.strerror}", param_hint="FILE"
        ) from exc


def parse_instant(text: str | None, option: str = "--now") -> datetime | None:
    """An ISO-8601 instant; a naive one is taken as UTC; bad text is a usage error."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not an ISO-8601 instant (e.g. 2025-01-31T12:00:00Z)", param_hint=option
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
