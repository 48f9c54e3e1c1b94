"""Moving orders between shop ledgers: their flows, their events and the stock they hold.

A move is three steps: `export_shop` here, `import_shop` there, then `retire_shop` here,
which ends the moved flows in this ledger (a `moved` status, nothing run) and takes the
stock they held out of it, refusing if anything happened to them here since the export.

The document wraps flowlib's flow export (`flows`, fingerprinted per instance) and adds,
for every order those flows belong to, its `order:` stream, the webhook streams parked for
it, and the catalog entries of its SKUs. Importing writes everything in one transaction:
products missing in the target are added, the stock an order still holds arrives with it
(a `Restocked` "moved in with order X", less a `StockRemoved` for what the order released),
so stock is conserved in the target too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Literal

import msgspec

from commerce import readmodel
from commerce.events import (
    AnyCommerceEvent,
    OrderMovedOut,
    ProductAdded,
    Restocked,
    StockReleased,
    StockRemoved,
    StockReserved,
)
from commerce.flows import LATE_PAYMENT_FLOW, ORDER_FLOW, REVIEW_REFUND_FLOW
from commerce.handlers import order_stream
from commerce.money import Money, format_money
from commerce.review import held_stock
from flowlib import (
    Engine,
    FlowDocument,
    FlowStarted,
    ImportRejected,
    ImportReport,
    RetireRefused,
)
from ledger import Ledger

FORMAT: Literal["orderflow.shop"] = "orderflow.shop"
FORMAT_VERSION = 1
_encode = msgspec.json.Encoder().encode


class StreamCopy(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger stream's commerce events, in order."""

    stream: str
    events: list[AnyCommerceEvent]


class ShopDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A versioned export of orders with their flows."""

    format: Literal["orderflow.shop"] = FORMAT
    format_version: int = FORMAT_VERSION
    fingerprint: str
    products: list[ProductAdded]
    streams: list[StreamCopy]
    flows: msgspec.Raw


class _Header(msgspec.Struct):
    format: str = ""
    format_version: int = 0


def _fingerprint(products: list[ProductAdded], streams: list[StreamCopy]) -> str:
    return hashlib.sha256(_encode([products, streams])).hexdigest()


def export_shop(ledger: Ledger, engine: Engine, *, status: str | None = None) -> bytes:
    """The flows with `status` (default all) and the orders, stock and parked events they need."""
    flow_ids = [row.flow_id for row in engine.flows(status)]
    order_ids = sorted({o for flow_id in flow_ids if (o := order_of(engine, flow_id)) is not None})
    streams = [
        StreamCopy(stream=s, events=ledger.read(s, AnyCommerceEvent))
        for s in _streams(ledger, order_ids)
    ]
    skus = sorted(
        {
            line.sku
            for copy in streams
            for e in copy.events
            if isinstance(e, StockReserved)
            for line in e.lines
        }
    )
    products = [_product(ledger, sku) for sku in skus]
    document = ShopDocument(
        fingerprint=_fingerprint(products, streams),
        products=products,
        streams=streams,
        flows=msgspec.Raw(engine.export(flow_ids=flow_ids)),
    )
    return _encode(document)


def order_of(engine: Engine, flow_id: str) -> str | None:
    """The order a flow belongs to (an order's own, a late payment's, a review refund's)."""
    started = engine.log(flow_id)[0]
    if not isinstance(started, FlowStarted):
        return None
    if started.name == ORDER_FLOW:
        return flow_id
    if started.name in (LATE_PAYMENT_FLOW, REVIEW_REFUND_FLOW):
        return str(msgspec.json.decode(started.args)[0])
    return None


def _streams(ledger: Ledger, order_ids: list[str]) -> list[str]:
    streams = [order_stream(order_id) for order_id in order_ids]
    for order_id in order_ids:
        parked = readmodel.parked_on_orders_intents(ledger, order_id)
        streams.extend(f"webhook:{event_id}" for event_id in parked)
    return streams


def _product(ledger: Ledger, sku: str) -> ProductAdded:
    (added,) = ledger.read(f"sku:{sku}", AnyCommerceEvent)[:1]
    if not isinstance(added, ProductAdded):
        raise ImportRejected(f"stream sku:{sku} does not begin with ProductAdded")
    return added


def decode_shop_document(data: bytes) -> ShopDocument:
    """Parse and check a shop export; `ImportRejected` says what is wrong."""
    try:
        header = msgspec.json.decode(data, type=_Header)
        if header.format != FORMAT or header.format_version != FORMAT_VERSION:
            raise ImportRejected(
                f"expected {FORMAT} version {FORMAT_VERSION}, got {header.format!r} "
                f"version {header.format_version}"
            )
        document = msgspec.json.decode(data, type=ShopDocument)
    except msgspec.DecodeError as exc:
        raise ImportRejected(f"not a valid shop export ({exc})") from None
    if _fingerprint(document.products, document.streams) != document.fingerprint:
        raise ImportRejected("the orders' events do not match their fingerprint (damaged)")
    return document


def import_shop(ledger: Ledger, engine: Engine, data: bytes) -> ImportReport:
    """Import a shop export: all of it in one transaction, or nothing."""
    document = decode_shop_document(data)
    with ledger.transaction():
        for product in document.products:
            _ensure_product(ledger, product)
        for copy in document.streams:
            if _is_new(ledger, copy):
                _copy_with_stock(ledger, copy)
        return engine.import_(bytes(document.flows))


def _ensure_product(ledger: Ledger, product: ProductAdded) -> None:
    existing = ledger.read(f"sku:{product.sku}", AnyCommerceEvent)[:1]
    if not existing:
        ledger.append(f"sku:{product.sku}", [product], expected_version=0)
    elif existing[0] != product:
        raise ImportRejected(
            f"product {product.sku} differs here: {_differences(existing[0], product)}"
        )


def _differences(here: ProductAdded, theirs: ProductAdded) -> str:
    """ "name 'Mug' here, 'Big mug' in the document; ..." for each field that differs."""
    parts = []
    for field in ("name", "unit_price", "currency"):
        mine, other = _shown(here, field), _shown(theirs, field)
        if mine != other:
            parts.append(f"{field.replace('_', ' ')} {mine} here, {other} in the document")
    return "; ".join(parts)


def _shown(product: ProductAdded, field: str) -> str:
    if field == "unit_price":
        return format_money(Money(product.unit_price, product.currency))
    return repr(getattr(product, field))


def _is_new(ledger: Ledger, copy: StreamCopy) -> bool:
    """True if the stream is not here yet; False if it is here, identical; else rejected."""
    existing = ledger.read(copy.stream, AnyCommerceEvent)
    if not existing:
        return True
    if _encode(existing) != _encode(copy.events):
        raise ImportRejected(f"stream {copy.stream} exists here with different events")
    return False


def _stock_moves(copy: StreamCopy) -> tuple[Counter[str], Counter[str]]:
    """Per SKU, the units the copied order reserved, and those it released again."""
    reserved: Counter[str] = Counter()
    released: Counter[str] = Counter()
    for event in copy.events:
        if isinstance(event, StockReserved):
            reserved.update({line.sku: line.quantity for line in event.lines})
        elif isinstance(event, StockReleased):
            released.update({line.sku: line.quantity for line in event.lines})
    return reserved, released


def _copy_with_stock(ledger: Ledger, copy: StreamCopy) -> None:
    """Append the copied order's events, bringing exactly the stock it still holds.

    Everything it ever reserved arrives first (so its reservations replay), and what it
    released again leaves after it: the target gains only what the order holds or sold.
    """
    order = copy.stream.removeprefix("order:")
    reserved, released = _stock_moves(copy)
    for sku, quantity in sorted(reserved.items()):
        moved_in = Restocked(sku=sku, quantity=quantity, reason=f"moved in with order {order}")
        ledger.append(f"sku:{sku}", [moved_in])
    ledger.append(copy.stream, copy.events, expected_version=0)
    for sku, quantity in sorted(released.items()):
        removed = StockRemoved(sku=sku, quantity=quantity, reason=f"released by order {order}")
        ledger.append(f"sku:{sku}", [removed])


class _DryRun(Exception):
    """Ends a dry run's transaction (rolled back) with what it would have retired."""

    def __init__(self, retired: list[str]) -> None:
        super().__init__("dry run")
        self.retired = retired


def retire_shop(
    ledger: Ledger,
    engine: Engine,
    data: bytes,
    *,
    reason: str,
    receipt: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> list[str]:
    """The last step of a move: retire here the flows a document carried; the ids retired.

    All in one transaction. It needs the `receipt` of the import elsewhere, or `force`.
    An order whose events changed here since the export is refused (`RetireRefused`), as
    is a flow whose log did. Every order with a moved flow is marked moved, once: repeating
    a retirement changes nothing. `dry_run` does all the checks and writes nothing.
    """
    document = decode_shop_document(data)
    if receipt is None and not force:
        raise RetireRefused(
            "the document", "give the receipt its import printed (proof it arrived), or force it"
        )
    copies = {copy.stream: copy for copy in document.streams if copy.stream.startswith("order:")}
    try:
        with ledger.transaction():
            for copy in copies.values():
                _check_unchanged(ledger, copy)
            flows = bytes(document.flows)
            retired = engine.retire_moved(flows, reason=reason, receipt=receipt)
            for order_id in _moved_orders(engine, flows):
                _move_order(ledger, copies.get(order_stream(order_id)), order_id, reason)
            if dry_run:
                raise _DryRun(retired)
    except _DryRun as done:
        return done.retired
    return retired


def _moved_orders(engine: Engine, flows: bytes) -> list[str]:
    """The orders of the document's flows that ended here as moved."""
    ids = [flow.flow_id for flow in msgspec.json.decode(flows, type=FlowDocument).flows]
    moved = {order_of(engine, i) for i in ids if engine.status(i).status == "moved"}
    return sorted(order_id for order_id in moved if order_id is not None)


def _move_order(ledger: Ledger, copy: StreamCopy | None, order_id: str, reason: str) -> None:
    here = ledger.read(order_stream(order_id), AnyCommerceEvent)
    if copy is None or (here and isinstance(here[-1], OrderMovedOut)):
        return  # not carried by the document, or moved before
    event = OrderMovedOut(order_id=order_id, lines=held_stock(copy.events), reason=reason)
    ledger.append(copy.stream, [event], expected_version=len(here))


def _check_unchanged(ledger: Ledger, copy: StreamCopy) -> None:
    here = ledger.read(copy.stream, AnyCommerceEvent)
    order = copy.stream.removeprefix("order:")
    if not here:
        raise RetireRefused(order, "it is not in this ledger: the document was exported elsewhere")
    if isinstance(here[-1], OrderMovedOut):
        here = here[:-1]  # retired before: the same check, and no change
    if _encode(here) != _encode(copy.events):
        raise RetireRefused(order, "its order changed here since the export")
