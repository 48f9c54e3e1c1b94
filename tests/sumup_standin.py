"""A local stand-in for SumUp's checkouts and refunds API, over real HTTP on 127.0.0.1.

It answers with the recorded shapes (sumup/openapi fixtures), amounts kept exact as
decimal major units (JSON numbers, read and written through `Decimal`). Like SumUp, it
refuses a second checkout with the same `checkout_reference` (409 `DUPLICATED_CHECKOUT`)
and a DELETE of a processed one (409 `CHECKOUT_PROCESSED`); unknown ids are 404 and a bad
key 401. Faults on demand: `rate_limited` (429) and `server_error` (500), refused before
running; `unreadable` (a 200 that is not JSON); and `hang` (the request runs, the answer
comes only after `hang_seconds`). `pay`, `fail` and `expire` play the customer and SumUp.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from standin_http import LocalServer

SUMUP = Path(__file__).resolve().parents[2] / "shared/fixtures/payments/sumup"
OPENAPI = SUMUP / "openapi"
API_KEY = "sup_sk_standin"
MERCHANT_CODE = "MH4H92C7"
FAULTS = ("rate_limited", "server_error", "unreadable", "hang")
Answer = tuple[int, Any]
_read = msgspec.json.Decoder(float_hook=Decimal)  # 10.1 stays 10.1, exactly
_write = msgspec.json.Encoder(decimal_format="number")
_REQUIRED = ("checkout_reference", "amount", "currency", "merchant_code")


def fixture(name: str) -> Any:
    """A recorded body from sumup/openapi, numbers as `Decimal`."""
    return _read.decode((OPENAPI / name).read_bytes())


def _error(status: int, name: str, **fields: Any) -> Answer:
    return status, {**fixture(name), **fields}


class SumUpStandIn:
    """The stand-in's state: checkouts by id, refunds made, requests seen, queued faults."""

    def __init__(self, *, hang_seconds: float = 2.0) -> None:
        self.hang_seconds = hang_seconds
        self.checkouts: dict[str, dict[str, Any]] = {}
        self.refunds: list[tuple[str, Decimal]] = []
        self.requests: list[tuple[str, str, Any, dict[str, str]]] = []
        self.created = threading.Event()
        """Set once a checkout has been made (a test waits on it to kill a client mid-call)."""
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._http = LocalServer(self._respond)

    @property
    def url(self) -> str:
        """The base URL to give `SumUpProvider(base_url=...)`."""
        return self._http.url

    def start(self) -> SumUpStandIn:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _respond(
        self, method: str, path: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes | None]:
        try:
            body = _read.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = "unreadable"
        self.requests.append((method, path, body, headers))
        if headers.get("authorization") != f"Bearer {API_KEY}":
            status, answer = 401, {"error_code": "NOT_AUTHORIZED", "message": "Unauthorized"}
        else:
            status, answer = self.answer(method, path, body)
        if status == 204:
            return status, None
        return status, b"<html>502</html>" if answer is None else _write.encode(answer)

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Answer the next `times` API calls with `fault` (one of `FAULTS`)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults.extend([fault] * times)

    # -- what happens outside the API ------------------------------------------------------

    def add(
        self, checkout_id: str, amount: Decimal, currency: str, *, reference: str = "ord_x"
    ) -> dict[str, Any]:
        """A pending checkout with a given id (as if made elsewhere, e.g. a fixture's)."""
        checkout = fixture("checkout.create_response.Checkout.json")
        checkout.update(
            id=checkout_id,
            checkout_reference=reference,
            amount=amount,
            currency=currency,
            status="PENDING",
            transactions=[],
        )
        with self._lock:
            self.checkouts[checkout_id] = checkout
        return copy.deepcopy(checkout)

    def pay(self, checkout_id: str) -> str:
        """The customer paid: the checkout is PAID with a successful transaction (its id)."""
        return self._process(checkout_id, "PAID", "SUCCESSFUL")

    def fail(self, checkout_id: str) -> str:
        """The payment failed: the checkout is FAILED with a failed transaction (its id)."""
        return self._process(checkout_id, "FAILED", "FAILED")

    def expire(self, checkout_id: str) -> None:
        """The checkout ran past `valid_until` unpaid."""
        with self._lock:
            self.checkouts[checkout_id]["status"] = "EXPIRED"

    def _process(self, checkout_id: str, status: str, outcome: str) -> str:
        with self._lock:
            checkout = self.checkouts[checkout_id]
            (transaction,) = fixture("checkout.create_response.Checkout.json")["transactions"]
            transaction.update(
                id=str(uuid.uuid4()),
                transaction_code=secrets.token_hex(5).upper(),
                amount=checkout["amount"],
                currency=checkout["currency"],
                status=outcome,
                merchant_code=MERCHANT_CODE,
            )
            checkout["status"] = status
            checkout["transactions"].append(transaction)
            return str(transaction["id"])

    # -- the API ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> Answer:
        """The API's answer to one authenticated request (faults applied)."""
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault == "rate_limited":
                return 429, {"error_code": "TOO_MANY_REQUESTS", "message": "Too many requests"}
            if fault == "server_error":
                return 500, {"error_code": "INTERNAL_ERROR", "message": "Internal server error"}
            if fault == "unreadable":
                return 200, None
            answer = self._execute(method, path, body)
        if fault == "hang":
            time.sleep(self.hang_seconds)
        return answer

    def _execute(self, method: str, target: str, body: Any) -> Answer:
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["v0.1", "checkouts"] and method == "POST":
            return self._create(body)
        if parts == ["v0.1", "checkouts"] and method == "GET":
            wanted = parse_qs(url.query).get("checkout_reference", [None])[0]
            found = [c for c in self.checkouts.values() if c["checkout_reference"] == wanted]
            (summary,) = fixture("checkout.list_response.json")  # a list shows fewer fields
            return 200, [{k: c[k] for k in summary if k in c} for c in found]
        if parts[:2] == ["v0.1", "checkouts"] and len(parts) == 3:
            checkout = self.checkouts.get(parts[2])
            if checkout is None:
                return _error(404, "error.404.not_found.json")
            if method == "GET":
                return 200, copy.deepcopy(checkout)
            if method == "DELETE":
                return self._deactivate(checkout)
        if parts[:3] == ["v0.1", "me", "refund"] and len(parts) == 4 and method == "POST":
            return self._refund(parts[3], body)
        return _error(404, "error.404.not_found.json")

    def _create(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return _error(400, "error.400.missing_parameter.json", param="body")
        for name in _REQUIRED:
            if name not in body:
                return _error(400, "error.400.missing_parameter.json", param=name)
        amount = body["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount <= 0:
            # SumUp answers some validation errors as a list of errors.
            return 400, [
                {"error_code": "INVALID", "message": "Validation error", "param": "amount"}
            ]
        if any(
            c["checkout_reference"] == body["checkout_reference"] for c in self.checkouts.values()
        ):
            return _error(409, "error.409.duplicated_checkout.json")
        hosted = bool(body.get("hosted_checkout", {}).get("enabled"))
        name = "HostedCheckout" if hosted else "Checkout"
        checkout = fixture(f"checkout.create_response.{name}.json")
        for unasked in ("mandate", "customer_id", "hosted_checkout_url", "hosted_checkout"):
            checkout.pop(unasked, None)
        checkout_id = str(uuid.uuid4())
        checkout.update(
            {k: body[k] for k in (*_REQUIRED, "description", "return_url") if k in body}
        )
        checkout.update(id=checkout_id, status="PENDING", transactions=[])
        if hosted:
            checkout.update(
                hosted_checkout={"enabled": True},
                hosted_checkout_url=f"https://checkout.sumup.com/pay/{uuid.uuid4()}",
            )
        self.checkouts[checkout_id] = checkout
        self.created.set()
        return 201, copy.deepcopy(checkout)

    def _deactivate(self, checkout: dict[str, Any]) -> Answer:
        if checkout["status"] != "PENDING":
            return _error(409, "error.409.checkout_processed.json")
        checkout["status"] = "EXPIRED"
        shape = fixture("checkout.delete_response.expired.json")
        return 200, {k: copy.deepcopy(checkout.get(k, v)) for k, v in shape.items()}

    def _refund(self, transaction_id: str, body: Any) -> Answer:
        paid = [
            t
            for c in self.checkouts.values()
            for t in c["transactions"]
            if t["id"] == transaction_id and t["status"] == "SUCCESSFUL"
        ]
        if not paid:
            return _error(404, "error.404.not_found.json")
        (transaction,) = paid
        done = sum((a for t, a in self.refunds if t == transaction_id), Decimal(0))
        amount = (body or {}).get("amount", transaction["amount"] - done)
        if done + amount > transaction["amount"]:
            return 409, {"error_code": "CONFLICT", "message": "Refund exceeds the transaction"}
        self.refunds.append((transaction_id, amount))
        return 204, None
