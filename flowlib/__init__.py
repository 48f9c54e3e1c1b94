"""Durable generator flows: a flow yields requests, the engine services or awaits them.

Every step is logged to a `Store`; an instance is rebuilt by replaying its log.
Pure orchestration: no database, no clock, no randomness in here.
"""

from flowlib.driver import (
    Clock,
    Effect,
    Engine,
    Fired,
    FlowState,
    Handler,
    Resumption,
    StepContext,
    effect,
    utc_now,
)
from flowlib.errors import (
    Cancelled,
    FlowError,
    FlowNotFound,
    ImportRejected,
    NondeterminismError,
    StepFailed,
    UnknownFlow,
    WrongResponse,
)
from flowlib.flow import REGISTRY, Flow, FlowDefinition, Registry, flow
from flowlib.log import FINISHED, AnyFlowEvent, FlowStarted, FlowSummary, advance, stream_of
from flowlib.requests import (
    FirstOf,
    NewId,
    Now,
    Request,
    RetryPolicy,
    Timer,
    Won,
    first_of,
    response_type,
    tag_of,
)
from flowlib.store import MemoryStore, Store, VersionConflict
from flowlib.transfer import Divergence, FlowDocument, ImportReport

__all__ = [
    "FINISHED",
    "REGISTRY",
    "AnyFlowEvent",
    "Cancelled",
    "Clock",
    "Divergence",
    "Effect",
    "Engine",
    "Fired",
    "FirstOf",
    "Flow",
    "FlowDefinition",
    "FlowDocument",
    "FlowError",
    "FlowNotFound",
    "FlowStarted",
    "FlowState",
    "FlowSummary",
    "Handler",
    "ImportRejected",
    "ImportReport",
    "MemoryStore",
    "NewId",
    "NondeterminismError",
    "Now",
    "Registry",
    "Request",
    "Resumption",
    "RetryPolicy",
    "StepContext",
    "StepFailed",
    "Store",
    "Timer",
    "UnknownFlow",
    "VersionConflict",
    "Won",
    "WrongResponse",
    "advance",
    "effect",
    "first_of",
    "flow",
    "response_type",
    "stream_of",
    "tag_of",
    "utc_now",
]
