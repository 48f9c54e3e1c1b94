"""What every command shares: global options, opening the shop, errors, JSON and progress."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import msgspec
import typer

from cli import user_flows
from cli.clickcompat import Context, get_current_context
from cli.target import is_dsn
from commerce import CommerceError, PaymentProvider, Shop, provider_from, refund_providers
from flowlib import Clock, FlowError, utc_now
from ledger import LedgerError, ReadOnlyLedger

T = TypeVar("T")
_LINE_BREAK = re.compile(r"\s*\n\s*")
Access = Literal["write", "read", "check"]
DOMAIN_ERRORS = (CommerceError, LedgerError, FlowError)
DEFAULT_DB = "orderflow.db"

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (for scripts) instead of text.")
]


@dataclass
class State:
    """The root options, kept on the click context for the subcommands."""

    db: str  # a file path or a PostgreSQL DSN, as given (see `cli.target`)
    debug: bool = False
    json: bool = False
    flows: tuple[str, ...] = ()
    provider: str | None = None


def state(ctx: Context) -> State:
    """The root options (defaults when a command runs without the root callback)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State(DEFAULT_DB)


def wants_json(ctx: typer.Context, flag: bool) -> bool:
    """`--json` given on the command or on the root."""
    return flag or state(ctx).json


JSON_ARGS = "orderflow.json"  # ctx.meta: "--json" was among the arguments


def json_errors(ctx: Context | None = None) -> bool:
    """Errors as JSON: `--json` on the root or the command, or anywhere in the arguments."""
    ctx = ctx or get_current_context(silent=True)
    if ctx is None:
        return False
    return state(ctx).json or bool(ctx.params.get("as_json")) or bool(ctx.meta.get(JSON_ARGS))


def report(message: str, kind: str, *, as_json: bool) -> None:
    """Print a refusal on stderr: `error: ...` on one line, or under `--json` one object.

    Line breaks inside the message become spaces: a driver's message may span lines
    (libpq's "connection refused" adds a hint on a second, indented one).
    """
    message = _LINE_BREAK.sub(" ", message.strip())
    if as_json:
        typer.echo(msgspec.json.encode({"error": message, "kind": kind}).decode(), err=True)
    else:
        typer.echo(f"error: {message}", err=True)


def fail(message: str, code: int = 1, kind: str | None = None) -> NoReturn:
    """One line on stderr (JSON under `--json`), then exit with `code` (1: the domain refused).

    `kind` names the refusal for scripts: the library's error class, else "refused"
    (exit 1) or "usage" (exit 2).
    """
    report(message, kind or ("usage" if code == 2 else "refused"), as_json=json_errors())
    raise typer.Exit(code)


@contextmanager
def guarded(ctx: typer.Context) -> Iterator[None]:
    """Turn the library's typed errors into one stderr line and exit 1 (`--debug` re-raises)."""
    try:
        yield
    except (*DOMAIN_ERRORS, user_flows.FlowModuleError) as exc:
        if state(ctx).debug:
            raise
        fail(str(exc), kind=type(exc).__name__)


def open_shop(
    target: str | Path,
    *,
    clock: Clock = utc_now,
    access: Access = "write",
    notify: bool = False,
    provider: PaymentProvider | None = None,
) -> Shop:
    """Open the shop at `target` (a file, or a PostgreSQL DSN) for `access`.

    "read" never creates or writes anything; "check" (verify) needs an existing ledger and
    writes only where it can (to record the verification). A missing file or directory is
    named as such. With `notify`, a write that waits for the lock says so on stderr, naming
    the holder. `provider` takes new orders (commands choose theirs in `session`).
    """
    readonly = access == "read"
    if is_dsn(target) and access == "check":  # verify only a ledger that is there
        Shop.open(target, clock=clock, readonly=True).close()  # else MissingLedger, nothing made
    elif not is_dsn(target):
        absolute = Path(target).absolute()
        if access == "write" and not absolute.parent.is_dir():
            raise ReadOnlyLedger(str(absolute), f"directory {absolute.parent} does not exist")
        readonly = readonly or (access == "check" and not absolute.exists())
    try:
        shop = Shop.open(target, clock=clock, readonly=readonly, provider=provider)
    except ReadOnlyLedger:
        if access != "check":
            raise
        shop = Shop.open(target, clock=clock, readonly=True)  # verify it, without recording
    if notify:
        shop.ledger.on_wait = _waiting
    return shop


def _waiting(holder: str) -> None:
    who = f" (held by {holder})" if holder else ""
    typer.echo(f"waiting for the ledger's write lock{who}...", err=True)


CHOOSE_PROVIDER = (
    "choose one with --provider fake|stripe|sumup, $ORDERFLOW_PROVIDER, "
    "or `orderflow config set --provider NAME`"
)


def choose_providers(shop: Shop, given: str | None, environ: Mapping[str, str]) -> None:
    """Give `shop` the provider `given` (else its recorded one), and every one with keys.

    The others refund and cancel the intents recorded under their names. No provider at
    all is allowed here (the shop then refuses new orders); a chosen one whose keys are
    missing is `MissingProviderKey`.
    """
    name = given or shop.config.provider
    live = shop.config.livemode
    chosen = provider_from(name, environ, livemode=live) if name else None
    shop.use_provider(
        chosen, refund_providers=refund_providers(environ, besides=name, livemode=live)
    )


@contextmanager
def session(ctx: typer.Context, access: Access = "write", *, pays: bool = False) -> Iterator[Shop]:
    """The shop on the `--db` ledger for one command, closed afterwards; errors are guarded.

    Read commands pass "read": they open read-only, never create a file, and never wait.
    Commands that may call a payment provider pass `pays`: the shop gets the chosen one
    (`choose_providers`). The `--flows` modules (and `orderflow.flows` entry points) are
    imported first.
    """
    with guarded(ctx):
        handlers = user_flows.load(state(ctx).flows)
        shop = open_shop(state(ctx).db, access=access, notify=sys.stderr.isatty())
        try:
            if pays:
                choose_providers(shop, state(ctx).provider, os.environ)
            user_flows.install(shop.engine.handlers, handlers)
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
