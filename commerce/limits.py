"""Every bound commerce puts on what it is given, in one place.

A number past one of these is refused with a typed error (`InvalidQuantity`,
`InvalidMoney`, `InvalidTaxRate`, `InvalidConfig`, `BodyTooLarge`, `MalformedEvent`) before
anything is written, so nothing downstream (SQLite's 64-bit integers, `datetime`, the JSON
decoder's recursion, a provider's own limits) ever meets a value it cannot hold.
"""

from __future__ import annotations

MAX_BODY = 1024 * 1024
"""The largest webhook body accepted, in bytes (1 MiB; Stripe's are a few KiB).

Public so a web handler can refuse a larger `Content-Length` before reading the body."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays in a webhook body (Stripe's reach about 10)."""

MAX_QUANTITY = 1_000_000_000
"""The most units on one order line, in one restock, or as a product's opening stock."""

MAX_STOCK = 1_000_000_000
"""The most units of one SKU the shop may hold (available plus reserved)."""

MAX_PRICE = 99_999_999
"""The highest unit price, in minor units: the largest amount Stripe takes in one payment
for most currencies (999,999.99 USD), so one unit is always payable."""

MIN_PAYMENT_TIMEOUT = 1
"""The shortest time an order may wait for payment, in seconds."""

MAX_PAYMENT_TIMEOUT = 30 * 24 * 3600
"""The longest time an order may wait for payment, in seconds (30 days)."""

MAX_REVIEW_TIMEOUT = 180 * 24 * 3600
"""The longest a payment may stay held for review before it is refunded (180 days: about
as long as card networks let a payment be refunded at all)."""

MAX_TAX_RATE_BP = 10_000
"""The highest exclusive tax rate, in basis points (10000 bp = 100%)."""
