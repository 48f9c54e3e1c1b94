"""The shape of the code: dependencies point one way, and each package has one public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flowlib", "ledger", "commerce", "cli")
# What each package may import from the others: cli -> commerce -> {flowlib, ledger}.
ALLOWED = {
    "flowlib": set(),
    "ledger": set(),
    "commerce": {"flowlib", "ledger"},
    "cli": {"commerce", "flowlib", "ledger"},
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
