"""Live flow instances kept between steps, so a step need not replay the flow's log.

Correctness never depends on the cache: an instance is used again only if its stream is
still at the version it left it at and its flow's code is still the one registered;
anything else (a restart, another process or engine moved the flow, a deploy) replays
from the log. An instance is taken out while a step uses it, so no two threads ever
resume one generator, and it goes back only once the step's transaction has committed;
a rollback discards it. The cache holds at most `size` instances (least recently used
leave first), so memory stays flat however many flows are suspended.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from flowlib.errors import UnknownFlow
from flowlib.flow import Registry
from flowlib.replay import Instance

DEFAULT_SIZE = 1024


class InstanceCache:
    """An LRU of live instances by flow id; thread-safe."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._live: OrderedDict[str, Instance] = OrderedDict()  # first: `__del__` reads it
        self._lock = threading.Lock()
        if size < 0:
            raise ValueError(f"the cache size must be >= 0, not {size}")
        self.size = size

    def __len__(self) -> int:
        return len(self._live)

    def take(self, flow_id: str, version: Callable[[], int], registry: Registry) -> Instance | None:
        """The flow's instance, removed from the cache, if it is current; else None.

        Current: it left its stream at `version()` (asked only if there is an instance to
        check) and its definition is still the registered one.
        """
        with self._lock:
            inst = self._live.pop(flow_id, None)
        if inst is None:
            return None
        definition = inst.definition
        try:
            registered = registry.get(definition.name, definition.version)
        except UnknownFlow:
            registered = None
        if registered is not definition or inst.version != version():
            inst.discard()
            return None
        return inst

    def put(self, inst: Instance) -> None:
        """Keep a suspended instance for its next step (a finished one is discarded)."""
        if inst.ended is not None or not self.size:
            inst.discard()
            return
        with self._lock:
            replaced = self._live.pop(inst.flow_id, None)
            self._live[inst.flow_id] = inst
            evicted = [self._live.popitem(last=False)[1] for _ in range(len(self) - self.size)]
        for old in (replaced, *evicted):
            if old is not None and old is not inst:
                old.discard()

    def __del__(self) -> None:
        # Closed by the garbage collector instead, a flow that yields in `finally` would
        # report "generator ignored GeneratorExit": close each one as `discard` does.
        for inst in self._live.values():
            inst.discard()

    def clear(self) -> None:
        """Discard every instance (e.g. before closing the store)."""
        with self._lock:
            live, self._live = list(self._live.values()), OrderedDict()
        for inst in live:
            inst.discard()
