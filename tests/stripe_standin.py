"""A local stand-in for Stripe's PaymentIntents and Refunds API, over real HTTP on 127.0.0.1.

It answers with the recorded object shapes (stripe/openapi fixtures) and honours
`Idempotency-Key` as Stripe does: the first outcome of an executed request is saved and
answered again for the same key and parameters; the same key with other parameters is a
400 `idempotency_error`. Faults on demand: `card_declined` (402, saved: the endpoint ran),
`rate_limited` (429) and `server_error` (500), neither saved (refused before running), and
`hang` (the request runs and is saved, but the answer comes only after `hang_seconds`).
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from standin_http import LocalServer

OPENAPI = Path(__file__).resolve().parents[2] / "shared/fixtures/payments/stripe/openapi"
API_KEY = "sk_test_standin"
FAULTS = ("card_declined", "rate_limited", "server_error", "hang")
Answer = tuple[int, dict[str, Any]]


def _template(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((OPENAPI / f"{name}.object.json").read_text())
    return doc


def _error(status: int, kind: str, message: str, code: str | None = None, **extra: Any) -> Answer:
    return status, {"error": {"type": kind, "code": code, "message": message, **extra}}


class StripeStandIn:
    """The stand-in's state: intents, refunds, saved idempotent answers, queued faults."""

    def __init__(self, *, hang_seconds: float = 2.0) -> None:
        self.hang_seconds = hang_seconds
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.executed = 0
        self._faults: list[str] = []
        self._saved: dict[str, tuple[tuple[str, str, tuple[tuple[str, str], ...]], Answer]] = {}
        self._lock = threading.Lock()
        self._http = LocalServer(self._respond)

    @property
    def url(self) -> str:
        """The base URL to give `StripeProvider(base_url=...)`."""
        return self._http.url

    def start(self) -> StripeStandIn:
        self._http.start()
        return self

    def reset(self) -> None:
        """Forget everything, as a new Stripe account would (one server for many examples)."""
        with self._lock:
            self.intents.clear()
            self.refunds.clear()
            self.requests.clear()
            self._saved.clear()
            self._faults.clear()
            self.executed = 0

    def stop(self) -> None:
        self._http.stop()

    def _respond(
        self, method: str, path: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        form = dict(parse_qsl(raw.decode())) if raw else {}
        self.requests.append((method, path, form, headers))
        if headers.get("authorization") != f"Bearer {API_KEY}":
            status, body = _error(401, "invalid_request_error", "Invalid API Key provided")
        else:
            status, body = self.answer(method, path, form, headers.get("idempotency-key"))
        return status, json.dumps(body).encode()

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Answer the next `times` API calls with `fault` (one of `FAULTS`)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults.extend([fault] * times)

    def pay(self, intent_id: str, *, event_id: str | None = None, created: int = 0) -> bytes:
        """The customer paid: the intent succeeds; the `payment_intent.succeeded` event body."""
        with self._lock:
            intent = self.intents[intent_id]
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                latest_charge=f"ch_{secrets.token_hex(12)}",
            )
            obj = copy.deepcopy(intent)
        event = _template("event")
        event.update(
            id=event_id or f"evt_{secrets.token_hex(12)}",
            api_version="2024-06-20",
            created=created,
            type="payment_intent.succeeded",
            data={"object": obj},
        )
        return json.dumps(event).encode()

    # -- the API ------------------------------------------------------------------------

    def answer(self, method: str, path: str, form: dict[str, str], key: str | None) -> Answer:
        """The API's answer to one authenticated request (idempotency and faults applied)."""
        fingerprint = (method, path, tuple(sorted(form.items())))
        with self._lock:
            if key is not None and key in self._saved:
                first, saved = self._saved[key]
                if first != fingerprint:
                    return _error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                    )
                return saved
            fault = self._faults.pop(0) if self._faults else None
            if fault == "rate_limited":
                return _error(429, "invalid_request_error", "Too many requests.", "rate_limit")
            if fault == "server_error":
                return _error(500, "api_error", "Something went wrong on Stripe's end.")
            if fault == "card_declined":
                answer = _error(
                    402,
                    "card_error",
                    "Your card was declined.",
                    "card_declined",
                    decline_code="generic_decline",
                )
            else:
                answer = self._execute(method, path, form)
            if key is not None and method == "POST" and answer[0] != 400:
                self._saved[key] = (fingerprint, answer)
        if fault == "hang":
            time.sleep(self.hang_seconds)
        return answer

    def _execute(self, method: str, path: str, form: dict[str, str]) -> Answer:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "payment_intents"]:
            return self._create_intent(form)
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._refund(form)
        if len(parts) >= 3 and parts[:2] == ["v1", "payment_intents"]:
            intent = self.intents.get(parts[2])
            if intent is None:
                return _error(
                    404, "invalid_request_error", "No such payment_intent", "resource_missing"
                )
            if method == "GET" and len(parts) == 3:
                return 200, copy.deepcopy(intent)
            if method == "POST" and parts[3:] == ["cancel"]:
                return self._cancel(intent)
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method} {path})")

    def _create_intent(self, form: dict[str, str]) -> Answer:
        if not form.get("amount", "").isdigit() or int(form["amount"]) < 1:
            return _error(
                400, "invalid_request_error", "Missing or bad amount", "parameter_missing"
            )
        self.executed += 1
        intent_id = f"pi_{secrets.token_hex(12)}"
        intent = _template("payment_intent")
        intent.update(
            id=intent_id,
            amount=int(form["amount"]),
            currency=form.get("currency", "usd"),
            metadata={k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            client_secret=f"{intent_id}_secret_{secrets.token_hex(8)}",
            status="requires_payment_method",
            canceled_at=None,
            last_payment_error=None,
            next_action=None,
        )
        self.intents[intent_id] = intent
        return 200, copy.deepcopy(intent)

    def _cancel(self, intent: dict[str, Any]) -> Answer:
        if intent["status"] in ("succeeded", "canceled"):
            message = f"This PaymentIntent's status is {intent['status']}; it cannot be canceled."
            return _error(400, "invalid_request_error", message, "payment_intent_unexpected_state")
        intent.update(status="canceled", canceled_at=int(time.time()))
        return 200, copy.deepcopy(intent)

    def _refund(self, form: dict[str, str]) -> Answer:
        intent = self.intents.get(form.get("payment_intent", ""))
        if intent is None:
            return _error(
                400, "invalid_request_error", "No such payment_intent", "resource_missing"
            )
        if intent["status"] != "succeeded":
            return _error(
                400, "invalid_request_error", "This PaymentIntent has no charge to refund."
            )
        done = sum(
            r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"]
        )
        amount = int(form.get("amount", intent["amount"] - done))
        if done + amount > intent["amount"]:
            return _error(
                400, "invalid_request_error", "Refund exceeds the charge.", "amount_too_large"
            )
        self.executed += 1
        refund = _template("refund")
        refund.update(
            id=f"re_{secrets.token_hex(12)}",
            amount=amount,
            currency=intent["currency"],
            charge=intent["latest_charge"],
            payment_intent=intent["id"],
            status="succeeded",
        )
        self.refunds[refund["id"]] = refund
        return 200, copy.deepcopy(refund)
