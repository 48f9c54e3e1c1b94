"""Your own flows in the CLI: import the modules that register them with `@flow`.

A flow module is named with `--flows MODULE` (or `$ORDERFLOW_FLOWS`), or installed as an
`orderflow.flows` entry point. Importing it registers its flows; an optional `HANDLERS`
mapping (request type -> handler) in it services its requests. The worker reuses this.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import typer

from flowlib import Effect, Handler, Request

ENTRY_POINTS = "orderflow.flows"
FLOWS_ENV = "ORDERFLOW_FLOWS"
Handlers = dict[type[Request[Any]], Handler | Effect]


class FlowModuleError(Exception):
    """A flow module that was found but failed to import (a bug in it, not a usage error)."""


def load(names: Iterable[str], *, entry_point_group: str = ENTRY_POINTS) -> Handlers:
    """Import every named module and every installed entry point; their `HANDLERS`, merged."""
    handlers: Handlers = {}
    for module in [*(_named(name) for name in names), *_installed(entry_point_group)]:
        _merge(handlers, module)
    return handlers


def _named(name: str) -> ModuleType:
    """A module by dotted name (the working directory is on the path) or by `.py` path."""
    if name.endswith(".py"):
        return _from_file(Path(name))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules beside you are found
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise typer.BadParameter(f"no module named {name!r}", param_hint="--flows") from exc
        raise FlowModuleError(f"flow module {name}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise FlowModuleError(f"flow module {name}: {type(exc).__name__}: {exc}") from exc


def _from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise typer.BadParameter(f"no such file {str(path)!r}", param_hint="--flows")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise typer.BadParameter(f"cannot import {str(path)!r}", param_hint="--flows")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise FlowModuleError(f"flow module {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _installed(group: str) -> list[ModuleType]:
    modules = []
    for point in entry_points(group=group):
        try:
            loaded = point.load()
        except Exception as exc:
            raise FlowModuleError(
                f"entry point {group}:{point.name} ({point.value}): {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(loaded, ModuleType):
            modules.append(loaded)
    return modules


def _merge(handlers: Handlers, module: ModuleType) -> None:
    given: Mapping[type[Request[Any]], Handler | Effect] = getattr(module, "HANDLERS", {})
    for request, handler in given.items():
        if handlers.get(request, handler) is not handler:
            raise FlowModuleError(
                f"flow module {module.__name__}: a second handler for {request.__name__}"
            )
        handlers[request] = handler


def install(engine_handlers: dict[type[Request[Any]], Handler | Effect], extra: Handlers) -> None:
    """Add the modules' handlers to an engine's map; the shop's own requests stay the shop's."""
    for request, handler in extra.items():
        if request in engine_handlers:
            raise FlowModuleError(f"{request.__name__} is the shop's request: it has a handler")
        engine_handlers[request] = handler
