"""The service's small parts: the sources from the environment, the metrics text format."""

from __future__ import annotations

import pytest

from commerce import StripeWebhooks, SumUpWebhooks
from service import Metrics, SourceUnavailable, sources_from
from service.metrics import Counter, Histogram


def test_stripe_comes_from_its_secret_or_the_cli_one() -> None:
    found = sources_from({"STRIPE_WEBHOOK_SECRET": "whsec_a", "ORDERFLOW_WEBHOOK_SECRET": "b"})
    assert list(found) == ["stripe"] and isinstance(found["stripe"], StripeWebhooks)
    assert found["stripe"].secret == "whsec_a"
    assert sources_from({"ORDERFLOW_WEBHOOK_SECRET": "whsec_b"})["stripe"].secret == "whsec_b"
    assert sources_from({"STRIPE_WEBHOOK_SECRET": ""}) == {}


def test_sumup_is_mounted_with_its_api_keys_and_refused_without_them() -> None:
    keys = {"SUMUP_API_KEY": "sup_sk_x", "SUMUP_MERCHANT_CODE": "MC1"}
    signed = sources_from({**keys, "SUMUP_WEBHOOK_SECRET": "s"})["sumup"]
    assert isinstance(signed, SumUpWebhooks)
    legacy_only = sources_from(keys)["sumup"]  # the unsigned notice, confirmed by the API
    assert isinstance(legacy_only, SumUpWebhooks)
    with pytest.raises(SourceUnavailable, match="SUMUP_API_KEY and SUMUP_MERCHANT_CODE"):
        sources_from({"SUMUP_WEBHOOK_SECRET": "s", "STRIPE_WEBHOOK_SECRET": "whsec_a"})
    assert list(sources_from({"STRIPE_WEBHOOK_SECRET": "whsec_a"})) == ["stripe"]


def test_counters_render_sorted_with_escaped_labels() -> None:
    counter = Counter("x_total", "Things.")
    counter.inc(provider="stripe", outcome="settled")
    counter.inc(2, provider='a"b\\c\nd', outcome="z")
    assert counter.lines() == [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{outcome="settled",provider="stripe"} 1',
        'x_total{outcome="z",provider="a\\"b\\\\c\\nd"} 2',
    ]


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    histogram = Histogram("h_seconds", "Latency.", [0.1, 1.0])
    for value in (0.05, 0.5, 0.7, 3.0):
        histogram.observe(value)
    assert histogram.lines()[2:] == [
        'h_seconds_bucket{le="0.1"} 1',
        'h_seconds_bucket{le="1"} 3',
        'h_seconds_bucket{le="+Inf"} 4',
        "h_seconds_sum 4.25",
        "h_seconds_count 4",
    ]


def test_the_exposition_ends_with_a_newline_and_types_every_gauge() -> None:
    text = Metrics().render({"g": ("A gauge.", 1.5)}).decode()
    assert text.endswith("g 1.5\n") and "# TYPE g gauge\n" in text
