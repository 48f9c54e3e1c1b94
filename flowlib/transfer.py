"""Moving flows between stores as one plain-data document, and the upgrade gate.

The document is msgspec JSON: a format name and version, then per instance its id, its
log exactly as stored, and a SHA-256 fingerprint of that log, so damage in transit is
detected before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import msgspec

from flowlib.errors import FlowError, ImportRejected, NondeterminismError
from flowlib.flow import Registry
from flowlib.log import FINISHED, AnyFlowEvent, FlowStarted, stream_of
from flowlib.replay import replay
from flowlib.store import Store

FORMAT: Literal["orderflow.flows"] = "orderflow.flows"
FORMAT_VERSION = 1
_encode = msgspec.json.Encoder().encode


class ExportedFlow(msgspec.Struct, frozen=True, kw_only=True):
    """One instance in an export document."""

    flow_id: str
    fingerprint: str
    events: list[AnyFlowEvent]


class FlowDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A versioned export of flow instances."""

    format: Literal["orderflow.flows"] = FORMAT
    format_version: int = FORMAT_VERSION
    flows: list[ExportedFlow] = []


class _Header(msgspec.Struct):
    format: str = ""
    format_version: int = 0


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an import wrote: new instances, and ones already there with the same log.

    `receipt` proves the document was imported: the source's retire takes it.
    """

    imported: list[str]
    unchanged: list[str]
    receipt: str = ""


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """An unfinished instance whose log no longer replays against the registered code."""

    flow_id: str
    step: int | None
    logged: str
    yielded: str
    error: str


def encode_log(events: list[AnyFlowEvent]) -> bytes:
    """A log's exact JSON, as an export carries it."""
    return _encode(events)


def fingerprint(events: list[AnyFlowEvent]) -> str:
    """SHA-256 over the log's exact JSON."""
    return hashlib.sha256(encode_log(events)).hexdigest()


def receipt(document: FlowDocument) -> str:
    """The receipt an import of `document` reports (derived from its flows' fingerprints)."""
    digest = hashlib.sha256(b"orderflow import receipt\n")
    for flow in document.flows:
        digest.update(f"{flow.flow_id}\0{flow.fingerprint}\n".encode())
    return "rcpt_" + digest.hexdigest()[:32]


def export_flows(store: Store, flow_ids: Iterable[str]) -> bytes:
    """The document holding the logs of `flow_ids` (in the order given)."""
    flows = []
    for flow_id in flow_ids:
        events = store.read(stream_of(flow_id), AnyFlowEvent)
        flows.append(ExportedFlow(flow_id=flow_id, fingerprint=fingerprint(events), events=events))
    return _encode(FlowDocument(flows=flows))


def decode_document(data: bytes) -> FlowDocument:
    """Parse and check an export document; `ImportRejected` says what is wrong."""
    try:
        header = msgspec.json.decode(data, type=_Header)
    except msgspec.DecodeError as exc:
        raise ImportRejected(f"not an orderflow export document ({exc})") from None
    if header.format != FORMAT:
        raise ImportRejected(f"format is {header.format!r}, expected {FORMAT!r}")
    if header.format_version != FORMAT_VERSION:
        raise ImportRejected(
            f"format version {header.format_version} is not supported "
            f"(this code reads {FORMAT_VERSION})"
        )
    try:
        document = msgspec.json.decode(data, type=FlowDocument)
    except msgspec.DecodeError as exc:
        raise ImportRejected(f"malformed document: {exc}") from None
    for flow in document.flows:
        _check_flow(flow)
    return document


def _check_flow(flow: ExportedFlow) -> None:
    if fingerprint(flow.events) != flow.fingerprint:
        raise ImportRejected("fingerprint does not match its log (damaged)", flow.flow_id)
    head = flow.events[0] if flow.events else None
    if not isinstance(head, FlowStarted) or head.flow_id != flow.flow_id:
        raise ImportRejected("log does not begin with this flow's FlowStarted", flow.flow_id)


def import_flows(store: Store, registry: Registry, data: bytes) -> ImportReport:
    """Check the document, dry-run every log against the code, then write all in one transaction."""
    document = decode_document(data)
    for flow in document.flows:
        _dry_run(flow, registry)
    imported, unchanged = [], []
    with store.transaction():
        for flow in document.flows:
            stream = stream_of(flow.flow_id)
            existing = store.read(stream, AnyFlowEvent)
            if not existing:
                store.append(stream, flow.events, expected_version=0)
                imported.append(flow.flow_id)
            elif _encode(existing) == _encode(flow.events):
                unchanged.append(flow.flow_id)
            else:
                raise ImportRejected(
                    "an instance with this id and a different log exists", flow.flow_id
                )
    return ImportReport(imported=imported, unchanged=unchanged, receipt=receipt(document))


def _dry_run(flow: ExportedFlow, registry: Registry) -> None:
    try:
        replay(flow.flow_id, flow.events, registry).discard()
    except FlowError as exc:
        raise ImportRejected(
            f"does not replay against the registered code: {exc}", flow.flow_id
        ) from None


def check_replay(store: Store, registry: Registry, flow_ids: Iterable[str]) -> list[Divergence]:
    """Replay each unfinished instance against the registered code; writes nothing."""
    found = []
    for flow_id in flow_ids:
        events = store.read(stream_of(flow_id), AnyFlowEvent)
        try:
            inst = replay(flow_id, events, registry, check_finished=True)
        except NondeterminismError as exc:
            found.append(
                Divergence(
                    flow_id=flow_id,
                    step=exc.step,
                    logged=exc.logged,
                    yielded=exc.yielded,
                    error=str(exc),
                )
            )
            continue
        except FlowError as exc:
            found.append(
                Divergence(flow_id=flow_id, step=None, logged="", yielded="", error=str(exc))
            )
            continue
        inst.discard()
    return found


def unfinished(store: Store) -> list[str]:
    """Ids of every instance that has not finished, per the store's index."""
    return [row.flow_id for row in store.flows() if row.status not in FINISHED]
