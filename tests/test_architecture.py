"""The shape of the code: dependencies point one way, and each package has one public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flowlib", "ledger", "commerce", "service", "cli")
# What each package may import from the others: cli -> service -> commerce -> {flowlib, ledger}.
ALLOWED = {
    "flowlib": set(),
    "ledger": set(),
    "commerce": {"flowlib", "ledger"},
    "service": {"commerce", "flowlib", "ledger"},
    "cli": {"service", "commerce", "flowlib", "ledger"},
}
# IO that flowlib must never reach for: it is pure orchestration.
FLOWLIB_FORBIDDEN = {"sqlite3", "sqlite_utils", "time", "random", "uuid", "os", "socket"}


def imported_modules(package: str) -> dict[str, set[str]]:
    """Top-level module names imported by each file of `package`."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    others = set(PACKAGES) - {package}
    for path, names in imported_modules(package).items():
        wrong = (names & others) - ALLOWED[package]
        assert not wrong, (
            f"{path} imports {sorted(wrong)}: {package} may only use {ALLOWED[package]}"
        )


def test_flowlib_does_no_io() -> None:
    for path, names in imported_modules("flowlib").items():
        assert not names & FLOWLIB_FORBIDDEN, f"{path} imports {sorted(names & FLOWLIB_FORBIDDEN)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_public_api_is_sorted_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    if package != "cli":
        assert exported, f"{package}/__init__.py exports nothing"
    assert len(set(exported)) == len(exported), f"{package}.__all__ repeats a name"
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it does not define"
    assert (module.__doc__ or "").strip(), f"{package}/__init__.py has no docstring"


def test_other_packages_import_only_public_names() -> None:
    """`from ledger import X` must name something in ledger.__all__ (same for each package)."""
    public = {p: set(getattr(importlib.import_module(p), "__all__", [])) for p in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                    continue
                top = node.module.split(".")[0]
                if top in public and top != package:
                    assert node.module == top, (
                        f"{path.relative_to(ROOT)} imports from {node.module}: "
                        f"use the package's public API (from {top} import ...)"
                    )
                    for alias in node.names:
                        assert alias.name in public[top], (
                            f"{path.relative_to(ROOT)} imports {alias.name} from "
                            f"{node.module}, which does not export it"
                        )


# Every place the project opens, reads, writes or removes a file itself, and why it can never
# be a ledger, its `-wal` or its `-shm`. Closing any descriptor of the database file drops every
# POSIX lock this process holds on it (SQLite's "How To Corrupt", 2.2): another process then
# deletes the WAL under us and acknowledged writes are lost. So only SQLite touches those files.
FILE_ACCESS_ALLOWED = {
    ("ledger/sqlite.py", "WriteLock.__init__"): "the `<ledger>.lock` sidecar, never SQLite's",
    ("cli/runtime.py", "read_input"): "a webhook body or import document the user names",
    ("cli/webhook.py", "read_delivery"): "a webhook body the user names (cap + 1 bytes)",
    ("cli/flows.py", "export"): "the export document the user names (--out)",
    ("cli/demo.py", "run"): "the demo's own export document",
    ("cli/command.py", "_silence_stdout"): "/dev/null onto stdout, once the reader went away",
    ("bench/restart_worker.py", "peak_rss_mb"): "/proc/self/status",
    ("bench/ledger_bench.py", "raw_writer"): "the plain-SQLite baseline's own file, before use",
    ("bench/service_bench.py", "_serve"): "the served process's log, in the bench's temp folder",
    ("bench/proc_stat.py", "_stat"): "/proc/<pid>/stat of a measured process",
    ("bench/callgrind_objects.py", "self_cost_by_object"): "a callgrind output file named to it",
}
_FILE_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "unlink", "fdopen"}
_OS_FILE_CALLS = {"remove", "rename", "replace", "truncate", "rmtree", "mmap"}  # os./shutil./mmap.
_OUR_OPENERS = {"Ledger", "Shop", "cls", "super"}  # Ledger.open(...) and friends go through SQLite


def file_access_sites() -> dict[tuple[str, str], int]:
    """(file, enclosing function) -> count of calls that could open or alter a file."""
    sites: dict[tuple[str, str], int] = {}
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for scope, node in _calls(tree, ""):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                owner = func.value if isinstance(func, ast.Attribute) else None
                os_call = isinstance(owner, ast.Name) and owner.id in {"os", "shutil", "mmap"}
                if name not in _FILE_CALLS and not (os_call and name in _OS_FILE_CALLS):
                    continue
                if isinstance(owner, ast.Name) and owner.id in _OUR_OPENERS:
                    continue
                key = (str(path.relative_to(ROOT)), scope)
                sites[key] = sites.get(key, 0) + 1
    return sites


def _calls(node: ast.AST, scope: str) -> list[tuple[str, ast.Call]]:
    found: list[tuple[str, ast.Call]] = []
    for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            inner = f"{scope}.{child.name}" if scope else child.name
        if isinstance(child, ast.Call):
            found.append((scope, child))
        found.extend(_calls(child, inner))
    return found


def test_only_sqlite_opens_the_database_file() -> None:
    sites = file_access_sites()
    unexplained = sorted(set(sites) - set(FILE_ACCESS_ALLOWED))
    assert not unexplained, (
        f"file access outside SQLite at {unexplained}: if it can never be a ledger, its -wal "
        "or -shm, add it to FILE_ACCESS_ALLOWED with the reason"
    )
    stale = sorted(set(FILE_ACCESS_ALLOWED) - set(sites))
    assert not stale, f"FILE_ACCESS_ALLOWED lists sites that no longer exist: {stale}"


def test_the_file_access_check_sees_a_header_sniff() -> None:
    """The check above would have caught the `check_header` that lost acknowledged writes."""
    tree = ast.parse(
        "def check_header(path):\n    with path.open('rb') as f:\n        return f.read(16)\n"
    )
    assert [scope for scope, call in _calls(tree, "") if getattr(call.func, "attr", "") == "open"]
