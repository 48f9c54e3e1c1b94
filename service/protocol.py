"""uvicorn's h11 protocol with a deadline for a request's headers (slow-loris).

uvicorn bounds neither the wait for a new connection's first request nor a request whose
headers trickle in (its keep-alive timer is cancelled by the first byte), and the ASGI app
only sees a request once its headers are complete, so its read timeout covers the body
alone. This protocol closes a connection whose request headers are not complete within
`header_timeout` seconds of the connection opening, or of the previous answer on a
kept-alive connection. Nothing reaches the app, so nothing is recorded or answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.logs import line


class HeaderDeadline(H11Protocol):
    """h11 that cuts off a client slow to send its headers; `within(s)` makes one for uvicorn.

    Pass it as `uvicorn.run(app, http=HeaderDeadline.within(10.0))` (or `uvicorn.Config`).
    """

    header_timeout: ClassVar[float] = 10.0
    cut_off_hooks: ClassVar[tuple[Callable[[], None], ...]] = ()  # run for each cut-off

    @classmethod
    def within(
        cls, seconds: float, on_cut_off: Callable[[], None] | None = None
    ) -> type[HeaderDeadline]:
        """This protocol with a deadline of `seconds` (uvicorn takes a class, not an instance).

        `on_cut_off` is called (on the event loop) for each connection it closes.
        """

        class Bounded(cls):  # type: ignore[valid-type,misc]
            header_timeout = seconds
            cut_off_hooks = (on_cut_off,) if on_cut_off else ()

        return Bounded

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        # The request the deadline was armed after: a new `cycle` means new headers arrived.
        self._armed_after: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self._deadline is not None and self.cycle is not self._armed_after:
            self._disarm()  # the request's headers are complete: the app's timeout takes over

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the connection belongs to the WebSocket protocol from here on
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        # Armed before uvicorn handles a pipelined request that may already be buffered,
        # so that its `handle_events` disarms it when those headers are complete.
        if not self.transport.is_closing():
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._armed_after = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        line(event="cut_off", client=client, why="headers too slow", seconds=self.header_timeout)
        self.transport.close()
        for hook in self.cut_off_hooks:
            hook()
