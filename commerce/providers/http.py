"""The HTTP plumbing provider clients share: one stdlib connection per call, typed failures.

A connection per call keeps a client safe from any number of threads and leaves nothing
half-read after a timeout. What cannot reach the provider, or comes back unreadable, is
`ProviderUnavailable` (retryable); mapping an answer's status is each provider's own.
"""

from __future__ import annotations

import http.client
from typing import TypeVar
from urllib.parse import urlsplit

import msgspec

from commerce.errors import ProviderUnavailable

T = TypeVar("T")


class Answer(msgspec.Struct, frozen=True):
    """A provider's answer: the status, its headers (names lower-cased) and the raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


class Endpoint:
    """An http(s) base address and a timeout; `who` names the provider in messages."""

    def __init__(self, base_url: str, *, timeout: float, who: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) address, got {base_url!r}")
        self._secure = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout, self.who = timeout, who

    def request(
        self, method: str, path: str, *, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        """Send one request; `ProviderUnavailable` if the provider cannot be reached."""
        try:
            return self._send(method, self._prefix + path, body, headers)
        except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors
            raise ProviderUnavailable(f"{self.who} unreachable: {exc!r}", code="network") from exc

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        cls = http.client.HTTPSConnection if self._secure else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            names = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, names, response.read())
        finally:
            conn.close()


def decode(raw: bytes, shape: type[T], who: str) -> T:
    """`raw` as `shape`, or `ProviderUnavailable` if it is unreadable.

    A proxy's error page or a cut-off body is worth another try later, so it is retryable.
    """
    try:
        return msgspec.json.decode(raw, type=shape)
    except msgspec.DecodeError as exc:  # also ValidationError: a wrong shape
        raise unreadable(who, exc) from exc


def unreadable(who: str, exc: Exception) -> ProviderUnavailable:
    """The error for an answer that is not what the provider documents."""
    return ProviderUnavailable(f"{who}'s answer is unreadable: {exc}", code="bad_answer")
