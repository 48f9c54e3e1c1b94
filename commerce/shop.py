"""`Shop`: the order domain over one ledger — catalog, orders, payments, timers, moves."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from commerce import readmodel, transfer, views
from commerce import reconcile as reconciling
from commerce import review as holds
from commerce.config import ShopConfig, record_config, recorded_config
from commerce.conflicts import again_on_conflict, retried
from commerce.errors import (
    CommerceError,
    DuplicateSku,
    EmptyOrder,
    InvalidMoney,
    InvalidOrder,
    InvalidQuantity,
    InvalidTransition,
    NoPaymentProvider,
    OrderConflict,
    UnknownProduct,
)
from commerce.events import CouponAdded, PaymentNotice, ProductAdded, Restocked, StockLine
from commerce.flows import ORDER_FLOW
from commerce.handlers import OrderHandlers
from commerce.limits import MAX_PRICE, MAX_QUANTITY, MAX_STOCK
from commerce.money import Money, check_amount
from commerce.pricing import Coupon
from commerce.projections import CommerceProjection
from commerce.providers import FakeProvider, Inbound, PaymentProvider, WebhookSource
from commerce.providers.stripe_webhooks import SIGNATURE_HEADER, StripeWebhooks
from commerce.requests import PlaceOrder
from commerce.webhooks import Settler, SettleResult
from flowlib import (
    REGISTRY,
    Clock,
    Engine,
    Fired,
    FlowStarted,
    FlowState,
    ImportReport,
    utc_now,
)
from ledger import Ledger, Synchronous


class Shop:
    """Catalog, orders and payment settling over one ledger; the library's front door.

    Settings come from the ledger (`configure` records them, so every process that opens
    the file agrees), else the defaults; `config=` overrides them for this object only.
    `provider` takes new orders; without one the shop takes none (`NoPaymentProvider`)
    but reads, settles webhooks, cancels and fires timers as ever. `refund_providers` are
    others whose earlier intents this shop may still refund or cancel (each intent
    records its provider's name; one whose provider is not here keeps retrying).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        provider: PaymentProvider | None = None,
        clock: Clock = utc_now,
        config: ShopConfig | None = None,
        refund_providers: Sequence[PaymentProvider] = (),
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.provider = provider
        self._others = tuple(refund_providers)
        self._apply(config or recorded_config(ledger) or ShopConfig())

    def _apply(self, config: ShopConfig) -> None:
        self.config = config
        self.handlers = OrderHandlers(
            self.ledger, self.provider, tax_rate_bp=config.tax_rate_bp, others=self._others
        )
        table = self.handlers.table()
        self.engine = Engine(self.ledger, table, clock=self.clock, registry=REGISTRY)
        self.settler = Settler(
            self.ledger,
            self.engine,
            livemode=config.livemode,
            clock=self.clock,
            handlers=self.handlers,
        )

    def use_provider(
        self,
        provider: PaymentProvider | None,
        *,
        refund_providers: Sequence[PaymentProvider] = (),
    ) -> None:
        """From now on create intents through `provider` (None: take no new orders).

        The provider used so far stays available for the intents it took, as do
        `refund_providers`. The engine and any handlers installed on it are kept (the CLI
        picks its providers after opening, from the settings it reads).
        """
        previous = () if self.provider is None else (self.provider,)
        self._others = (*self._others, *previous, *refund_providers)
        self.provider = provider
        self.handlers.use(provider, others=self._others)

    def configure(self, config: ShopConfig) -> bool:
        """Record new settings for every process using this file; False if already in force.

        This object uses them at once; other processes from the next time they open it.
        """
        changed = record_config(self.ledger, config)
        self._apply(config)
        return changed

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        provider: PaymentProvider | None = None,
        clock: Clock = utc_now,
        config: ShopConfig | None = None,
        readonly: bool = False,
        busy_timeout: float = 60.0,
        refund_providers: Sequence[PaymentProvider] = (),
    ) -> Shop:
        """Open (or create) the shop's ledger; once per process, for every thread.

        `target` is a file path (SQLite) or a `postgresql://` DSN (PostgreSQL, with the
        `postgres` extra), as for `Ledger.open`; the shop behaves the same on both.
        `readonly` never creates or writes anything (a missing ledger is `MissingLedger`);
        a write that waits `busy_timeout` seconds for the lock raises `LockTimeout`.
        """
        ledger = Ledger.open(
            target,
            synchronous=synchronous,
            projections=[CommerceProjection()],
            readonly=readonly,
            busy_timeout=busy_timeout,
        )
        return cls(
            ledger,
            provider=provider,
            clock=clock,
            config=config,
            refund_providers=refund_providers,
        )

    def close(self) -> None:
        """Close the ledger."""
        self.ledger.close()

    def __enter__(self) -> Shop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalog -----------------------------------------------------------------------

    def add_product(
        self, sku: str, name: str, price: Money, *, stock: int = 0
    ) -> readmodel.ProductRow:
        """Add `sku` to the catalog at `price`, with `stock` units available."""
        if not sku.strip() or not name.strip():
            raise InvalidOrder("a product needs a non-empty SKU and name")
        if not 0 <= price.amount <= MAX_PRICE:
            highest = Money(MAX_PRICE, price.currency)
            raise InvalidMoney(str(price), price.currency, f"a unit price is 0 to {highest}")
        _check_quantity(sku, stock, allow_zero=True)
        with self.ledger.transaction():
            if self._product_exists(sku):
                raise InvalidTransition(sku, "in the catalog", "add it again", subject="product")
            events: list[Any] = [
                ProductAdded(sku=sku, name=name, unit_price=price.amount, currency=price.currency)
            ]
            if stock:
                events.append(Restocked(sku=sku, quantity=stock))
            self.ledger.append(f"sku:{sku}", events, expected_version=0)
        return readmodel.product(self.ledger, sku)

    def restock(self, sku: str, quantity: int) -> readmodel.ProductRow:
        """Add `quantity` units of `sku`."""
        _check_quantity(sku, quantity)
        with self.ledger.transaction():
            _check_stock(sku, quantity, self._held(sku))
            self.ledger.append(f"sku:{sku}", [Restocked(sku=sku, quantity=quantity)])
        return readmodel.product(self.ledger, sku)

    def add_coupon(self, coupon: Coupon) -> None:
        """Add (or replace) a coupon in the catalog."""
        self.ledger.append(f"coupon:{coupon.code}", [CouponAdded(coupon=coupon)])

    def products(self) -> list[readmodel.ProductRow]:
        """Every product with its stock."""
        return readmodel.products(self.ledger)

    def _product_exists(self, sku: str) -> bool:
        return readmodel.held(self.ledger, sku) is not None

    def _held(self, sku: str) -> int:
        """The units of `sku` the shop holds (available and reserved); `UnknownProduct`."""
        held = readmodel.held(self.ledger, sku)
        if held is None:
            raise UnknownProduct(sku)
        return held

    # -- orders ------------------------------------------------------------------------

    def start_order(
        self,
        items: Sequence[tuple[str, int]],
        *,
        coupon: str | None = None,
        order_id: str | None = None,
    ) -> views.OrderView:
        """Quote, reserve and create the payment intent; the order then awaits payment.

        Bad input (unknown SKU, bad quantity, duplicate SKU lines, unknown coupon, too little
        stock) raises a `CommerceError` and writes nothing. An existing `order_id` with the
        same lines and coupon is returned as it stands (the order is never started twice);
        with others it is an `OrderConflict`, as Stripe treats a reused idempotency key.

        Without a provider (or with the fake on a live-mode shop) it is `NoPaymentProvider`,
        nothing written: even an order a coupon makes free, so whether a shop takes orders
        never depends on what is in the basket. The intent's `client_secret` or
        `checkout_url`, when the provider gives one, is in the view (and in `order` later:
        it is recorded with the intent, see `PaymentIntentCreated`).
        """
        lines = _lines(items)
        self._check_provider()
        order_id = order_id or f"ord_{secrets.token_hex(8)}"
        place = PlaceOrder(
            order_id=order_id,
            lines=lines,
            coupon=coupon,
            payment_timeout_seconds=self.config.payment_timeout_seconds,
        )
        started = again_on_conflict(
            self.ledger, self.engine.start_new, ORDER_FLOW, place, flow_id=order_id
        )
        if started is None and not _same_order(self.engine, order_id, place):  # args are fixed
            raise OrderConflict(order_id)
        return self.order(order_id)

    def _check_provider(self) -> None:
        """`NoPaymentProvider` unless this shop can take an order now."""
        if self.provider is None:
            raise NoPaymentProvider()
        if self.config.livemode and self.provider.name == FakeProvider.name:
            raise NoPaymentProvider(
                "a live-mode shop takes no orders through the fake provider (it moves no money)",
                "choose stripe or sumup",
            )

    @retried
    def cancel_order(
        self, order_id: str, reason: str = "cancelled by the merchant"
    ) -> views.OrderView:
        """Cancel an order still awaiting payment: its stock is released.

        The flow's cancellation is one transaction that checks it still waits, so a payment
        settled at the same moment either comes first (`InvalidTransition`) or finds the
        order cancelled (and is refunded). Cancelling a cancelled order again changes
        nothing. Once the order is closed its intent is cancelled at the provider, after
        that transaction committed (no provider call holds the write lock).
        """
        row = readmodel.order_row(self.ledger, order_id)
        if row.status not in ("cancelled", "placed", "awaiting_payment"):  # placed: retrying
            raise InvalidTransition(order_id, row.status, "cancel it")
        if row.status != "cancelled":
            self.engine.cancel(order_id, reason)  # a no-op if the flow finished meanwhile
        view = self.order(order_id)
        if view.order.status != "cancelled":
            raise InvalidTransition(order_id, view.order.status, "cancel it")
        return view

    def review(
        self, order_id: str, decision: holds.Decision, *, reason: str = ""
    ) -> views.OrderView:
        """Decide a payment held for review: `accept` fulfils the order, `refund` refunds it.

        Accepting needs the order's stock still held; refunding gives back what was paid
        (less any refund already recorded) and releases the stock. `InvalidTransition` if
        the order is not held for review.
        """
        why = reason or f"review decided: {decision}"
        flow_id = again_on_conflict(self.ledger, self._resolve, order_id, decision, why)
        if flow_id is not None:  # the refund call, nothing locked
            again_on_conflict(self.ledger, self.engine.run_effects, flow_id)
        return self.order(order_id)

    def _resolve(self, order_id: str, decision: holds.Decision, reason: str) -> str | None:
        """Decide a held payment in one transaction; the flow with a refund to make, if any."""
        with self.ledger.transaction():
            return holds.resolve(self.ledger, self.engine, order_id, decision, reason=reason)

    def order(self, order_id: str) -> views.OrderView:
        """The order with its quote and timeline (`UnknownOrder` if there is none)."""
        return views.order_view(self.ledger, order_id)

    def orders(
        self, status: str | None = None, *, since: datetime | None = None, limit: int | None = None
    ) -> list[readmodel.OrderRow]:
        """Orders, optionally with one status, placed since `since`; `limit` keeps the newest."""
        return readmodel.orders(self.ledger, status, since=since, limit=limit)

    # -- payments ----------------------------------------------------------------------

    def receive(
        self,
        source: WebhookSource,
        body: bytes,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> SettleResult:
        """Settle one delivery from `source` (e.g. `StripeWebhooks(secret)`): the raw body
        bytes and the request's headers, authenticated before anything is parsed."""
        return self.settler.receive(source, body, headers, now=now)

    def receive_batch(
        self,
        deliveries: Sequence[tuple[WebhookSource, bytes, Mapping[str, str]]],
        *,
        now: datetime | None = None,
    ) -> list[SettleResult | CommerceError]:
        """Settle several deliveries with one commit (group commit), answers in their order.

        Each is authenticated and decoded first, outside any transaction; one that fails
        there, or is refused when it is settled, is answered alone with its `CommerceError`
        (`BadSignature`, `MalformedEvent`, ...) and the others still commit together. See
        `Settler.settle_batch`.
        """
        now = now or self.clock()
        answers: list[SettleResult | CommerceError | None] = []
        authentic: list[tuple[Inbound, bytes]] = []
        for source, body, headers in deliveries:
            try:
                authentic.append((self.settler.authentic(source, body, headers, now=now), body))
                answers.append(None)
            except CommerceError as exc:
                answers.append(exc)
        settled = iter(self.settler.settle_batch(authentic))
        return [next(settled) if answer is None else answer for answer in answers]

    def settle_webhook(
        self,
        body: bytes,
        signature_header: str | None,
        *,
        secret: str,
        tolerance: int = 300,
        now: datetime | None = None,
    ) -> SettleResult:
        """Settle a signed Stripe webhook from its raw body bytes and `Stripe-Signature`."""
        headers = {} if signature_header is None else {SIGNATURE_HEADER: signature_header}
        return self.receive(StripeWebhooks(secret, tolerance=tolerance), body, headers, now=now)

    def settle(
        self, order_id: str, *, amount: int | None = None, event_id: str | None = None
    ) -> SettleResult:
        """Record a payment for the order directly (trusted callers: no signature)."""
        row = readmodel.order_row(self.ledger, order_id)
        paid = row.total if amount is None else check_amount(amount, row.currency)
        if paid < 0:
            raise InvalidMoney(amount, row.currency, "a payment cannot be negative")
        return self._direct(row, True, paid, event_id or f"direct:{order_id}", "")

    def fail_payment(
        self, order_id: str, *, reason: str = "declined", event_id: str | None = None
    ) -> SettleResult:
        """Record a failed payment attempt for the order directly (trusted callers)."""
        row = readmodel.order_row(self.ledger, order_id)
        return self._direct(
            row, False, row.total, event_id or f"direct-fail:{secrets.token_hex(6)}", reason
        )

    def _direct(
        self, row: readmodel.OrderRow, succeeded: bool, amount: int, event_id: str, reason: str
    ) -> SettleResult:
        if row.intent_id is None:
            raise InvalidTransition(
                row.order_id, row.status, "record a payment (it has no payment intent)"
            )
        notice = PaymentNotice(
            event_id=event_id,
            intent_id=row.intent_id,
            succeeded=succeeded,
            amount=amount,
            currency=row.currency,
            reason=reason,
        )
        event = Inbound(
            provider="direct",
            event_id=event_id,
            event_type="payment.succeeded" if succeeded else "payment.failed",
            fact=notice,
            order_hint=row.order_id,
        )
        return self.settler.settle(event, msgspec.json.encode(event))  # the same body each time

    def reconcile(
        self, *, older_than: timedelta = timedelta(0), now: datetime | None = None
    ) -> list[reconciling.Reconciled]:
        """Ask each intent's provider about orders awaiting payment for over `older_than`.

        What the provider reports as paid (or cancelled) is settled as a webhook would be,
        idempotently; see `commerce.reconcile`.
        """
        before = (now or self.clock()) - older_than
        return reconciling.reconcile(
            self.ledger, self.settler, self.handlers.provider_of, placed_before=before
        )

    # -- time and moves ----------------------------------------------------------------

    def fire_timers(self, now: datetime | None = None) -> list[Fired]:
        """Fire due payment timeouts, retries and provider-call leases, and expire review holds.

        Parked payments that a flow can take now (its code was fixed) are applied first, so
        a timeout never overtakes a payment that came before it.
        """
        now = now or self.clock()
        self.apply_parked()
        fired = self.engine.fire_due_timers(now)
        timeout = self.config.review_timeout_seconds
        for order_id in holds.expired(self.ledger, now, timeout):
            why = f"the review hold expired after {timeout} s: refunded"
            flow_id = again_on_conflict(self.ledger, self._resolve, order_id, "refund", why)
            state = (
                again_on_conflict(self.ledger, self.engine.run_effects, flow_id)
                if flow_id
                else self.engine.status(order_id)
            )
            fired.append(Fired(flow_id=state.flow_id, mode="review-expiry", status=state.status))
        return fired

    # -- parked payments and stuck flows ------------------------------------------------

    def parked(self) -> list[readmodel.ParkedEvent]:
        """Payment events recorded but not yet applied to any order's flow, oldest first."""
        return readmodel.parked(self.ledger)

    def inbox(self, order_id: str) -> list[readmodel.ParkedEvent]:
        """The events parked for the order's flow (by it, or on its own intent), by event id."""
        return readmodel.inbox(self.ledger, order_id)

    def apply_parked(self, order_id: str | None = None) -> list[SettleResult]:
        """Apply every parked event (or the order's) that can be decided now; what each did."""
        results: list[SettleResult] = []
        decided: set[str] = set()
        for event in readmodel.parked(self.ledger, order_id):
            if event.event_id in decided:  # taken by its flow with an earlier one
                continue
            applied = again_on_conflict(self.ledger, self.settler.apply_parked, event.event_id)
            decided.update(result.event_id for result in applied)
            results.extend(applied)
        return results

    def resume_flow(self, flow_id: str) -> tuple[FlowState, list[SettleResult]]:
        """Take back a stuck flow once the code is fixed, then apply the events it missed.

        Raises `NondeterminismError` (nothing written) if its log still diverges.
        """
        again_on_conflict(self.ledger, self.engine.recover, flow_id)
        order_id = transfer.order_of(self.engine, flow_id)
        applied = self.apply_parked(order_id) if order_id else []
        return self.engine.status(flow_id), applied

    def export_flows(self, *, status: str | None = None) -> bytes:
        """The flows (all, or those with `status`), with their orders, as one document."""
        return transfer.export_shop(self.ledger, self.engine, status=status)

    def import_flows(self, data: bytes) -> ImportReport:
        """Import a document from `export_flows` (checked and dry-run first; all or nothing)."""
        return transfer.import_shop(self.ledger, self.engine, data)

    def retire_moved(
        self,
        data: bytes,
        *,
        receipt: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        reason: str = "moved to another ledger",
    ) -> list[str]:
        """After `import_flows` elsewhere: end here the flows the document moved; ids retired.

        Their orders become `moved` (with any of their flows) and the stock they held leaves
        this ledger with them. It needs the `receipt` the import reported, or `force=True`;
        `dry_run` checks and reports without writing. Refused (`RetireRefused`, nothing
        written) if any of them changed here since the export; webhooks that still reach
        this ledger for them are then ignored. Repeating it changes nothing.
        """
        return transfer.retire_shop(
            self.ledger,
            self.engine,
            data,
            reason=reason,
            receipt=receipt,
            force=force,
            dry_run=dry_run,
        )


def _check_quantity(sku: str, quantity: object, *, allow_zero: bool = False) -> int:
    least = 0 if allow_zero else 1
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not least <= quantity <= MAX_QUANTITY
    ):
        raise InvalidQuantity(sku, quantity, f"need a whole number in {least}..{MAX_QUANTITY}")
    return quantity


def _check_stock(sku: str, quantity: int, held: int) -> None:
    if held + quantity > MAX_STOCK:
        reason = f"{sku} would hold {held + quantity} units, over the limit of {MAX_STOCK}"
        raise InvalidQuantity(sku, quantity, reason)


def _same_order(engine: Engine, order_id: str, place: PlaceOrder) -> bool:
    """Whether the order's flow was started for these lines and coupon."""
    started = engine.log(order_id)[0]
    if not isinstance(started, FlowStarted) or started.name != ORDER_FLOW:
        return False
    (placed,) = msgspec.json.decode(started.args, type=tuple[PlaceOrder])
    return (_units(placed.lines), placed.coupon) == (_units(place.lines), place.coupon)


def _units(lines: Sequence[StockLine]) -> list[tuple[str, int]]:
    return sorted((line.sku, line.quantity) for line in lines)


def _lines(items: Sequence[tuple[str, int]]) -> list[StockLine]:
    if not items:
        raise EmptyOrder()
    skus = [sku for sku, _ in items]
    duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
    if duplicates:
        raise DuplicateSku(duplicates)
    return [StockLine(sku, _check_quantity(sku, quantity)) for sku, quantity in items]
