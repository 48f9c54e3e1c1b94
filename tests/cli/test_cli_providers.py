"""The CLI's payment provider: chosen by --provider, $ORDERFLOW_PROVIDER or the settings, keys
from the environment; no provider, no orders; what `order start` gives the storefront."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import Run, error_line, script
from stripe_standin import API_KEY, StripeStandIn

from commerce import Shop

NONE = {"ORDERFLOW_PROVIDER": None}
START = ("order", "start", "--item", "MUG=1", "--order-id", "o1")


def head(db: Path) -> tuple[tuple[int, str], int]:
    with Shop.open(db, readonly=True) as shop:
        return shop.ledger.head(), shop.ledger.count()


def stripe_env(standin: StripeStandIn) -> dict[str, str | None]:
    return {**NONE, "STRIPE_API_KEY": API_KEY, "STRIPE_API_BASE": standin.url}


def test_without_a_provider_order_start_says_how_to_choose_and_writes_nothing(
    shop_db: Run,
) -> None:
    before = head(shop_db.db)  # type: ignore[attr-defined]
    line = error_line(shop_db(*START, code=1, env=NONE))
    assert "no payment provider chosen" in line
    for way in ("--provider", "$ORDERFLOW_PROVIDER", "config set --provider"):
        assert way in line
    assert head(shop_db.db) == before  # type: ignore[attr-defined]
    refusal = json.loads(shop_db(*START, "--json", code=1, env=NONE).stderr)
    assert refusal["kind"] == "NoPaymentProvider"
    assert shop_db("order", "list", env=NONE).stdout.strip() == "(none)"  # reads need none


def test_the_real_script_refuses_too(shop_db: Run, orderflow_bin: Path, tmp_path: Path) -> None:
    db = shop_db.db  # type: ignore[attr-defined]
    before = head(db)
    done = script(orderflow_bin, *START, cwd=tmp_path, db=db, env={"ORDERFLOW_PROVIDER": ""})
    assert done.returncode == 1 and done.stderr.startswith("error: no payment provider chosen")
    assert head(db) == before
    done = script(orderflow_bin, "--provider", "fake", *START, cwd=tmp_path, db=db)
    assert done.returncode == 0 and "client secret pi_" in done.stdout


def test_an_unknown_provider_is_a_usage_error(shop_db: Run) -> None:
    assert (
        "'paypal' is not one of fake, stripe, sumup"
        in shop_db("--provider", "paypal", *START, code=2).stderr
    )
    assert shop_db("config", "set", "--provider", "paypal", code=2).exit_code == 2
    misplaced = shop_db(*START, "--provider", "fake", code=2)
    assert "--provider is an option of orderflow itself" in misplaced.stderr


def test_the_recorded_provider_starts_an_order_through_stripe(
    shop_db: Run, standin: StripeStandIn
) -> None:
    recorded = json.loads(shop_db("config", "set", "--provider", "stripe", "--json").stdout)
    assert recorded["config"]["provider"] == "stripe"
    assert "provider         stripe" in shop_db("config", "show", env=NONE).stdout
    text = shop_db(*START, env=stripe_env(standin)).stdout
    (intent_id,) = standin.intents
    secret = standin.intents[intent_id]["client_secret"]
    assert f"payment intent {intent_id}" in text and f"client secret {secret}" in text
    view = json.loads(shop_db("order", "show", "o1", "--json", env=NONE).stdout)
    assert (view["client_secret"], view["checkout_url"]) == (secret, None)
    assert f"client secret {secret}" in shop_db("order", "show", "o1", env=NONE).stdout
    assert [p for _, p, _, _ in standin.requests] == ["/v1/payment_intents"]


def test_order_cancel_cancels_the_intent_at_stripe(shop_db: Run, standin: StripeStandIn) -> None:
    env = stripe_env(standin)
    view = json.loads(shop_db("--provider", "stripe", *START, "--json", env=env).stdout)
    assert view["client_secret"].startswith(view["order"]["intent_id"] + "_secret_")
    shop_db("order", "cancel", "o1", env=env)
    assert standin.intents[view["order"]["intent_id"]]["status"] == "canceled"
    flow = json.loads(shop_db("flows", "show", "o1", "--json").stdout)
    assert flow["state"]["status"] == "cancelled"
    shown = shop_db("order", "show", "o1").stdout
    assert "client secret" not in shown  # nothing to pay any more


def test_a_missing_key_is_one_line_and_changes_nothing(shop_db: Run) -> None:
    before = head(shop_db.db)  # type: ignore[attr-defined]
    env = {"ORDERFLOW_PROVIDER": "stripe", "STRIPE_API_KEY": None}
    line = error_line(shop_db(*START, code=1, env=env))
    assert line == "error: payment provider stripe needs STRIPE_API_KEY in the environment"
    env = {"SUMUP_API_KEY": None, "SUMUP_MERCHANT_CODE": None}
    line = error_line(shop_db("--provider", "sumup", *START, code=1, env=env))
    assert "sumup needs SUMUP_API_KEY and SUMUP_MERCHANT_CODE" in line
    assert head(shop_db.db) == before  # type: ignore[attr-defined]
    assert shop_db("catalog", "list", env={"ORDERFLOW_PROVIDER": "stripe"}).exit_code == 0


def test_the_option_wins_over_the_recorded_provider_and_none_clears_it(shop_db: Run) -> None:
    shop_db("config", "set", "--provider", "stripe")
    env = {**NONE, "STRIPE_API_KEY": None}
    assert "STRIPE_API_KEY" in error_line(shop_db(*START, code=1, env=env))
    assert "chooses fake here" in shop_db("--provider", "fake", "config", "show").stdout
    assert shop_db("--provider", "fake", *START, env=env).exit_code == 0
    cleared = json.loads(shop_db("config", "set", "--provider", "none", "--json").stdout)
    assert cleared["config"]["provider"] is None
    assert "no payment provider chosen" in error_line(shop_db(*START, code=1, env=NONE))


def test_a_shop_that_moved_to_stripe_refunds_what_the_fake_took(
    shop_db: Run, standin: StripeStandIn
) -> None:
    shop_db(*START)  # on the fake ($ORDERFLOW_PROVIDER=fake in these tests)
    shop_db("order", "cancel", "o1")
    shop_db("config", "set", "--provider", "stripe")
    paid = json.loads(shop_db("order", "settle", "o1", "--json", env=stripe_env(standin)).stdout)
    assert (paid["outcome"], paid["order_status"]) == ("refunded", "refunded")
    assert standin.requests == []  # the fake's intent went back to the fake


def test_sumup_gives_a_checkout_page_and_a_cancel_deactivates_it(shop_db: Run) -> None:
    sumup_standin = pytest.importorskip("sumup_standin")
    if not sumup_standin.OPENAPI.is_dir():
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    server = sumup_standin.SumUpStandIn().start()
    try:
        env = {
            **NONE,
            "SUMUP_API_KEY": sumup_standin.API_KEY,
            "SUMUP_MERCHANT_CODE": sumup_standin.MERCHANT_CODE,
            "SUMUP_API_BASE": server.url,
        }
        view = json.loads(shop_db("--provider", "sumup", *START, "--json", env=env).stdout)
        (checkout,) = server.checkouts.values()
        assert view["checkout_url"] == checkout["hosted_checkout_url"]
        text = shop_db("order", "show", "o1", env=NONE).stdout
        assert f"checkout {checkout['hosted_checkout_url']}" in text
        shop_db("--provider", "sumup", "order", "cancel", "o1", env=env)
        assert checkout["status"] == "EXPIRED"  # nothing left to pay on
    finally:
        server.stop()
