"""orderflow's benchmark: `python -m bench [--quick] [--json]` prints figures and ratios.

Every figure comes from one run, so ratios to the machine's own SQLite ceiling hold on a
noisy, shared machine where absolute times do not.
"""
