"""The public surface of flowlib and its import discipline."""

from __future__ import annotations

import ast
import pickle
import sys
from pathlib import Path

import pytest

import flowlib
from flowlib import (
    Cancelled,
    FlowError,
    FlowNotFound,
    ImportRejected,
    NondeterminismError,
    StepFailed,
    UnknownFlow,
    WrongResponse,
)

FLOWLIB = Path(flowlib.__file__).parent
FORBIDDEN = {"sqlite3", "sqlite_utils", "time", "random", "uuid", "ledger", "commerce", "cli"}

EXPORTED = [
    "FINISHED",
    "REGISTRY",
    "AnyFlowEvent",
    "Cancelled",
    "CancelledBy",
    "ClaimingStore",
    "Clock",
    "Divergence",
    "Effect",
    "Engine",
    "Failed",
    "Fired",
    "FirstOf",
    "Flow",
    "FlowDefinition",
    "FlowDocument",
    "FlowEnded",
    "FlowError",
    "FlowNotFound",
    "FlowRecovered",
    "FlowStarted",
    "FlowState",
    "FlowStuck",
    "FlowSummary",
    "Handler",
    "ImportRejected",
    "ImportReport",
    "MemoryStore",
    "NewId",
    "NondeterminismError",
    "Now",
    "Ok",
    "Registry",
    "Request",
    "Resumption",
    "RetireRefused",
    "RetryPolicy",
    "StepAnswered",
    "StepContext",
    "StepDone",
    "StepFailed",
    "StepPending",
    "Store",
    "Timer",
    "UnknownFlow",
    "VersionConflict",
    "Won",
    "WrongResponse",
    "advance",
    "effect",
    "encode_log",
    "first_of",
    "flow",
    "response_type",
    "stream_of",
    "tag_of",
    "utc_now",
]


def test_exported_members_are_pinned() -> None:
    """Other packages code against these names: adding one is a decision, removing one breaks."""
    assert flowlib.__all__ == EXPORTED
    assert flowlib.__all__ == sorted(flowlib.__all__, key=lambda n: (not n.isupper(), n))
    for name in flowlib.__all__:
        assert hasattr(flowlib, name), name


def test_package_docstring_is_short() -> None:
    assert flowlib.__doc__ and len(flowlib.__doc__.strip().splitlines()) <= 4


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(FLOWLIB.glob("*.py")), ids=lambda p: p.name)
def test_flowlib_is_pure(path: Path) -> None:
    """No database, clock, randomness or back-edge to the packages that build on flowlib."""
    for module in imported_modules(path):
        top = module.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {module}"
        assert top in sys.stdlib_module_names or top in {"msgspec", "flowlib"}, (
            f"{path.name} imports {module}: flowlib may use only the stdlib and msgspec"
        )


def test_the_import_walker_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import time\nimport os.path as p\nfrom ledger.sqlite import X\nfrom . import y\n"
    )
    assert imported_modules(sample) == {"time", "os.path", "ledger.sqlite"}


def test_error_tree() -> None:
    for error in (
        FlowNotFound,
        UnknownFlow,
        NondeterminismError,
        WrongResponse,
        ImportRejected,
        StepFailed,
    ):
        assert issubclass(error, FlowError)
    assert issubclass(Cancelled, StepFailed) and issubclass(FlowError, Exception)


def test_errors_carry_fields_and_build_their_message() -> None:
    assert str(FlowNotFound("x")) == "no flow with id 'x'"
    assert str(WrongResponse("f", "int", "str")) == "flow 'f' expects a int response, got str"
    assert str(ImportRejected("damaged", "f")) == "import rejected (flow 'f'): damaged"
    assert str(ImportRejected("bad")) == "import rejected: bad"
    assert str(StepFailed("declined")) == "declined"
    assert str(StepFailed("declined", "no funds")) == "declined: no funds"
    cancelled = Cancelled("customer")
    assert (cancelled.kind, cancelled.message, cancelled.retryable) == (
        "cancelled",
        "customer",
        False,
    )


@pytest.mark.parametrize(
    "error", [StepFailed("k", "m", retryable=True), Cancelled("why")], ids=["failed", "cancelled"]
)
def test_step_failures_pickle(error: StepFailed) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.kind, copy.message, copy.retryable) == (error.kind, error.message, error.retryable)
