"""`orderflow serve` and `orderflow worker` refuse to start without what they need."""

from __future__ import annotations

from pathlib import Path

from service_helpers import SECRET, stocked
from typer.testing import CliRunner

from cli import app


def run(db: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--db", str(db), "--port", "0"], env=env)
    return result.exit_code, result.stderr


def test_serve_without_a_webhook_secret_says_which_to_set(tmp_path: Path) -> None:
    environ = {"STRIPE_WEBHOOK_SECRET": "", "ORDERFLOW_WEBHOOK_SECRET": ""}
    code, err = run(tmp_path / "shop.db", environ, "serve")
    why = "no webhook source configured: set STRIPE_WEBHOOK_SECRET, or SumUp's API keys"
    assert (code, err) == (1, f"error: {why}\n")
    assert not (tmp_path / "shop.db").exists()


def test_serve_without_a_provider_refuses_rather_than_refund_through_the_fake(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shop.db"
    stocked(db, 1)
    environ = {"STRIPE_WEBHOOK_SECRET": SECRET, "ORDERFLOW_PROVIDER": ""}
    code, err = run(db, environ, "serve")
    assert code == 1 and err.startswith("error: no payment provider for the service"), err
    code, err = run(db, {**environ, "ORDERFLOW_PROVIDER": "stripe", "STRIPE_API_KEY": ""}, "serve")
    assert code == 1 and "STRIPE_API_KEY" in err and err.count("\n") == 1, err
