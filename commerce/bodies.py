"""Strict webhook bodies: one check every provider decoder runs first.

The typed decoders read a few fields and skip the rest without looking closely, so an
authentic body could carry invalid UTF-8 in a field nobody reads (which then fails the
ledger write), nest deep enough to exhaust the decoder's recursion, or repeat a key
(`"id"` twice: which one is the event?). `check_body` refuses all of these up front as
`MalformedEvent`, I-JSON style (RFC 7493): the whole body is UTF-8 without lone
surrogates, at most `MAX_JSON_DEPTH` deep, finite numbers, and no object repeats a key.

It costs about as much as one more decode: the depth is counted on the text outside
strings, and duplicates are found by comparing the number of `:` separators outside
strings (one per member) with the number of keys the decoded objects kept.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import msgspec

from commerce.errors import BodyTooLarge, MalformedEvent
from commerce.limits import MAX_BODY, MAX_JSON_DEPTH

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def check_size(body: bytes) -> None:
    """Refuse a body over `MAX_BODY` bytes (`BodyTooLarge`): before hashing or parsing it."""
    if len(body) > MAX_BODY:
        raise BodyTooLarge(len(body), MAX_BODY)


def check_body(body: bytes) -> None:
    """Refuse a body that is too large (`BodyTooLarge`) or not strict JSON (`MalformedEvent`)."""
    check_size(body)
    data = bytes(body)
    _check_utf8(data)
    outside = _outside_strings(data)
    _check_depth(outside)
    try:
        tree = msgspec.json.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedEvent(f"invalid JSON: {exc}") from exc
    if _members(tree) != outside.count(b":"):
        raise MalformedEvent(_duplicate(data))


def _check_utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"invalid UTF-8 at byte {exc.start}") from None


def _outside_strings(data: bytes) -> bytes:
    """The text between JSON strings (where every bracket and colon is structure)."""
    if b'\\"' not in data:  # no escaped quote: every quote opens or closes a string
        return b"".join(data.split(b'"')[::2])
    return _STRING.sub(b"", data)


def _check_depth(outside: bytes) -> None:
    brackets = outside.translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_JSON_DEPTH:
        return
    depth = max(accumulate(map(_STEP.__getitem__, brackets)))
    if depth > MAX_JSON_DEPTH:
        raise MalformedEvent(f"nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH}")


def _members(node: Any) -> int:
    """How many keys the decoded objects in `node` hold (a repeated key counts once)."""
    count, todo = 0, [node]
    while todo:  # a loop, not recursion: a call per value was a few % of a settle
        item = todo.pop()
        if type(item) is dict:
            count += len(item)
            todo.extend(item.values())
        elif type(item) is list:
            todo.extend(item)
    return count


class _Object(list[tuple[str, Any]]):
    """A JSON object's members in order, repeats kept (the stdlib decoder's pairs hook)."""


def _duplicate(data: bytes) -> str:
    """Say which key repeats where; only called once we know one does."""
    try:
        found = _find_duplicate(json.loads(data, object_pairs_hook=_Object), "$")
    except ValueError:  # the stdlib decoder refused what msgspec took: say what we know
        found = None
    if found is None:
        return "an object repeats a key"
    key, path = found
    return f"duplicate key {key!r} at `{path}`"


def _find_duplicate(node: Any, path: str) -> tuple[str, str] | None:
    if isinstance(node, _Object):
        seen: set[str] = set()
        for key, value in node:
            if key in seen:
                return key, path
            seen.add(key)
            found = _find_duplicate(value, f"{path}.{key}")
            if found:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _find_duplicate(item, f"{path}[{index}]")
            if found:
                return found
    return None
