"""`orderflow reconcile` against the Stripe stand-in over real HTTP, on a real shop file."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import Run, error_line
from stripe_standin import API_KEY, StripeStandIn

from commerce import Money, Shop, StripeProvider


def _placed(db: Path, standin: StripeStandIn) -> str:
    with Shop.open(db, provider=StripeProvider(API_KEY, base_url=standin.url)) as shop:
        shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=3)
        row = shop.start_order([("MUG", 1)], order_id="ord_c1").order
    assert row.intent_id
    return row.intent_id


def test_reconcile_settles_what_stripe_reports(run: Run, standin: StripeStandIn) -> None:
    intent_id = _placed(run.db, standin)  # type: ignore[attr-defined]
    standin.pay(intent_id)  # the webhook is lost
    env = {"STRIPE_API_KEY": API_KEY, "STRIPE_API_BASE": standin.url}
    result = run("--provider", "stripe", "reconcile", "--older-than", "0s", "--json", env=env)
    (order,) = json.loads(result.stdout)["orders"]
    assert (order["order_id"], order["provider_status"], order["outcome"]) == (
        "ord_c1",
        "succeeded",
        "settled",
    )
    assert json.loads(run("order", "show", "ord_c1", "--json").stdout)["order"]["status"] == (
        "fulfilled"
    )
    again = run("reconcile", env=env)  # each intent is asked of its own provider
    assert "reconciled 0 order(s)" in again.stdout


def test_reconcile_refusals(run: Run, standin: StripeStandIn) -> None:
    _placed(run.db, standin)  # type: ignore[attr-defined]
    missing = run("--provider", "stripe", "reconcile", code=1, env={"STRIPE_API_KEY": None})
    assert "STRIPE_API_KEY" in error_line(missing)
    assert run("reconcile", "--older-than", "soon", code=2).exit_code == 2
    assert run("--provider", "paypal", "reconcile", code=2).exit_code == 2
    misplaced = run("reconcile", "--provider", "stripe", code=2)
    assert "give it before the command" in misplaced.stderr
    failed = run("reconcile", code=1, env={"STRIPE_API_KEY": None})  # no key: not configured
    assert "could not be reconciled: ord_c1" in failed.stderr
