"""Shared pytest set-up. Its presence puts `tests/` on `sys.path`, so test modules in
every package folder can `from strategies import ...` (the hypothesis strategies)."""
